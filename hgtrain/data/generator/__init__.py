"""The synthetic scene generator: shapes with exact keypoints on varied backgrounds.

It reads bottom-up: :mod:`.raster` paints polygons with exact area coverage, :mod:`.shapes` draws
the keypoint shapes and the keypoint-less clutter, :mod:`.backgrounds` the background families,
:mod:`.paint` composites a shape in contrasting colours, :mod:`.scene` composes a pretraining
scene from a :class:`SceneConfig` (and names the presets), and :mod:`.photometric` adds the
camera-like noise. :mod:`.downstream` draws the transfer benchmark's tasks, which pretraining
never sees, from the same parts. Everything is numpy on a per-sample random
generator, so a scene is a pure function of its seed.
"""

from hgtrain.data.generator.photometric import PhotometricNoise, apply_photometric_noise
from hgtrain.data.generator.scene import SceneConfig, render_scene

__all__ = ["PhotometricNoise", "SceneConfig", "apply_photometric_noise", "render_scene"]
