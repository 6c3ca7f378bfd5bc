"""Geometric augmentation with ``torchvision.transforms.v2`` that keeps keypoint classes right.

Two things need care beyond plain v2:

- **Pixel convention.** torchvision flips ``KeyPoints`` as x -> W - 1 - x (pixel centres on
  integers) but ``BoundingBoxes`` as x -> W - x, and resizes keypoints by the plain size ratio.
  With ours (pixel i covers [i, i+1)) a point flips to W - x and resizes by the ratio, so the flips
  here override the keypoint kernel; resizing, cropping and padding are v2's own (checked by the
  tests). v2's rotations and affine warps are not checked against our convention: don't add them
  to a keypoint pipeline without testing.
- **Box corners.** ``top_left`` / ``bottom_right`` keypoints are the corners of their object's box
  (CornerNet semantics): after a horizontal flip the old top-left corner is a top-right corner and
  the old top-right corner is the new top-left. So all four corners of such a box are carried
  through the transforms and the two classes are re-assigned afterwards from where the corners
  landed, instead of relabelling the old points.
- **Own classes that name a side.** A horizontal flip turns an ``upper_left`` corner into an
  ``upper_right`` one. Given ``flip_pairs``, the labels of each pair are swapped on the samples
  that the pipeline flipped horizontally (it is told by two probe points carried along, whose
  left-to-right order a flip reverses, so any v2 pipeline works).

Keypoints that leave the image (outside [0, W) x [0, H)) are dropped; boxes are clamped to the
image and dropped when nothing of them is left, with their keypoints. Random choices come from the
sample's own generator (through a forked, seeded torch RNG), so augmentation is reproducible.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from hgtrain.data.sample import Sample

__all__ = [
    "HorizontalFlip",
    "IgnoreRule",
    "KeypointTransform",
    "ObjectCrop",
    "RandomScaleCrop",
    "RandomWindowCrop",
    "ResizePad",
    "VerticalFlip",
    "check_flip_pairs",
]

Target = dict[str, torch.Tensor]


class HorizontalFlip(v2.RandomHorizontalFlip):
    """``v2.RandomHorizontalFlip`` that maps keypoints x -> W - x (our pixel convention)."""

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if isinstance(inpt, tv_tensors.KeyPoints):
            flipped = inpt.as_subclass(torch.Tensor).clone()
            flipped[..., 0] = inpt.canvas_size[1] - flipped[..., 0]
            return tv_tensors.wrap(flipped, like=inpt)
        return super().transform(inpt, params)


class VerticalFlip(v2.RandomVerticalFlip):
    """``v2.RandomVerticalFlip`` that maps keypoints y -> H - y (our pixel convention)."""

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if isinstance(inpt, tv_tensors.KeyPoints):
            flipped = inpt.as_subclass(torch.Tensor).clone()
            flipped[..., 1] = inpt.canvas_size[0] - flipped[..., 1]
            return tv_tensors.wrap(flipped, like=inpt)
        return super().transform(inpt, params)


class RandomScaleCrop(v2.Transform):
    """Scale the image so its longer side is ``size * s``, s ~ U(scale), then crop or pad a
    random ``size`` x ``size`` window. ``scale=(1, 1)`` with ``random_offset=False`` is a
    letterbox: longer side to ``size``, padding at the bottom / right.

    ``padding_mode="edge"`` fills the padding with the image's border pixels repeated, so image
    and padding meet without a step edge, which a corner detector would take for an object's
    corner (a flat image stays flat); ``"constant"`` fills it with zeros. Keypoints and boxes
    move the same either way.
    """

    def __init__(
        self,
        size: int,
        scale: tuple[float, float] = (1.0, 1.0),
        random_offset: bool = True,
        padding_mode: Literal["edge", "constant"] = "edge",
    ) -> None:
        super().__init__()
        if not 0 < scale[0] <= scale[1]:
            raise ValueError(f"scale must be a range (low, high) with 0 < low <= high, got {scale}")
        if padding_mode not in ("edge", "constant"):
            raise ValueError(f'padding_mode must be "edge" or "constant", got {padding_mode!r}')
        self.size = size
        self.scale = tuple(scale)
        self.random_offset = random_offset
        self.padding_mode = padding_mode

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        height, width = v2.query_size(flat_inputs)
        new_size = self._scaled_size(height, width, float(torch.empty(1).uniform_(*self.scale)))
        top, left = (self._offset(n) for n in new_size)
        return {"resize": new_size, "top": top, "left": left, "same": new_size == [height, width]}

    def _scaled_size(self, height: int, width: int, scale: float) -> list[int]:
        """[height, width] of the image once its longer side is ``size * scale``."""
        factor = scale * self.size / max(height, width)
        return [max(1, round(height * factor)), max(1, round(width * factor))]

    def _offset(self, length: int) -> int:
        """Start of the window along one axis: negative when the image is padded."""
        if not self.random_offset:
            return 0
        low, high = sorted((0, length - self.size))
        return int(torch.randint(low, high + 1, ()))

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if not params["same"]:
            inpt = self._call_kernel(F.resize, inpt, params["resize"], antialias=True)
        top, left, size = params["top"], params["left"], self.size
        geometry = (tv_tensors.KeyPoints, tv_tensors.BoundingBoxes, tv_tensors.Mask)
        if self.padding_mode == "constant" or isinstance(inpt, geometry):
            return self._call_kernel(F.crop, inpt, top, left, size, size)
        # the part of the window on the image, then the rest replicated from its border
        # (v2 pads only images in "edge" mode, so geometry takes the plain crop's offsets above)
        height, width = params["resize"]
        inside_top, inside_left = max(top, 0), max(left, 0)
        inside_bottom, inside_right = min(top + size, height), min(left + size, width)
        inpt = F.crop(
            inpt, inside_top, inside_left, inside_bottom - inside_top, inside_right - inside_left
        )
        padding = [
            inside_left - left,
            inside_top - top,
            left + size - inside_right,
            top + size - inside_bottom,
        ]
        return F.pad(inpt, padding, padding_mode="edge")


def checked_scales(scales: Sequence[float]) -> tuple[float, ...]:
    """The discrete scales of a crop, which must be one or more values > 0."""
    if not scales or min(scales) <= 0:
        raise ValueError(f"scales must be one or more values > 0, got {list(scales)}")
    return tuple(scales)


def draw_scale(scales: Sequence[float]) -> float:
    """One of ``scales``, uniformly, from torch's generator (seeded per sample)."""
    return scales[int(torch.randint(len(scales), ()))]


class RandomWindowCrop(v2.Transform):
    """CornerNet's random crop (CornerNet-Lite ``core/sample/utils.py``, ``random_crop``): a square
    window of side ``int(size * s)``, s drawn from ``scales``, centred at a random point at least
    ``border`` px inside the image (the border halved until it fits, as the original's
    ``_get_border``), zero-padded where it leaves the image, then resized to ``size`` x ``size``.
    Objects are zoomed by ``size / int(size * s)``, about 1/s: small s zooms in."""

    def __init__(self, size: int, scales: Sequence[float], border: int = 128) -> None:
        super().__init__()
        self.size = size
        self.scales = checked_scales(scales)
        self.border = border

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        height, width = v2.query_size(flat_inputs)
        scale = draw_scale(self.scales)
        window = int(self.size * scale)
        centre_x = self._centre(width)
        centre_y = self._centre(height)
        return {"top": centre_y - window // 2, "left": centre_x - window // 2, "window": window}

    def _centre(self, length: int) -> int:
        border = self.border
        while border > 0 and length - border <= border:
            border //= 2
        return int(torch.randint(border, max(border + 1, length - border), ()))

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        window = params["window"]
        inpt = self._call_kernel(F.crop, inpt, params["top"], params["left"], window, window)
        return self._call_kernel(F.resize, inpt, [self.size, self.size], antialias=True)


class ObjectCrop(v2.Transform):
    """CornerNet-Saccade's crop (CornerNet-Lite ``core/sample/cornernet_saccade.py``,
    ``ref_scale`` and ``crop_image_dets``): with probability ``reference_probability`` a random
    object is rescaled so that its longest side lands in the size band it is in (16-32, 32-96 or
    96-254 px at 255 px input, scaled to ``size``), otherwise the image by a scale drawn from
    ``scales``; then a ``size`` x ``size`` window is cut (zero-padded) that holds the object, or,
    with probability ``centred_probability``, centres on it within 15 px."""

    BANDS = ((96, 96, 255), (32, 32, 97), (0, 16, 33))
    """(longest side above, new side from, new side below) in px at 255 px input, largest first."""

    def __init__(
        self,
        size: int,
        scales: Sequence[float],
        reference_probability: float = 0.7,
        centred_probability: float = 0.5,
    ) -> None:
        super().__init__()
        self.size = size
        self.scales = checked_scales(scales)
        self.reference_probability = reference_probability
        self.centred_probability = centred_probability

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        height, width = v2.query_size(flat_inputs)
        boxes = next(
            (i for i in flat_inputs if isinstance(i, tv_tensors.BoundingBoxes)),
            torch.empty(0, 4),
        ).as_subclass(torch.Tensor)
        boxes = boxes.clamp(min=0).minimum(torch.tensor([width, height, width, height]))
        boxes = boxes[((boxes[:, 2:] - boxes[:, :2]) > 0).all(dim=1)]
        reference = None
        if len(boxes) and float(torch.rand(())) < self.reference_probability:
            reference = boxes[int(torch.randint(len(boxes), ()))]
            scale = self._reference_scale(float((reference[2:] - reference[:2]).max()))
            reference = reference * scale
        else:
            scale = draw_scale(self.scales)
        new_size = [max(1, int(height * scale)), max(1, int(width * scale))]
        centred = float(torch.rand(())) < self.centred_probability
        top, left = (
            self._centre(
                length, None if reference is None else reference[[axis, axis + 2]], centred
            )
            - self.size // 2
            for axis, length in ((1, new_size[0]), (0, new_size[1]))
        )
        return {"resize": new_size, "top": top, "left": left}

    def _reference_scale(self, longest: float) -> float:
        factor = self.size / 255
        # the first band the object is above (the last, above 0, takes every object)
        low, high = next((lo, hi) for above, lo, hi in self.BANDS if longest > above * factor)
        side = int(torch.randint(int(low * factor), max(int(high * factor), 2), ()))
        return max(side, 1) / longest

    def _centre(self, length: int, extent: torch.Tensor | None, centred: bool) -> int:
        """The window's centre along one axis, as ``crop_image_dets``."""
        if length <= self.size:
            return length // 2
        if extent is None or not centred:
            low = max(int(extent[1]) - self.size, 0) if extent is not None else 0
            high = (
                min(length - self.size, int(extent[0]))
                if extent is not None
                else length - self.size
            )
            return int(torch.randint(low, max(low, high) + 1, ())) + self.size // 2
        middle = int(extent.sum()) // 2
        low = max(middle - int(torch.randint(0, 15, ())), 0)
        high = min(middle + int(torch.randint(0, 15, ())), length - 1)
        return int(torch.randint(low, high + 1, ()))

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        inpt = self._call_kernel(F.resize, inpt, params["resize"], antialias=True)
        return self._call_kernel(F.crop, inpt, params["top"], params["left"], self.size, self.size)


class ResizePad(RandomScaleCrop):
    """Deterministic letterbox to ``size`` x ``size`` (a no-op for images already that size):
    longer side to ``size``, the image at the top-left, its border pixels repeated below or to
    the right (see :class:`RandomScaleCrop` for ``padding_mode``)."""

    def __init__(self, size: int, padding_mode: Literal["edge", "constant"] = "edge") -> None:
        super().__init__(size, (1.0, 1.0), random_offset=False, padding_mode=padding_mode)

    def fitted_size(self, height: int, width: int) -> tuple[int, int]:
        """(height, width) that a ``height`` x ``width`` image takes in the letterbox, from its
        top-left; the rest of the ``size`` x ``size`` input is padding."""
        fitted_height, fitted_width = self._scaled_size(height, width, 1.0)
        return fitted_height, fitted_width


@dataclass(frozen=True)
class IgnoreRule:
    """Which objects training does not penalise (CornerNet-Saccade's valid masks,
    ``core/sample/cornernet_saccade.py``): those whose longest side inside the image is under
    ``min_size`` px, or of which at most ``min_visible`` of the box area is left in the image after
    the transforms. Their keypoints become ignore regions instead of targets."""

    min_size: float = 0.0
    min_visible: float = 0.0

    def ignored(self, boxes: np.ndarray, size: Sequence[int]) -> np.ndarray:
        """bool [M]: which of the transformed (unclamped, XYXY) ``boxes`` are not penalised."""
        height, width = size
        clamped = boxes.clip(0, [width, height, width, height])
        full = (boxes[:, 2:] - boxes[:, :2]).prod(axis=1)
        sides = (clamped[:, 2:] - clamped[:, :2]).clip(min=0)
        visible = np.divide(sides.prod(axis=1), full, out=np.zeros(len(boxes)), where=full > 0)
        return (sides.max(axis=1, initial=0) < self.min_size) | (visible <= self.min_visible)


class KeypointTransform:
    """Turn a :class:`Sample` into the model's ``(image, target)`` through a v2 pipeline.

    Args:
        pipeline: v2 transform applied jointly to the image (``tv_tensors.Image``), the keypoints
            (``tv_tensors.KeyPoints``) and the boxes (``tv_tensors.BoundingBoxes``, XYXY); use
            :class:`HorizontalFlip` / :class:`VerticalFlip` rather than v2's flips for keypoints.
        class_names: class names of the labels; ``top_left`` / ``bottom_right`` (if present) are
            treated as box corners.
        ignore: which objects training does not penalise.
        flip_pairs: pairs of class names that a horizontal flip swaps (``("upper_left",
            "upper_right")``); see :func:`check_flip_pairs`.

    Returns from a call ``(image uint8 [3, H, W], target)`` with the target dict of the contract:
    ``keypoints`` float32 [N, 2], ``labels`` int64 [N], ``sizes`` float32 [N, 2] (w, h of the
    owning box), ``boxes`` float32 [M, 4], ``object_ids`` int64 [N] (index into ``boxes``),
    ``image_id`` int64 scalar; with an :class:`IgnoreRule` also ``ignore`` bool [N] (the
    keypoint's object is not penalised).
    """

    def __init__(
        self,
        pipeline: v2.Transform,
        class_names: Sequence[str],
        ignore: IgnoreRule | None = None,
        flip_pairs: Sequence[Sequence[str]] = (),
    ) -> None:
        self.pipeline = pipeline
        self.ignore = ignore
        names = list(class_names)
        self.top_left = names.index("top_left") if "top_left" in names else -1
        self.bottom_right = names.index("bottom_right") if "bottom_right" in names else -1
        self.flipped_label: np.ndarray | None = None
        """label -> its label after a horizontal flip (``None``: no pairs, nothing to swap)."""
        if flip_pairs:
            check_flip_pairs(flip_pairs, names)
            self.flipped_label = np.arange(len(names))
            for first, second in flip_pairs:
                i, j = names.index(first), names.index(second)
                self.flipped_label[[i, j]] = j, i

    def __call__(self, sample: Sample, rng: np.random.Generator) -> tuple[torch.Tensor, Target]:
        corner_class = (sample.labels == self.top_left) | (sample.labels == self.bottom_right)
        counts = np.bincount(sample.object_ids[corner_class], minlength=len(sample.boxes))
        cornered = np.flatnonzero(counts)
        free = ~corner_class
        # the four corners (x0, y0), (x1, y0), (x1, y1), (x0, y1) of each such box
        corners = sample.boxes[cornered][:, [0, 1, 2, 1, 2, 3, 0, 3]].reshape(-1, 2)
        extents = sample.boxes.reshape(-1, 2)  # two opposite corners per box, never clamped
        # with flip pairs, two probes whose left-to-right order tells whether the pipeline flipped
        probes = [[0, 0], [sample.width, 0]] if self.flipped_label is not None else []
        points = np.concatenate(
            [sample.keypoints[free], corners, extents, np.reshape(probes, (-1, 2))]
        )
        points = points.astype(np.float32)
        canvas = (sample.height, sample.width)
        inputs = {
            "image": tv_tensors.Image(torch.from_numpy(sample.image)),
            "keypoints": tv_tensors.KeyPoints(torch.from_numpy(points), canvas_size=canvas),
            "boxes": tv_tensors.BoundingBoxes(
                torch.from_numpy(sample.boxes), format="XYXY", canvas_size=canvas
            ),
        }
        out = _seeded(self.pipeline, inputs, int(rng.integers(2**63)))
        image = out["image"].as_subclass(torch.Tensor)
        points = out["keypoints"].as_subclass(torch.Tensor).numpy()
        free_labels = sample.labels[free]
        if self.flipped_label is not None:
            (left_x, _), (right_x, _) = points[-2:]
            points = points[:-2]
            if left_x > right_x:
                free_labels = self.flipped_label[free_labels]
        n_free, n_corners = int(free.sum()), 4 * len(cornered)
        extents = points[n_free + n_corners :].reshape(-1, 2, 2)
        keypoints, labels, owners = self._box_corners(points[n_free:][:n_corners], cornered)
        keypoints = np.concatenate([points[:n_free], keypoints])
        labels = np.concatenate([free_labels, labels])
        owners = np.concatenate([sample.object_ids[free], owners])
        boxes = out["boxes"].as_subclass(torch.Tensor).numpy()
        ignored = None
        if self.ignore is not None:
            unclamped = np.concatenate([extents.min(axis=1), extents.max(axis=1)], axis=1)
            ignored = self.ignore.ignored(unclamped, image.shape[1:])
        return image, _target(keypoints, labels, owners, boxes, ignored, image.shape[1:], sample)

    def _box_corners(
        self, corners: np.ndarray, objects: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The top-left and bottom-right of each transformed box's four corners [M * 4, 2]."""
        corners = corners.reshape(-1, 4, 2)
        along_diagonal = corners.sum(axis=2)
        rows = np.arange(len(corners))
        top_left = corners[rows, along_diagonal.argmin(axis=1)]
        bottom_right = corners[rows, along_diagonal.argmax(axis=1)]
        keypoints = np.stack([top_left, bottom_right], axis=1).reshape(-1, 2)
        labels = np.tile([self.top_left, self.bottom_right], len(corners))
        return keypoints, labels, np.repeat(objects, 2)


def check_flip_pairs(flip_pairs: Sequence[Sequence[str]], class_names: Sequence[str]) -> None:
    """Raise a ``ValueError`` naming the problem unless ``flip_pairs`` are pairs of two different
    class names, each name in at most one pair and none a box corner (``top_left`` and
    ``bottom_right`` are re-derived from the flipped box)."""
    seen: set[str] = set()
    for pair in flip_pairs:
        if isinstance(pair, str) or len(pair) != 2 or pair[0] == pair[1]:
            raise ValueError(f"{list(pair)!r} is not a pair of two different class names")
        for name in pair:
            if name not in class_names:
                raise ValueError(
                    f"{name!r} is not a keypoint class of the data {list(class_names)}"
                )
            if name in ("top_left", "bottom_right"):
                raise ValueError(
                    f"{name!r} is a box corner, which flips re-derive from the box: leave it out"
                )
            if name in seen:
                raise ValueError(f"{name!r} is in more than one pair")
            seen.add(name)


def _seeded(pipeline: v2.Transform, inputs: dict[str, Any], seed: int) -> dict[str, Any]:
    """Run ``pipeline`` with torch's CPU generator seeded by ``seed``, restoring its state after.

    (``torch.manual_seed`` would also queue seeds for every accelerator, which is slow.)
    """
    state = torch.get_rng_state()
    torch.default_generator.manual_seed(seed)
    try:
        return pipeline(inputs)
    finally:
        torch.set_rng_state(state)


def _target(
    keypoints: np.ndarray,
    labels: np.ndarray,
    owners: np.ndarray,
    boxes: np.ndarray,
    ignored: np.ndarray | None,
    size: Sequence[int],
    sample: Sample,
) -> Target:
    """Drop what left the image, renumber objects, and build the contract's target dict."""
    height, width = size
    alive = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    new_id = np.cumsum(alive) - 1
    inside = (  # the closed rectangle [0, W] x [0, H]: box corners on the border count
        (keypoints[:, 0] >= 0)
        & (keypoints[:, 0] <= width)
        & (keypoints[:, 1] >= 0)
        & (keypoints[:, 1] <= height)
        & alive[owners]
    )
    kept_boxes = boxes[alive]
    target = {}
    if ignored is not None:
        target["ignore"] = torch.as_tensor(ignored[owners[inside]], dtype=torch.bool)
    owners = new_id[owners[inside]]
    return target | {
        "keypoints": torch.as_tensor(keypoints[inside], dtype=torch.float32).reshape(-1, 2),
        "labels": torch.as_tensor(labels[inside], dtype=torch.int64),
        "sizes": torch.as_tensor(
            kept_boxes[owners, 2:] - kept_boxes[owners, :2], dtype=torch.float32
        ).reshape(-1, 2),
        "boxes": torch.as_tensor(kept_boxes, dtype=torch.float32).reshape(-1, 4),
        "object_ids": torch.as_tensor(owners, dtype=torch.int64),
        "image_id": torch.tensor(sample.image_id, dtype=torch.int64),
    }
