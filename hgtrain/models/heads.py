"""Keypoint heads on every stack: class heatmaps, sub-pixel offsets, and Saccade merg maps.

Outputs are at the backbone's output resolution (heatmap cell (i, j) covers input pixels
[i / sx, (i + 1) / sx) with sx = w / W); offsets are (x, y) in cells, decoded as (cell + offset) / s.
Heads use the layout of the original `_pred_mod` (Sequential of a conv-with-bias + ReLU module and
a 1x1 conv), so state-dict keys read like the original's: `heats.{s}.0.conv.weight`,
`heats.{s}.1.bias`, `offsets.{s}...`, `merg_heads.{s}.{j}...` (the original `att_modules`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol

import torch
from torch import Tensor, nn

from hgtrain.models.blocks import ConvBNReLU
from hgtrain.models.corner_pool import BottomPool, CornerPool, LeftPool, RightPool, TopPool

__all__ = ["HEATMAP_PRIOR_BIAS", "HeadOutput", "KeypointHeads", "prediction_head"]

# Final bias of heatmap and merg heads: sigmoid(-2.19) ~= 0.1, CornerNet's prior.
HEATMAP_PRIOR_BIAS = -2.19
TOP_LEFT, BOTTOM_RIGHT = "top_left", "bottom_right"
"""Class names that corner pooling predicts from its top-left and bottom-right streams."""


class HeadOutput(NamedTuple):
    """Per-stack head outputs, last stack last.

    heatmaps: [B, C, h, w] logits per stack. offsets: (x, y) per stack, either one map shared by
    every class, [B, 2, h, w], or one per class, [B, C, 2, h, w] (with corner pooling, each class
    takes the offsets of its stream, as CornerNet's ``tl_offs`` / ``br_offs``).
    merg_logits: per stack, one [B, 1, h_s, w_s] logit map per merg scale (coarsest first);
    empty lists when the heads have no merg heads.
    """

    heatmaps: list[Tensor]
    offsets: list[Tensor]
    merg_logits: list[list[Tensor]]


class BackboneOutputLike(Protocol):
    features: Sequence[Tensor]
    mergs: Sequence[Sequence[Tensor]]


def prediction_head(
    in_channels: int,
    out_channels: int,
    kernel_size: int = 3,
    hidden: int = 256,
    final_bias: float | None = None,
) -> nn.Sequential:
    """The original `_pred_mod`: k x k conv (bias, no BN) + ReLU, then a 1x1 conv with bias."""
    head = nn.Sequential(
        ConvBNReLU(in_channels, hidden, kernel_size, with_bn=False),
        nn.Conv2d(hidden, out_channels, 1),
    )
    if final_bias is not None:
        nn.init.constant_(head[1].bias, final_bias)
    return head


class KeypointHeads(nn.Module):
    """A heatmap head (C classes) and an offset head (2 channels) per stack, plus merg heads.

    Args:
        feature_dim: channels of each stack's feature map.
        num_classes: heatmap channels C.
        num_stacks: every stack gets its own heads (all are supervised).
        head_kernel: first conv of each head: 3 (CornerNet, Saccade) or 1 (CornerNet-Squeeze).
        head_dim: hidden channels of each head.
        corner_pool: CornerNet's corner pooling in front of the heads. Classes named
            ``top_left`` are predicted from the (TopPool, LeftPool) stream ``tl_modules`` by
            ``tl_heats`` and ``tl_offs``, classes named ``bottom_right`` from the (BottomPool,
            RightPool) stream ``br_modules`` by ``br_heats`` and ``br_offs``, as in the original;
            any other class (generic corners have no orientation) by ``heats`` and ``offsets`` on
            the unpooled features. The offsets are then one map per class ([B, C, 2, h, w]).
        class_names: names of the C classes, in heatmap channel order (needed by corner_pool).
        merg_channels: channels of each merg map, coarsest first (CornerNet-Saccade: 384, 384,
            256); each stack gets one head per entry (3x3 conv -> head_dim, ReLU, 1x1 -> 1).
    """

    def __init__(
        self,
        feature_dim: int,
        num_classes: int,
        num_stacks: int,
        head_kernel: int = 3,
        head_dim: int = 256,
        corner_pool: bool = False,
        merg_channels: Sequence[int] = (),
        class_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        if num_classes < 1 or num_stacks < 1:
            raise ValueError(
                f"need num_classes >= 1 and num_stacks >= 1, got {num_classes}, {num_stacks}"
            )
        names = list(class_names) if class_names is not None else []
        if class_names is not None and len(names) != num_classes:
            raise ValueError(f"{len(names)} class_names for num_classes={num_classes}")
        streams = {
            "tl": [c for c, name in enumerate(names) if name == TOP_LEFT],
            "br": [c for c, name in enumerate(names) if name == BOTTOM_RIGHT],
        }
        if corner_pool and not (streams["tl"] or streams["br"]):
            raise ValueError(
                f"corner_pool pools the classes named {TOP_LEFT!r} and {BOTTOM_RIGHT!r}, but the "
                f"classes are {names or 'unnamed'}: name them so, or leave corner_pool off"
            )
        streams["plain"] = [
            c
            for c in range(num_classes)
            if not corner_pool or c not in streams["tl"] + streams["br"]
        ]
        if not corner_pool:
            streams["tl"] = streams["br"] = []
        self.num_classes = num_classes
        self.num_stacks = num_stacks
        self.corner_pool = corner_pool
        self.merg_channels = tuple(merg_channels)
        self.streams = {name: classes for name, classes in streams.items() if classes}
        order = [c for classes in self.streams.values() for c in classes]
        self.register_buffer("class_order", torch.tensor(order).argsort(), persistent=False)

        def heads(out_channels: int, bias: float | None) -> nn.ModuleList:
            return nn.ModuleList(
                prediction_head(feature_dim, out_channels, head_kernel, head_dim, bias)
                for _ in range(num_stacks)
            )

        if "tl" in self.streams:
            self.tl_modules = nn.ModuleList(
                CornerPool(feature_dim, TopPool, LeftPool) for _ in range(num_stacks)
            )
            self.tl_heats = heads(len(self.streams["tl"]), HEATMAP_PRIOR_BIAS)
            self.tl_offs = heads(2, None)
        if "br" in self.streams:
            self.br_modules = nn.ModuleList(
                CornerPool(feature_dim, BottomPool, RightPool) for _ in range(num_stacks)
            )
            self.br_heats = heads(len(self.streams["br"]), HEATMAP_PRIOR_BIAS)
            self.br_offs = heads(2, None)
        if "plain" in self.streams:
            self.heats = heads(len(self.streams["plain"]), HEATMAP_PRIOR_BIAS)
            self.offsets = heads(2, None)
        self.merg_heads = nn.ModuleList(
            nn.ModuleList(
                prediction_head(channels, 1, 3, head_dim, HEATMAP_PRIOR_BIAS)
                for channels in self.merg_channels
            )
            for _ in range(num_stacks if self.merg_channels else 0)
        )

    @classmethod
    def for_backbone(cls, backbone: nn.Module, num_classes: int, **kwargs) -> KeypointHeads:
        """Heads matching a `HourglassBackbone`: its feature_dim, stacks and merg maps.

        The head kernel defaults to the variant's: 1 for fire-block (CornerNet-Squeeze) hourglasses,
        3 otherwise. Keyword arguments override any of these.
        """
        config = backbone.config
        defaults = {
            "feature_dim": config.feature_dim,
            "num_stacks": config.stacks,
            "head_kernel": 1 if config.block == "fire" else 3,
            "merg_channels": [info["num_chs"] for info in backbone.merg_info],
        }
        return cls(num_classes=num_classes, **{**defaults, **kwargs})

    def forward(
        self, backbone_output: BackboneOutputLike, last_stack_only: bool = False
    ) -> HeadOutput:
        """Heads of every stack (or, for inference, only of the last one: lists of length 1)."""
        features = list(backbone_output.features)
        if len(features) != self.num_stacks:
            raise ValueError(
                f"the heads were built for {self.num_stacks} stacks, got {len(features)} feature maps"
            )
        if self.merg_heads and (
            len(backbone_output.mergs) != self.num_stacks
            or any(len(m) != len(self.merg_channels) for m in backbone_output.mergs)
        ):
            raise ValueError(
                f"merg heads need {len(self.merg_channels)} merg maps per stack for "
                f"{self.num_stacks} stacks; build the backbone with return_mergs=True"
            )
        stacks = [self.num_stacks - 1] if last_stack_only else range(self.num_stacks)
        heatmaps, offsets, merg_logits = [], [], []
        for s in stacks:
            heatmap, offset = self._stack_heads(s, features[s])
            heatmaps.append(heatmap)
            offsets.append(offset)
            if self.merg_heads:
                scales = zip(self.merg_heads[s], backbone_output.mergs[s], strict=True)
                merg_logits.append([head(merg) for head, merg in scales])
            else:
                merg_logits.append([])
        return HeadOutput(heatmaps, offsets, merg_logits)

    def _stack_heads(self, stack: int, feature: Tensor) -> tuple[Tensor, Tensor]:
        """Heatmap [B, C, h, w] and offsets ([B, 2, h, w], or [B, C, 2, h, w] per stream)."""
        if not self.corner_pool:
            return self.heats[stack](feature), self.offsets[stack](feature)
        heatmaps, offsets = [], []
        for name in self.streams:
            if name == "plain":
                pooled, heats, offs = feature, self.heats, self.offsets
            elif name == "tl":
                pooled, heats, offs = self.tl_modules[stack](feature), self.tl_heats, self.tl_offs
            else:
                pooled, heats, offs = self.br_modules[stack](feature), self.br_heats, self.br_offs
            heatmaps.append(heats[stack](pooled))
            offset = offs[stack](pooled)
            offsets.extend([offset] * len(self.streams[name]))
        heatmap = torch.cat(heatmaps, dim=1)[:, self.class_order]
        return heatmap, torch.stack(offsets, dim=1)[:, self.class_order]
