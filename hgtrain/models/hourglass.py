"""One recursive hourglass module for CornerNet, CornerNet-Saccade and CornerNet-Squeeze.

An hourglass level with ``c = dims[0]`` channels at its input resolution and ``d = dims[1]`` below::

    x ──► up1 (skip branch, c→c, full resolution) ───────────────────────────────┐
    │                                                                             merg ─► out
    └──► max1 (pool) ─► low1 (down, c→d, stride 2) ─► low2 (next level, or the    │
         bottleneck at the innermost level) ─► low3 (back up, d→c) ─► up2 (unpool)┘

What each part is made of is decided by a :class:`LayerMakers` value, so that the same recursion
serves the three variants. The module attributes keep the original names (``up1``, ``max1``,
``low1``, ``low2``, ``low3``, ``up2``, ``merg``), which makes the state-dict keys those of the
original CornerNet-Lite code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from hgtrain.models.blocks import Fire, Residual

BlockFactory = Callable[..., nn.Module]
"""``block(in_channels, out_channels, stride=1) -> nn.Module``: a residual or fire block."""


class AddMerge(nn.Module):
    """Merges the skip branch and the unpooled branch of a level by addition."""

    def forward(self, skip: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        return skip + up


def blocks(block: BlockFactory, in_channels: int, out_channels: int, count: int) -> nn.Sequential:
    """``count`` blocks: the first maps ``in_channels`` to ``out_channels``, the rest keep it."""
    layers = [block(in_channels, out_channels)]
    layers += [block(out_channels, out_channels) for _ in range(count - 1)]
    return nn.Sequential(*layers)


def downsampling_blocks(
    block: BlockFactory, in_channels: int, out_channels: int, count: int
) -> nn.Sequential:
    """``count`` blocks whose first one halves the resolution (the original ``make_hg_layer``)."""
    layers = [block(in_channels, out_channels, stride=2)]
    layers += [block(out_channels, out_channels) for _ in range(count - 1)]
    return nn.Sequential(*layers)


def reversed_blocks(
    block: BlockFactory, in_channels: int, out_channels: int, count: int
) -> nn.Sequential:
    """``count`` blocks whose last one changes the channels (the original ``make_hg_layer_revr``)."""
    layers = [block(in_channels, in_channels) for _ in range(count - 1)]
    layers += [block(in_channels, out_channels)]
    return nn.Sequential(*layers)


def nearest_unpool(channels: int) -> nn.Module:
    """Nearest-neighbour x2 upsampling (CornerNet, CornerNet-Saccade); no parameters."""
    return nn.Upsample(scale_factor=2, mode="nearest")


def transposed_unpool(channels: int) -> nn.Module:
    """Learned x2 upsampling, ``ConvTranspose2d(c, c, 4, stride 2, padding 1)`` with bias (Squeeze)."""
    return nn.ConvTranspose2d(channels, channels, kernel_size=4, stride=2, padding=1)


def add_merge(channels: int) -> nn.Module:
    """Addition of the two branches; no parameters."""
    return AddMerge()


def identity_pool(channels: int) -> nn.Module:
    """No pooling: all three variants downsample with the first (stride-2) block of ``low1``."""
    return nn.Identity()


@dataclass(frozen=True)
class LayerMakers:
    """How each part of an hourglass level is built.

    Attributes:
        skip: ``(c, c, m)`` -> the full-resolution skip branch ``up1``.
        pool: ``(c)`` -> ``max1``, applied before going down.
        down: ``(c, d, m)`` -> ``low1``, whose first block has stride 2.
        bottleneck: ``(d, d, m)`` -> the innermost ``low2``.
        up: ``(d, c, m)`` -> ``low3``, whose last block restores ``c`` channels.
        unpool: ``(c)`` -> ``up2``, doubling the resolution.
        merge: ``(c)`` -> ``merg``, joining ``up1`` and ``up2``.
    """

    skip: Callable[[int, int, int], nn.Module]
    pool: Callable[[int], nn.Module]
    down: Callable[[int, int, int], nn.Module]
    bottleneck: Callable[[int, int, int], nn.Module]
    up: Callable[[int, int, int], nn.Module]
    unpool: Callable[[int], nn.Module]
    merge: Callable[[int], nn.Module]

    @classmethod
    def from_block(cls, block: BlockFactory, unpool: Callable[[int], nn.Module]) -> LayerMakers:
        """The makers of all three variants: one block type everywhere inside the hourglass."""

        return cls(
            skip=partial(blocks, block),
            pool=identity_pool,
            down=partial(downsampling_blocks, block),
            bottleneck=partial(blocks, block),
            up=partial(reversed_blocks, block),
            unpool=unpool,
            merge=add_merge,
        )


BLOCKS: dict[str, BlockFactory] = {"residual": Residual, "fire": Fire}
UNPOOLS: dict[str, Callable[[int], nn.Module]] = {
    "nearest": nearest_unpool,
    "transposed": transposed_unpool,
}


class Hourglass(nn.Module):
    """``n`` nested hourglass levels (the original ``hg_module`` and ``saccade_module``).

    ``forward`` returns ``(out, mergs)``: the output of the outermost merge, and the merge output of
    every level, innermost (coarsest) first, so ``mergs[-1] is out``. CornerNet-Saccade supervises
    ``mergs``; the other variants ignore them (collecting them costs nothing).
    """

    def __init__(
        self, n: int, dims: Sequence[int], modules: Sequence[int], makers: LayerMakers
    ) -> None:
        super().__init__()
        channels, inner_channels, count = dims[0], dims[1], modules[0]
        self.up1 = makers.skip(channels, channels, count)
        self.max1 = makers.pool(channels)
        self.low1 = makers.down(channels, inner_channels, count)
        self.innermost = n == 1
        if self.innermost:
            self.low2 = makers.bottleneck(inner_channels, inner_channels, modules[1])
        else:
            self.low2 = Hourglass(n - 1, dims[1:], modules[1:], makers)
        self.low3 = makers.up(inner_channels, channels, count)
        self.up2 = makers.unpool(channels)
        self.merg = makers.merge(channels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        skip = self.up1(x)
        low = self.low1(self.max1(x))
        if self.innermost:
            low, mergs = self.low2(low), []
        else:
            low, mergs = self.low2(low)
        out = self.merg(skip, self.up2(self.low3(low)))
        return out, [*mergs, out]
