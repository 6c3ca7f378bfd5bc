"""The synthetic keypoint dataset: every sample is a pure function of (seed, split, epoch, index).

Each sample draws from its own ``np.random.default_rng([seed, split, epoch, index, stream])``,
never from global state, so it is the same whatever the number of DataLoader workers or DDP
processes, and across runs. Three streams keep the parts independent: the scene, the photometric
noise and the augmentation; the clean and noisy versions of a sample therefore show the same scene.

Index ``epoch * length + i`` is sample ``i`` of epoch ``epoch``: the train sampler
(:class:`hgtrain.data.loading.sampler.EpochSampler`) walks a new epoch's indices each epoch, so
training sees new images every epoch (the set is effectively unlimited), while the fixed val / test
sets use epoch 0 only.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision.transforms import v2

from hgtrain.data.generator.photometric import PhotometricNoise, apply_photometric_noise
from hgtrain.data.generator.scene import SceneConfig, render_scene
from hgtrain.data.loading.transforms import IgnoreRule, KeypointTransform
from hgtrain.data.sample import CLASS_NAMES, Sample

__all__ = ["SPLITS", "SyntheticKeypoints"]

SPLITS = {"train": 0, "val": 1, "test": 2}
"""Split names and the number each contributes to the seed."""


class SyntheticKeypoints(Dataset):
    """Rendered images with exact corner keypoints (classes :data:`CLASS_NAMES`).

    Args:
        split: "train", "val" or "test"; each has its own random stream.
        length: samples per epoch.
        image_size: side of the square images in pixels.
        seed: base seed (an int >= 0).
        scene: what the images contain (default ``SceneConfig()``).
        noise: photometric noise, or None for clean images.
        pipeline: v2 augmentation of image, keypoints and boxes (see
            :class:`hgtrain.data.loading.transforms.KeypointTransform`); default: none.
        ignore: which objects training does not penalise (targets get ``ignore``).
    """

    class_names = CLASS_NAMES

    def __init__(
        self,
        split: str,
        length: int,
        image_size: int,
        seed: int = 0,
        scene: SceneConfig | None = None,
        noise: PhotometricNoise | None = None,
        pipeline: v2.Transform | None = None,
        ignore: IgnoreRule | None = None,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
        if length < 1 or image_size < 16 or seed < 0:
            raise ValueError(
                f"need length >= 1, image_size >= 16 and seed >= 0, got {length}, {image_size}, {seed}"
            )
        self.split = split
        self.length = length
        self.image_size = image_size
        self.seed = seed
        self.scene = scene if scene is not None else SceneConfig()
        self.noise = noise
        self.transform = KeypointTransform(pipeline or v2.Identity(), CLASS_NAMES, ignore)

    def __len__(self) -> int:
        return self.length

    def _rng(self, index: int, stream: int) -> np.random.Generator:
        epoch, position = divmod(int(index), self.length)
        return np.random.default_rng([self.seed, SPLITS[self.split], epoch, position, stream])

    def sample(self, index: int) -> Sample:
        """The raw sample (uint8 image, keypoints, boxes) at ``index`` (see the module doc)."""
        size = self.image_size
        sample = render_scene(self._rng(index, 0), size, size, self.scene, image_id=int(index))
        image = sample.image
        if self.noise is not None:
            image = apply_photometric_noise(self._rng(index, 1), image, self.noise)
        image += 0.5  # round to nearest when truncating to uint8 (the image is within [0, 255])
        sample.image = image.astype(np.uint8)
        return sample

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return self.transform(self.sample(index), self._rng(index, 2))
