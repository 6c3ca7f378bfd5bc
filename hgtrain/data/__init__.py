"""Keypoint data: the scene generator (:mod:`hgtrain.data.generator`) and the loading side
(:mod:`hgtrain.data.loading`: on-disk format, datasets, transforms, the DataModule).

:class:`~hgtrain.data.sample.Sample` is what the two share. The command-line tools live in
:mod:`hgtrain.tools.data_benchmark` and :mod:`hgtrain.tools.data_preview` (not imported here, so that
``python -m`` runs them cleanly).
"""

from hgtrain.data.generator.photometric import PhotometricNoise, apply_photometric_noise
from hgtrain.data.generator.scene import (
    SCENE_PRESETS,
    SceneConfig,
    render_scene,
    scene_preset,
    unseen_scene,
)
from hgtrain.data.loading.coco_format import (
    DatasetFormatError,
    KeypointSet,
    load_sample,
    read_keypoint_set,
    write_keypoint_set,
)
from hgtrain.data.loading.collate import collate_keypoints
from hgtrain.data.loading.datamodule import KeypointDataModule
from hgtrain.data.loading.folder import KeypointFolder
from hgtrain.data.loading.prepare import prepare_synthetic_set
from hgtrain.data.loading.sampler import EpochSampler
from hgtrain.data.loading.synthetic import SyntheticKeypoints
from hgtrain.data.loading.transforms import (
    HorizontalFlip,
    KeypointTransform,
    RandomScaleCrop,
    ResizePad,
    VerticalFlip,
)
from hgtrain.data.sample import CLASS_NAMES, Sample

__all__ = [
    "CLASS_NAMES",
    "SCENE_PRESETS",
    "DatasetFormatError",
    "EpochSampler",
    "HorizontalFlip",
    "KeypointDataModule",
    "KeypointFolder",
    "KeypointSet",
    "KeypointTransform",
    "PhotometricNoise",
    "RandomScaleCrop",
    "ResizePad",
    "Sample",
    "SceneConfig",
    "SyntheticKeypoints",
    "VerticalFlip",
    "apply_photometric_noise",
    "collate_keypoints",
    "load_sample",
    "prepare_synthetic_set",
    "read_keypoint_set",
    "render_scene",
    "scene_preset",
    "unseen_scene",
    "write_keypoint_set",
]
