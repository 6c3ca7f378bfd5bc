"""A dataset over a keypoint set on disk (our generated val/test sets, or users' own data)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision.transforms import v2

from hgtrain.data.loading.coco_format import KeypointSet, load_sample, read_keypoint_set
from hgtrain.data.loading.transforms import IgnoreRule, KeypointTransform, ResizePad

__all__ = ["KeypointFolder"]


class KeypointFolder(Dataset):
    """Images and keypoints of a COCO-keypoints-style folder (see
    :mod:`hgtrain.data.loading.coco_format`).

    The whole annotation file is validated when the dataset is built, so a malformed set fails
    at once with the file and the problem named; keypoints outside their image are reported and
    left out then (:func:`~hgtrain.data.loading.coco_format.read_keypoint_set`). Index
    ``epoch * len(self) + i`` is image ``i`` with the augmentation draw of that epoch (see
    :class:`hgtrain.data.loading.sampler.EpochSampler`).

    Items are ``(image, target)`` as :class:`~hgtrain.data.loading.transforms.KeypointTransform`
    makes them; through a :class:`~hgtrain.data.loading.transforms.ResizePad` letterbox (how own
    sets are evaluated) the target also holds ``image_size`` int64 [2]: the (height, width) of the
    input, from its top-left, that the image fills, the rest being padding, so that evaluation
    judges keypoints on the image alone (:class:`~hgtrain.task.metrics.PointAP`).

    Args:
        directory: the folder holding ``annotations.json``.
        pipeline: v2 transform for image, keypoints and boxes (see
            :class:`hgtrain.data.loading.transforms.KeypointTransform`), e.g. ``ResizePad(size)``.
        seed: seed of the augmentation draws.
        ignore: which objects training does not penalise (targets get ``ignore``).
        keypoint_set: the set already read from ``directory`` (e.g. with ``strict=True``), so that
            it is not read, and reported on, again; read here when ``None``.
        image_roots: folders outside ``directory`` that its images may be in (when read here).
        flip_pairs: class names that a horizontal flip of ``pipeline`` swaps.
    """

    def __init__(
        self,
        directory: str | Path,
        pipeline: v2.Transform,
        seed: int = 0,
        ignore: IgnoreRule | None = None,
        keypoint_set: KeypointSet | None = None,
        image_roots: Sequence[str] = (),
        flip_pairs: Sequence[Sequence[str]] = (),
    ) -> None:
        if keypoint_set is None:
            keypoint_set = read_keypoint_set(Path(directory), image_roots=image_roots)
        self.directory = Path(directory)
        self.class_names = keypoint_set.class_names
        self.records = keypoint_set.records
        self.info = keypoint_set.info
        self.transform = KeypointTransform(pipeline, self.class_names, ignore, flip_pairs)
        self.letterbox = pipeline if isinstance(pipeline, ResizePad) else None
        self.seed = seed
        if not self.records:
            raise ValueError(f"{self.directory}: the keypoint set has no images")

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        epoch, position = divmod(int(index), len(self.records))
        sample = load_sample(self.records[position])
        image, target = self.transform(sample, np.random.default_rng([self.seed, epoch, position]))
        if self.letterbox is not None:
            fitted = self.letterbox.fitted_size(sample.height, sample.width)
            target["image_size"] = torch.tensor(fitted, dtype=torch.int64)
        return image, target
