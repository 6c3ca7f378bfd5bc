"""The detectors compared: the trained network and OpenCV's Harris, Shi-Tomasi and FAST.

Each detector turns uint8 [H, W, 3] RGB images into candidate points (continuous (x, y) pixels,
pixel (i, j) covering [i, i+1) x [j, j+1)) with a score, stronger is better. :func:`best_points`
then treats every detector alike: it drops points within ``border`` px of the image's edges,
suppresses points near a stronger one (greedy, in a (2r+1) px box, as SuperPoint's ``nms_fast``)
and keeps the ``count`` strongest.

- ``network``: an hgtrain training checkpoint's whole network (:func:`hgtrain.load_backbone` with
  ``with_heads=True``), fed RGB as it was trained (its own input normalisation inside). Its heatmap
  classes are keypoint types (``top_left``, ``bottom_right``, ``corner``, ...); a point is a point
  whatever its type, so every class is decoded with :func:`~hgtrain.task.decode.decode_keypoints`
  (sigmoid, 3x3 max-pool NMS per class, sub-pixel offsets, every surviving peak kept) and the
  classes are merged by the common suppression, which keeps the strongest of the types found at
  one place.
- ``harris`` (``cv2.cornerHarris``, 3 px block, 3 px Sobel, k = 0.04; candidates are the 3x3 local
  maxima of a positive response), ``shi-tomasi`` (``cv2.goodFeaturesToTrack``, 3 px block, quality
  level 0.001, in its order) and ``fast`` (``cv2.FastFeatureDetector``, threshold 10, with its
  non-maximum suppression, scored by its response), on the grey image (OpenCV's RGB to grey).
  OpenCV is the ``classical`` extra.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from types import ModuleType

import numpy as np
import torch

from hgtrain.task.decode import decode_keypoints
from hgtrain.tools.repeatability.score import inside
from hgtrain.weights.pretrained import load_backbone

__all__ = [
    "CLASSICAL",
    "DETECTORS",
    "MISSING_OPENCV",
    "Candidates",
    "Detector",
    "NetworkDetector",
    "best_points",
    "classical_detector",
    "opencv",
]

CLASSICAL = ("harris", "shi-tomasi", "fast")
DETECTORS = ("network", *CLASSICAL)
MISSING_OPENCV = (
    f"the classical detectors ({', '.join(CLASSICAL)}) need OpenCV: "
    'pip install "hgtrain[classical]" (or pip install opencv-python-headless), '
    "or leave them out of --detectors"
)
BATCH = 8
"""Images per forward pass of the network."""

Candidates = tuple[np.ndarray, np.ndarray]
"""A detector's points [k, 2] (x, y) and their scores [k]."""
Detector = Callable[[list[np.ndarray]], list[Candidates]]
"""Images -> their candidate points, in order."""


def opencv() -> ModuleType:
    """The ``cv2`` module, or a ``ModuleNotFoundError`` whose message names the extra."""
    try:
        import cv2
    except ImportError as err:
        raise ModuleNotFoundError(MISSING_OPENCV) from err
    return cv2


class NetworkDetector:
    """The points of an hgtrain training checkpoint's network (see the module's docstring)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.network = load_backbone(path, with_heads=True, mode="eval")

    def check_size(self, size: int) -> None:
        """A ``ValueError`` saying which sizes work, for an image side the hourglass cannot take."""
        self.network.backbone.config.check_input_size(size, size)

    @torch.inference_mode()
    def __call__(self, images: list[np.ndarray]) -> list[Candidates]:
        found = []
        for start in range(0, len(images), BATCH):
            batch = torch.from_numpy(np.stack(images[start : start + BATCH])).permute(0, 3, 1, 2)
            heatmaps, offsets = self.network.raw_outputs(batch)
            decoded = decode_keypoints(
                heatmaps, offsets, tuple(batch.shape[-2:]), top_k=heatmaps[0].numel()
            )
            found += [(d["keypoints"].double().numpy(), d["scores"].numpy()) for d in decoded]
        return found


def classical_detector(name: str) -> Detector:
    """The OpenCV detector ``name`` (one of :data:`CLASSICAL`), for a list of images."""
    cv2 = opencv()

    def grey(image: np.ndarray) -> np.ndarray:
        return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)

    def harris(image: np.ndarray) -> Candidates:
        response = cv2.cornerHarris(grey(image).astype(np.float32), 3, 3, 0.04)
        peaks = (response == cv2.dilate(response, np.ones((3, 3), np.uint8))) & (response > 0)
        ys, xs = np.nonzero(peaks)
        return np.stack([xs, ys], axis=1) + 0.5, response[ys, xs]

    def shi_tomasi(image: np.ndarray) -> Candidates:
        corners = cv2.goodFeaturesToTrack(grey(image), 0, 0.001, 1, blockSize=3)
        points = np.zeros((0, 2)) if corners is None else corners.reshape(-1, 2) + 0.5
        return points.astype(np.float64), np.arange(len(points), 0, -1, dtype=np.float64)

    def fast(image: np.ndarray) -> Candidates:
        keypoints = cv2.FastFeatureDetector_create(10, True).detect(grey(image))
        points = np.array([k.pt for k in keypoints], dtype=np.float64).reshape(-1, 2) + 0.5
        return points, np.array([k.response for k in keypoints], dtype=np.float64)

    detect = {"harris": harris, "shi-tomasi": shi_tomasi, "fast": fast}[name]
    return lambda images: [detect(image) for image in images]


def best_points(
    candidates: Candidates, shape: tuple[int, int], count: int, radius: int, border: float
) -> np.ndarray:
    """The ``count`` strongest ``candidates`` at least ``border`` px inside an image of ``shape``
    (height, width), after suppressing every point within ``radius`` px (in x and in y, by pixel)
    of a stronger one kept; [<= count, 2], strongest first."""
    points, scores = candidates
    keep = inside(points, shape, border)
    points, scores = points[keep], scores[keep]
    height, width = shape
    taken = np.zeros((height + 2 * radius + 1, width + 2 * radius + 1), dtype=bool)
    chosen = []
    for index in np.argsort(-scores, kind="stable"):
        column, row = np.floor(points[index]).astype(int) + radius
        if taken[row, column]:
            continue
        chosen.append(index)
        if len(chosen) == count:
            break
        taken[row - radius : row + radius + 1, column - radius : column + radius + 1] = True
    return points[np.asarray(chosen, dtype=int)].reshape(-1, 2)
