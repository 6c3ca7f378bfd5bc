"""Training targets: keypoints -> heatmaps, sub-pixel offsets, and the Saccade merg maps.

Convention: keypoints are (x, y) in input pixels, pixel i covering [i, i+1). A map of size (h, w)
for an input of size (H, W) scales by sx = w / W, sy = h / H; a keypoint's cell is
(floor(x * sx), floor(y * sy)) and its offset target the fractional part (x * sx - cell_x, ...).

Heatmaps follow CornerNet: an unnormalised Gaussian whose peak is exactly 1 at the integer cell, drawn
in the keypoint's class channel and merged with an element-wise max, so the focal loss sees exactly one
positive per keypoint cell. Everything is vectorised over all keypoints of the batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple, TypeVar

import torch
from torch import Tensor

__all__ = [
    "KeypointTargets",
    "encode_merg_targets",
    "encode_targets",
    "gaussian_radius",
    "saccade_attention_ranges",
]

Number = TypeVar("Number", float, Tensor)

# CornerNet-Saccade's object-size ranges (longest side, input pixels of a 255 crop), one per merg map
# coarsest first (1/16, 1/8, 1/4). Closed intervals: an object of exactly 32 or 96 px hits two maps.
SACCADE_INPUT_SIDE = 255
SACCADE_ATTENTION_RANGES = ((96.0, 256.0), (32.0, 96.0), (0.0, 32.0))


class KeypointTargets(NamedTuple):
    """Encoded targets of one batch at one output resolution.

    heatmap: float32 [B, C, h, w], peaks exactly 1 at keypoint cells.
    indices: int64 [B, K], flat cell index y * w + x of each keypoint slot (0 where unused).
    offsets: float32 [B, K, 2], (x, y) fractional part of the keypoint in output cells.
    mask: bool [B, K], True for the slots that hold a keypoint.
    labels: int64 [B, K], the class of each slot's keypoint (0 where unused); ``None`` when the
        targets were made without classes (the loss then cannot normalise per class).
    ignore: bool [B, C, h, w], True where the focal loss does not penalise: the Gaussians of
        keypoints whose object is ignored (``ignore`` in the image's target); ``None``: nowhere.
    """

    heatmap: Tensor
    indices: Tensor
    offsets: Tensor
    mask: Tensor
    labels: Tensor | None = None
    ignore: Tensor | None = None


def gaussian_radius(height: Number, width: Number, min_overlap: float) -> Number:
    """CornerNet's corner-displacement radius (the fixed formula shipped in CornerNet-Lite).

    The largest displacement r of both corners such that the displaced box still has IoU >=
    `min_overlap` with the (height x width) box, as the minimum over the three cases (both corners
    outwards, both inwards, one of each). Works on floats or element-wise on tensors; the caller
    truncates (CornerNet uses max(0, int(r))). 8x8 at 0.3 gives 1.81, 64x64 at 0.7 gives 5.23.
    """
    if not 0.0 < min_overlap < 1.0:
        raise ValueError(f"min_overlap must be in (0, 1), got {min_overlap}")
    sqrt = torch.sqrt if isinstance(height, Tensor) or isinstance(width, Tensor) else math.sqrt
    area = height * width
    o = min_overlap

    b1 = height + width
    c1 = area * (1 - o) / (1 + o)
    r1 = (b1 - sqrt(b1**2 - 4 * c1)) / 2

    b2 = 2 * (height + width)
    c2 = (1 - o) * area
    r2 = (b2 - sqrt(b2**2 - 16 * c2)) / 8

    b3 = -2 * o * (height + width)
    c3 = (o - 1) * area
    r3 = (b3 + sqrt(b3**2 - 16 * o * c3)) / (8 * o)

    if isinstance(r1, Tensor):
        return torch.minimum(torch.minimum(r1, r2), r3)
    return min(r1, r2, r3)


def encode_targets(
    targets: Sequence[dict[str, Tensor]],
    num_classes: int,
    input_size: tuple[int, int],
    output_size: tuple[int, int],
    gaussian_iou: float | None = 0.3,
    sigma: float | None = None,
    min_radius: int = 0,
    min_slots: int = 256,
) -> KeypointTargets:
    """Encode per-image keypoints into heatmap, offset and mask targets at `output_size`.

    Args:
        targets: one dict per image with `keypoints` float [N, 2] (x, y input pixels), `labels`
            int64 [N] and, for the CornerNet radius, `sizes` float [N, 2] (w, h input pixels of the
            object owning each keypoint). Tensors may live on any device; the result follows them.
        num_classes: number of heatmap channels C.
        input_size: (H, W) of the network input.
        output_size: (h, w) of the heatmap.
        gaussian_iou: CornerNet's `min_overlap`; the radius is max(min_radius, int(r)) with r from
            `gaussian_radius` on the object size at output resolution (ceil), sigma = (2r + 1) / 6.
        sigma: fixed Gaussian sigma in output cells (window radius int(3 * sigma)). When given it
            wins over `gaussian_iou` (which has a default), and `sizes` are not needed.
        min_radius: lower bound of the CornerNet radius (0 = a single-cell target for small objects).
        min_slots: the least number K of offset slots per image. K grows to the most keypoints
            in one image of the batch when that is more, so any number of keypoints trains;
            a floor keeps the shapes of typical batches the same from step to step.

    Keypoints outside the closed image rectangle [0, W] x [0, H] are dropped. A keypoint on the far
    border (x == W) goes to the last cell with offset 1.0, so decoding still returns x == W. Two
    keypoints in one cell share one heatmap peak but keep one offset slot each. Keypoints flagged
    in a target's optional ``ignore`` [N] are no targets: their Gaussians (same radius rule) form
    the ``ignore`` map instead, as CornerNet-Saccade's valid masks.
    """
    targets, ignored = _split_ignored(targets)
    ignore = None
    if ignored is not None:
        points = _KeypointBatch.gather(ignored, num_classes, input_size, output_size)
        drawn = _draw_heatmap(points, num_classes, output_size, gaussian_iou, sigma, min_radius)
        ignore = drawn > 0
    points = _KeypointBatch.gather(targets, num_classes, input_size, output_size)
    if min_slots < 1:
        raise ValueError(f"min_slots must be >= 1, got {min_slots}")
    slots = max(min_slots, points.counts_max)
    heatmap = _draw_heatmap(points, num_classes, output_size, gaussian_iou, sigma, min_radius)

    batch_size, out_w, device = points.batch_size, output_size[1], heatmap.device
    slot_index = (points.batch, _slot_in_image(points.batch, points.keep, batch_size))
    indices = torch.zeros(batch_size, slots, dtype=torch.long, device=device)
    offsets = torch.zeros(batch_size, slots, 2, device=device)
    mask = torch.zeros(batch_size, slots, dtype=torch.bool, device=device)
    labels = torch.zeros(batch_size, slots, dtype=torch.long, device=device)
    keep = points.keep
    indices.index_put_(slot_index, torch.where(keep, points.cy * out_w + points.cx, 0))
    offsets.index_put_(slot_index, points.offsets * keep.unsqueeze(1))
    mask.index_put_(slot_index, keep)
    labels.index_put_(slot_index, torch.where(keep, points.labels, 0))
    return KeypointTargets(heatmap, indices, offsets, mask, labels, ignore)


PER_KEYPOINT = ("keypoints", "labels", "sizes", "object_ids")
"""Target entries with one row per keypoint, split by ``ignore``."""


def _split_ignored(
    targets: Sequence[dict[str, Tensor]],
) -> tuple[Sequence[dict[str, Tensor]], list[dict[str, Tensor]] | None]:
    """The targets without their ignored keypoints, and the ignored ones (``None`` when no target
    has ``ignore``; no device sync then)."""
    if not any("ignore" in t for t in targets):
        return targets, None
    kept, ignored = [], []
    for target in targets:
        flags = target.get("ignore")
        if flags is None:
            flags = torch.zeros(target["keypoints"].shape[0], dtype=torch.bool)
        flags = flags.to(target["keypoints"].device)
        kept.append({k: v[~flags] if k in PER_KEYPOINT else v for k, v in target.items()})
        ignored.append({k: v[flags] if k in PER_KEYPOINT else v for k, v in target.items()})
    return kept, ignored


def saccade_attention_ranges(input_size: tuple[int, int]) -> tuple[tuple[float, float], ...]:
    """CornerNet-Saccade's size ranges scaled from its 255 px crops to `input_size` (longest side)."""
    scale = max(input_size) / SACCADE_INPUT_SIDE
    return tuple((lo * scale, hi * scale) for lo, hi in SACCADE_ATTENTION_RANGES)


def encode_merg_targets(
    targets: Sequence[dict[str, Tensor]],
    input_size: tuple[int, int],
    merg_sizes: Sequence[tuple[int, int]],
    mode: str = "keypoints",
    gaussian_iou: float | None = 0.3,
    sigma: float | None = None,
    min_radius: int = 0,
    attention_ranges: Sequence[tuple[float, float]] | None = None,
) -> list[Tensor]:
    """Targets for the Saccade merg heads: one float [B, 1, h_s, w_s] map per merg scale.

    mode "keypoints" (default): a class-agnostic keypoint heatmap at each scale, with the same
    Gaussian rules as `encode_targets`. mode "attention": CornerNet-Saccade's attention maps; each
    box in `boxes` (xyxy) whose longest side lies in the closed range of a scale sets the single
    cell floor(centre * scale) of that map to 1. `attention_ranges` are (lo, hi) input pixels,
    coarsest first like `merg_sizes`; by default the original 255 px ranges scaled by
    max(input_size) / 255 (`saccade_attention_ranges`), so objects keep their share of the image.
    """
    if mode == "keypoints":
        maps = []
        for size in merg_sizes:
            points = _KeypointBatch.gather(targets, None, input_size, size)
            maps.append(_draw_heatmap(points, 1, size, gaussian_iou, sigma, min_radius))
        return maps
    if mode == "attention":
        ranges = attention_ranges or saccade_attention_ranges(input_size)
        if len(ranges) != len(merg_sizes):
            raise ValueError(
                f"attention mode needs one size range per merg scale: got {len(ranges)} ranges "
                f"for {len(merg_sizes)} scales; pass attention_ranges with {len(merg_sizes)} entries"
            )
        return _attention_maps(targets, input_size, merg_sizes, ranges)
    raise ValueError(f"unknown merg target mode {mode!r}; use 'keypoints' or 'attention'")


def _attention_maps(
    targets: Sequence[dict[str, Tensor]],
    input_size: tuple[int, int],
    merg_sizes: Sequence[tuple[int, int]],
    ranges: Sequence[tuple[float, float]],
) -> list[Tensor]:
    """One-pixel object-centre maps, each object on the maps whose size range holds its longest side."""
    if len(targets) == 0 or any("boxes" not in t for t in targets):
        raise ValueError("attention merg targets need `boxes` (xyxy input pixels) in every target")
    boxes = torch.cat([t["boxes"].reshape(-1, 4).float() for t in targets])
    batch = _image_index([t["boxes"].shape[0] for t in targets], boxes.device)
    longest = (boxes[:, 2:] - boxes[:, :2]).amax(dim=1)
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    in_h, in_w = input_size
    maps = []
    for (h, w), (lo, hi) in zip(merg_sizes, ranges, strict=True):
        cx = (centre[:, 0] * (w / in_w)).floor().long().clamp(0, w - 1)
        cy = (centre[:, 1] * (h / in_h)).floor().long().clamp(0, h - 1)
        hit = ((longest >= lo) & (longest <= hi)).float()
        attention = torch.zeros(len(targets), 1, h, w, device=boxes.device)
        flat_index = (batch * h + cy) * w + cx
        attention.view(-1).scatter_reduce_(0, flat_index, hit, reduce="amax")
        maps.append(attention)
    return maps


class _KeypointBatch(NamedTuple):
    """All keypoints of a batch, flattened and scaled to one output resolution.

    Keypoints outside the image stay in (so no data-dependent shapes, no device sync) with
    `keep` False and their cell clamped into the map.
    """

    batch: Tensor  # int64 [N], image index, sorted
    labels: Tensor  # int64 [N]
    cx: Tensor  # int64 [N], cell column
    cy: Tensor  # int64 [N], cell row
    offsets: Tensor  # float32 [N, 2], (x, y) position inside the cell
    keep: Tensor  # bool [N], inside the closed image rectangle
    box_sizes: Tensor | None  # float32 [N, 2], (w, h) of the owning object in output cells, ceil
    batch_size: int
    counts_max: int  # most keypoints in one image

    @classmethod
    def gather(
        cls,
        targets: Sequence[dict[str, Tensor]],
        num_classes: int | None,
        input_size: tuple[int, int],
        output_size: tuple[int, int],
    ) -> _KeypointBatch:
        """Concatenate and scale; `num_classes=None` makes every keypoint class 0 (class-agnostic)."""
        if len(targets) == 0:
            raise ValueError("keypoint targets need at least one image")
        counts = [t["keypoints"].shape[0] for t in targets]
        points = torch.cat([t["keypoints"].reshape(-1, 2).float() for t in targets])
        labels = torch.cat([t["labels"].reshape(-1).long() for t in targets])
        if labels.shape[0] != points.shape[0]:
            raise ValueError("every target needs one label per keypoint")
        if num_classes is None:
            labels = torch.zeros_like(labels)
        (in_h, in_w), (out_h, out_w) = input_size, output_size
        scale = points.new_tensor([out_w / in_w, out_h / in_h])
        box_sizes = None
        if all("sizes" in t for t in targets):
            sizes = torch.cat([t["sizes"].reshape(-1, 2).float() for t in targets])
            box_sizes = (sizes * scale).ceil()

        scaled = points * scale
        limit = scaled.new_tensor([out_w, out_h])
        keep = ((scaled >= 0) & (scaled <= limit)).all(dim=1)
        cells = torch.minimum(scaled.floor(), limit - 1).clamp(min=0)
        return cls(
            batch=_image_index(counts, points.device),
            labels=labels,
            cx=cells[:, 0].long(),
            cy=cells[:, 1].long(),
            offsets=scaled - cells,
            keep=keep,
            box_sizes=box_sizes,
            batch_size=len(targets),
            counts_max=max(counts),
        )


def _image_index(counts: Sequence[int], device: torch.device) -> Tensor:
    images = torch.arange(len(counts), device=device)
    return torch.repeat_interleave(images, torch.tensor(counts, device=device))


def _slot_in_image(batch: Tensor, keep: Tensor, batch_size: int) -> Tensor:
    """Offset slot of each keypoint: kept keypoints first, in input order, then the dropped ones."""
    index = torch.arange(batch.numel(), device=batch.device)
    starts = torch.cumsum(torch.bincount(batch, minlength=batch_size), 0)
    starts = torch.cat([starts.new_zeros(1), starts[:-1]])[batch]
    kept_before = torch.cumsum(keep.long(), 0) - keep.long()
    kept_before = kept_before - kept_before[starts]
    kept_in_image = torch.zeros(batch_size, dtype=torch.long, device=batch.device)
    kept_in_image.index_add_(0, batch, keep.long())
    dropped_before = (index - starts) - kept_before
    return torch.where(keep, kept_before, kept_in_image[batch] + dropped_before)


def _bump_shapes(
    points: _KeypointBatch, gaussian_iou: float | None, sigma: float | None, min_radius: int
) -> tuple[Tensor, Tensor]:
    """Per-keypoint window radius (int64) and Gaussian sigma (float32), in output cells."""
    if sigma is not None:
        if sigma <= 0:
            raise ValueError(f"sigma must be positive, got {sigma}")
        if min_radius:
            raise ValueError(
                "min_radius applies to the gaussian_iou radius only; drop it with sigma"
            )
        radii = torch.full_like(points.cx, int(3 * sigma))
        return radii, torch.full_like(points.offsets[:, 0], float(sigma))
    if gaussian_iou is None:
        raise ValueError(
            "keypoint targets need gaussian_iou (CornerNet radius) or sigma; both None"
        )
    if points.box_sizes is None:
        raise ValueError(
            "the gaussian_iou radius needs `sizes` (w, h of the owning object) in every target; "
            "add them or pass sigma for a fixed-size Gaussian"
        )
    width, height = points.box_sizes.unbind(dim=1)
    radius = gaussian_radius(height, width, gaussian_iou).nan_to_num(0.0)
    radii = radius.long().clamp(min=min_radius)
    return radii, (2 * radii + 1) / 6


def _draw_heatmap(
    points: _KeypointBatch,
    num_classes: int,
    output_size: tuple[int, int],
    gaussian_iou: float | None,
    sigma: float | None,
    min_radius: int,
) -> Tensor:
    """Max-merge square (2r+1)^2 Gaussian windows of all keypoints into a [B, C, h, w] heatmap.

    One window of the batch's largest radius is laid over every keypoint and a single scatter-amax
    writes them all; cells outside a keypoint's own radius, outside the map, or of a dropped
    keypoint carry the value 0, which the max ignores. The labels check and the window size share
    the one host sync.
    """
    radii, sigmas = _bump_shapes(points, gaussian_iou, sigma, min_radius)
    h, w = output_size
    heatmap = torch.zeros(points.batch_size, num_classes, h, w, device=points.cx.device)
    if points.batch.numel() == 0:
        return heatmap
    low, high, reach = torch.stack([points.labels.min(), points.labels.max(), radii.max()]).tolist()
    if low < 0 or high >= num_classes:
        raise ValueError(f"keypoint labels must be in [0, {num_classes}); check num_classes")

    # Separable: per keypoint a row and a column factor; zeroed factors switch cells off, and the
    # clamped (always valid) index of a switched-off cell receives 0, which the max ignores.
    delta = torch.arange(-reach, reach + 1, device=heatmap.device)
    gx = _axis_factor(points.cx, delta, radii, sigmas, w, points.keep).unsqueeze(1)
    gy = _axis_factor(points.cy, delta, radii, sigmas, h, points.keep).unsqueeze(2)
    px = (points.cx.unsqueeze(1) + delta).clamp(0, w - 1).unsqueeze(1)
    py = (points.cy.unsqueeze(1) + delta).clamp(0, h - 1).unsqueeze(2)
    plane = (points.batch * num_classes + points.labels).view(-1, 1, 1)
    flat_index = (plane * h + py) * w + px
    values = gx * gy
    heatmap.view(-1).scatter_reduce_(0, flat_index.view(-1), values.view(-1), reduce="amax")
    return heatmap


def _axis_factor(
    centre: Tensor, delta: Tensor, radii: Tensor, sigmas: Tensor, size: int, keep: Tensor
) -> Tensor:
    """exp(-d^2 / (2 sigma^2)) along one axis, [N, 2R+1]; 0 beyond the radius, the map or if dropped."""
    position = centre.unsqueeze(1) + delta
    valid = (delta.abs() <= radii.unsqueeze(1)) & (position >= 0) & (position < size)
    valid &= keep.unsqueeze(1)
    return torch.exp(-(delta**2) / (2 * sigmas.unsqueeze(1) ** 2)) * valid
