"""The in-memory form of one annotated image, before augmentation, and the synthetic class names."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["CLASS_NAMES", "Sample"]

CLASS_NAMES: tuple[str, ...] = ("top_left", "bottom_right", "corner")
"""Keypoint classes of the synthetic set: the corners of axis-aligned boxes with CornerNet
semantics (whatever the augmentation, ``top_left`` is the corner with the smallest x and y of its
box), and the generic ``corner`` of every other shape."""


@dataclass
class Sample:
    """One image with its objects and their keypoints, all in input pixels.

    Pixel (i, j) (column i, row j) covers [i, i+1) x [j, j+1); keypoints are continuous (x, y).

    Attributes:
        image: uint8 [3, H, W] RGB (channels first, as torch wants it).
        keypoints: float32 [N, 2] (x, y).
        labels: int64 [N], class index of each keypoint (into the dataset's class names).
        object_ids: int64 [N], index into ``boxes`` of the object that owns each keypoint.
        boxes: float32 [M, 4] xyxy, the bounding box of every object (keypoint-less objects too).
        kinds: the category name of every object ("box", "polygon", ...), length M.
        image_id: a number that identifies the image within its set.
    """

    image: np.ndarray
    keypoints: np.ndarray
    labels: np.ndarray
    object_ids: np.ndarray
    boxes: np.ndarray
    kinds: list[str]
    image_id: int

    @property
    def height(self) -> int:
        return self.image.shape[1]

    @property
    def width(self) -> int:
        return self.image.shape[2]
