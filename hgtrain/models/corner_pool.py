"""CornerNet's corner pooling in pure PyTorch (cumulative max along rows and columns).

TopPool: each location gets the max of itself and everything below it in its column; LeftPool:
itself and everything to its right; BottomPool: itself and everything above; RightPool: itself and
everything to its left. The forward equals the original C++/CUDA extension; for exactly tied maxima
the gradient goes to the nearest tied location (the original picks the farthest), which only
touches the zeros after the ReLU in front of the pools, whose gradient that ReLU drops anyway.

ONNX has no cumulative max, so during ``torch.onnx.export`` the pools compute the same values by
doubling: the max with the map shifted by 1, 2, 4, ... cells, log2(side) steps of slices, ``Max``
and ``Concat``. Training and ``torch.export`` keep ``torch.cummax`` (and its gradient).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from hgtrain.models.blocks import ConvBNReLU

__all__ = ["BottomPool", "CornerPool", "LeftPool", "RightPool", "TopPool"]

HEIGHT, WIDTH = 2, 3


def _cummax(x: Tensor, dim: int, reverse: bool) -> Tensor:
    if torch.onnx.is_in_onnx_export():
        return _cummax_by_doubling(x, dim, reverse)
    if reverse:
        return torch.cummax(x.flip(dim), dim).values.flip(dim)
    return torch.cummax(x, dim).values


def _cummax_by_doubling(x: Tensor, dim: int, reverse: bool) -> Tensor:
    """The values of :func:`_cummax` from operators that ONNX has (slices, ``Max``, ``Concat``).

    After the step with ``shift``, each cell holds the max over the ``2 * shift`` cells that end
    at it (those that start at it, for ``reverse``), clipped at the border.
    """
    size, shift = x.shape[dim], 1
    while shift < size:
        rest = size - shift
        if reverse:  # cell i also takes cell i + shift; the last `shift` cells have none
            pooled = torch.maximum(x.narrow(dim, 0, rest), x.narrow(dim, shift, rest))
            x = torch.cat([pooled, x.narrow(dim, rest, shift)], dim)
        else:  # cell i also takes cell i - shift; the first `shift` cells have none
            pooled = torch.maximum(x.narrow(dim, shift, rest), x.narrow(dim, 0, rest))
            x = torch.cat([x.narrow(dim, 0, shift), pooled], dim)
        shift *= 2
    return x


class TopPool(nn.Module):
    """Max over the location and everything below it (scan from the bottom row up)."""

    def forward(self, x: Tensor) -> Tensor:
        return _cummax(x, HEIGHT, reverse=True)


class LeftPool(nn.Module):
    """Max over the location and everything to its right (scan from the right column leftwards)."""

    def forward(self, x: Tensor) -> Tensor:
        return _cummax(x, WIDTH, reverse=True)


class BottomPool(nn.Module):
    """Max over the location and everything above it (cumulative max down the column)."""

    def forward(self, x: Tensor) -> Tensor:
        return _cummax(x, HEIGHT, reverse=False)


class RightPool(nn.Module):
    """Max over the location and everything to its left (cumulative max along the row)."""

    def forward(self, x: Tensor) -> Tensor:
        return _cummax(x, WIDTH, reverse=False)


class CornerPool(nn.Module):
    """The original `corner_pool(dim, pool1, pool2)` module, with its attribute names.

    Two 3x3 conv-BN-ReLU branches (dim -> `pool_dim`), pooled by `pool1` and `pool2`, summed,
    3x3 conv (no bias) + BN back to dim; plus a 1x1 conv + BN skip; ReLU; then a 3x3 conv-BN-ReLU.
    Top-left corners use (TopPool, LeftPool), bottom-right corners (BottomPool, RightPool).
    """

    def __init__(
        self, dim: int, pool1: type[nn.Module], pool2: type[nn.Module], pool_dim: int = 128
    ) -> None:
        super().__init__()
        self.p1_conv1 = ConvBNReLU(dim, pool_dim, 3)
        self.p2_conv1 = ConvBNReLU(dim, pool_dim, 3)
        self.p_conv1 = nn.Conv2d(pool_dim, dim, 3, padding=1, bias=False)
        self.p_bn1 = nn.BatchNorm2d(dim)
        self.conv1 = nn.Conv2d(dim, dim, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(dim)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = ConvBNReLU(dim, dim, 3)
        self.pool1 = pool1()
        self.pool2 = pool2()

    def forward(self, x: Tensor) -> Tensor:
        pooled = self.pool1(self.p1_conv1(x)) + self.pool2(self.p2_conv1(x))
        merged = self.p_bn1(self.p_conv1(pooled)) + self.bn1(self.conv1(x))
        return self.conv2(self.relu1(merged))
