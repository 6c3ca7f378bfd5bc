"""Losses of the heatmap task: CornerNet's focal loss, the sub-pixel offset loss, the merg loss.

The focal loss works on logits (log p = logsigmoid(x), log(1 - p) = logsigmoid(-x)) in float32,
so it stays finite, with useful gradients, for saturated logits and under bf16/fp16 autocast
(the original clamps sigmoid outputs, which zeroes the gradient of saturated logits). Every stack
is supervised with the same weights and the terms are averaged over stacks, as in CornerNet.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hgtrain.task.targets import KeypointTargets

__all__ = ["HeatmapLoss", "LossOutput", "focal_loss", "offset_loss"]

OFFSET_LOSSES = ("smooth_l1", "l1")
NORMALIZATIONS = ("all", "per_class")


class HeadOutputLike(Protocol):
    """What `HeatmapLoss` reads from the heads (hgtrain.models.heads.HeadOutput)."""

    heatmaps: Sequence[Tensor]  # per stack, [B, C, h, w] logits
    offsets: Sequence[Tensor]  # per stack, [B, 2, h, w]
    merg_logits: Sequence[Sequence[Tensor]]  # per stack, per merg scale, [B, 1, h_s, w_s]


class LossOutput(NamedTuple):
    """`total` to backpropagate, and detached `components` named for logging.

    Components: `focal/stack{s}`, `offset/stack{s}`, `merg/stack{s}/scale{j}` per stack (and
    merg scale, coarsest first), and their means over stacks `focal`, `offset`, `merg` (the merg
    mean is over stacks of the sum over scales). All unweighted.
    """

    total: Tensor
    components: dict[str, Tensor]


def focal_loss(
    logits: Tensor,
    target_heatmap: Tensor,
    alpha: float = 2.0,
    beta: float = 4.0,
    normalization: str = "all",
    ignore: Tensor | None = None,
) -> Tensor:
    """CornerNet's penalty-reduced focal loss, summed and divided by max(#positives, 1).

    Positives are the cells where the target is exactly 1: loss (1 - p)^alpha * -log p; every
    other cell: (1 - y)^beta * p^alpha * -log(1 - p). Computed in float32 whatever the input dtype.
    ``normalization="all"`` divides the whole sum by all positives; ``"per_class"`` divides each
    class's (channel's) sum by that class's positives and adds the classes, as CornerNet adds its
    top-left and bottom-right heatmap losses, each normalised by its own positives.
    ``ignore`` (bool, like the target) zeroes the loss of its cells, which still count as positives
    where they are (CornerNet-Saccade's ``_focal_loss_mask``).
    """
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"unknown normalization {normalization!r}; use one of {NORMALIZATIONS}")
    if logits.shape != target_heatmap.shape:
        raise ValueError(
            f"logits {tuple(logits.shape)} and target heatmap {tuple(target_heatmap.shape)} differ"
        )
    with torch.autocast(logits.device.type, enabled=False):
        x = logits.float()
        y = target_heatmap.float()
        positive = y == 1
        log_p, log_not_p = F.logsigmoid(x), F.logsigmoid(-x)
        p, not_p = log_p.exp(), log_not_p.exp()
        positive_loss = not_p.pow(alpha) * -log_p
        negative_loss = (1 - y).pow(beta) * p.pow(alpha) * -log_not_p
        loss = torch.where(positive, positive_loss, negative_loss)
        if ignore is not None:
            loss = loss.masked_fill(ignore, 0.0)
        if normalization == "per_class":
            per_class = (0, *range(2, loss.dim()))
            return (loss.sum(per_class) / positive.sum(per_class).clamp(min=1)).sum()
        return loss.sum() / positive.sum().clamp(min=1)


def _offsets_at(offsets: Tensor, cells: Tensor, labels: Tensor | None) -> Tensor:
    """[B, K, 2] offsets at flat cell indices [B, K]: from a shared [B, 2, h, w] map, or from
    each slot's own class in a per-class [B, C, 2, h, w] map."""
    if offsets.dim() == 5:
        batch, classes, _, h, w = offsets.shape
        offsets = offsets.transpose(1, 2).reshape(batch, 2, classes * h * w)
        cells = labels * (h * w) + cells
    index = cells.unsqueeze(1).expand(-1, 2, -1)
    return offsets.flatten(2).gather(2, index).transpose(1, 2)


def offset_loss(
    pred_offsets: Tensor,
    targets: KeypointTargets,
    kind: str = "smooth_l1",
    normalization: str = "all",
) -> Tensor:
    """Offset regression at the ground-truth cells, summed over x and y, / max(#keypoints, 1).

    ``pred_offsets`` is one map for every class, [B, 2, h, w], or one per class, [B, C, 2, h, w]
    (corner pooling), read at each keypoint's own class.
    `kind` is "smooth_l1" (CornerNet, beta 1) or "l1" (CenterNet). ``normalization="per_class"``
    divides each class's sum by that class's keypoints and adds the classes (CornerNet's top-left
    and bottom-right offset losses); it needs ``targets.labels``.
    """
    if kind not in OFFSET_LOSSES:
        raise ValueError(f"unknown offset loss {kind!r}; use one of {OFFSET_LOSSES}")
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"unknown normalization {normalization!r}; use one of {NORMALIZATIONS}")
    if normalization == "per_class" and targets.labels is None:
        raise ValueError("per-class normalisation needs targets with labels (encode_targets)")
    per_class = pred_offsets.dim() == 5
    batch = pred_offsets.shape[0]
    if pred_offsets.shape[-3] != 2 or targets.indices.shape[0] != batch:
        raise ValueError(
            f"pred_offsets must be [B, 2, h, w] or [B, C, 2, h, w] for the "
            f"{targets.indices.shape[0]} target images, got {tuple(pred_offsets.shape)}"
        )
    if per_class and targets.labels is None:
        raise ValueError("offsets per class need targets with labels (encode_targets)")
    with torch.autocast(pred_offsets.device.type, enabled=False):
        picked = _offsets_at(pred_offsets.float(), targets.indices, targets.labels)
        if kind == "smooth_l1":
            error = F.smooth_l1_loss(picked, targets.offsets, reduction="none", beta=1.0)
        else:
            error = F.l1_loss(picked, targets.offsets, reduction="none")
        error = error.sum(dim=2) * targets.mask
        if normalization == "per_class":
            classes = targets.heatmap.shape[1]
            one_hot = F.one_hot(targets.labels, classes) * targets.mask.unsqueeze(2)
            sums = (error.unsqueeze(2) * one_hot).sum(dim=(0, 1))
            return (sums / one_hot.sum(dim=(0, 1)).clamp(min=1)).sum()
        return error.sum() / targets.mask.sum().clamp(min=1)


class HeatmapLoss(nn.Module):
    """Weighted focal + offset (+ merg) loss over every stack, averaged over stacks.

    total = focal_weight * focal + offset_weight * offset + merg_weight * merg, each term the mean
    over stacks; the merg term of one stack is the sum of the focal losses of its merg scales.
    CornerNet-Saccade sums its attention scales too, but divides them by the number of stacks
    twice: ``merg_weight = 1 / stacks`` gives the original's weight. ``normalization`` is that of
    the focal and offset terms (:func:`focal_loss`); ``"per_class"`` is the original's.
    """

    def __init__(
        self,
        focal_weight: float = 1.0,
        offset_weight: float = 1.0,
        offset_kind: str = "smooth_l1",
        merg_weight: float = 1.0,
        normalization: str = "all",
    ) -> None:
        super().__init__()
        if offset_kind not in OFFSET_LOSSES:
            raise ValueError(f"unknown offset_kind {offset_kind!r}; use one of {OFFSET_LOSSES}")
        if normalization not in NORMALIZATIONS:
            raise ValueError(
                f"unknown normalization {normalization!r}; use one of {NORMALIZATIONS}"
            )
        self.focal_weight = focal_weight
        self.offset_weight = offset_weight
        self.offset_kind = offset_kind
        self.merg_weight = merg_weight
        self.normalization = normalization

    def forward(
        self,
        outputs: HeadOutputLike,
        targets: KeypointTargets,
        merg_targets: Sequence[Tensor] | None = None,
    ) -> LossOutput:
        stacks = len(outputs.heatmaps)
        has_mergs = any(len(scales) for scales in outputs.merg_logits)
        if has_mergs and merg_targets is None:
            raise ValueError("the heads predict merg maps: pass merg_targets (encode_merg_targets)")
        if merg_targets is not None and not has_mergs:
            raise ValueError(
                "merg_targets given but the heads have no merg maps (merg_channels=())"
            )

        components: dict[str, Tensor] = {}
        focal, offset, merg = [], [], []
        for s in range(stacks):
            focal.append(
                focal_loss(
                    outputs.heatmaps[s],
                    targets.heatmap,
                    normalization=self.normalization,
                    ignore=targets.ignore,
                )
            )
            offset.append(
                offset_loss(outputs.offsets[s], targets, self.offset_kind, self.normalization)
            )
            components[f"focal/stack{s}"] = focal[-1]
            components[f"offset/stack{s}"] = offset[-1]
            if has_mergs:
                scales = _merg_losses(outputs.merg_logits[s], merg_targets)
                for j, value in enumerate(scales):
                    components[f"merg/stack{s}/scale{j}"] = value
                merg.append(torch.stack(scales).sum())

        components["focal"] = torch.stack(focal).mean()
        components["offset"] = torch.stack(offset).mean()
        total = self.focal_weight * components["focal"] + self.offset_weight * components["offset"]
        if has_mergs:
            components["merg"] = torch.stack(merg).mean()
            total = total + self.merg_weight * components["merg"]
        return LossOutput(total, {name: value.detach() for name, value in components.items()})


def _merg_losses(logits: Sequence[Tensor], targets: Sequence[Tensor]) -> list[Tensor]:
    if len(logits) != len(targets):
        raise ValueError(f"{len(logits)} merg maps per stack but {len(targets)} merg targets")
    return [focal_loss(x, y) for x, y in zip(logits, targets, strict=True)]
