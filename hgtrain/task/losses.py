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
    logits: Tensor, target_heatmap: Tensor, alpha: float = 2.0, beta: float = 4.0
) -> Tensor:
    """CornerNet's penalty-reduced focal loss, summed and divided by max(#positives, 1).

    Positives are the cells where the target is exactly 1: loss (1 - p)^alpha * -log p; every
    other cell: (1 - y)^beta * p^alpha * -log(1 - p). Computed in float32 whatever the input dtype.
    """
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
        loss = torch.where(positive, positive_loss, negative_loss).sum()
        return loss / positive.sum().clamp(min=1)


def offset_loss(pred_offsets: Tensor, targets: KeypointTargets, kind: str = "smooth_l1") -> Tensor:
    """Offset regression at the ground-truth cells, summed over x and y, / max(#keypoints, 1).

    `kind` is "smooth_l1" (CornerNet, beta 1) or "l1" (CenterNet).
    """
    if kind not in OFFSET_LOSSES:
        raise ValueError(f"unknown offset loss {kind!r}; use one of {OFFSET_LOSSES}")
    batch, channels = pred_offsets.shape[:2]
    if channels != 2 or targets.indices.shape[0] != batch:
        raise ValueError(
            f"pred_offsets must be [B, 2, h, w] for the {targets.indices.shape[0]} target images, "
            f"got {tuple(pred_offsets.shape)}"
        )
    with torch.autocast(pred_offsets.device.type, enabled=False):
        index = targets.indices.unsqueeze(1).expand(-1, 2, -1)
        picked = pred_offsets.float().flatten(2).gather(2, index).transpose(1, 2)
        if kind == "smooth_l1":
            error = F.smooth_l1_loss(picked, targets.offsets, reduction="none", beta=1.0)
        else:
            error = F.l1_loss(picked, targets.offsets, reduction="none")
        mask = targets.mask.unsqueeze(2)
        return (error * mask).sum() / mask.sum().clamp(min=1)


class HeatmapLoss(nn.Module):
    """Weighted focal + offset (+ merg) loss over every stack, averaged over stacks.

    total = focal_weight * focal + offset_weight * offset + merg_weight * merg, each term the mean
    over stacks; the merg term of one stack is the sum of the focal losses of its merg scales
    (CornerNet-Saccade sums its attention scales; unlike the original, it is divided by the number
    of stacks once, not twice).
    """

    def __init__(
        self,
        focal_weight: float = 1.0,
        offset_weight: float = 1.0,
        offset_kind: str = "smooth_l1",
        merg_weight: float = 1.0,
    ) -> None:
        super().__init__()
        if offset_kind not in OFFSET_LOSSES:
            raise ValueError(f"unknown offset_kind {offset_kind!r}; use one of {OFFSET_LOSSES}")
        self.focal_weight = focal_weight
        self.offset_weight = offset_weight
        self.offset_kind = offset_kind
        self.merg_weight = merg_weight

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
            focal.append(focal_loss(outputs.heatmaps[s], targets.heatmap))
            offset.append(offset_loss(outputs.offsets[s], targets, self.offset_kind))
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
