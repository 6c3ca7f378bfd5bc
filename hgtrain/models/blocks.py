"""Building blocks of the CornerNet-family hourglasses.

Attribute names follow the original CornerNet-Lite modules (``convolution``, ``residual``,
``fire_module``, ``_merge_mod``), so state-dict keys map one-to-one onto the original checkpoints.
"""

from __future__ import annotations

import torch
from torch import nn

from hgtrain.models.checkpointing import checkpointing_applies, recompute_in_backward


class CheckpointableBlock(nn.Module):
    """A block that, with ``checkpointed`` on, keeps only its input in a training forward and
    recomputes the rest in the backward pass (set by the backbone's
    ``activation_checkpointing="blocks"``; the heads' blocks stay off).

    A flag rather than a wrapper module, so that the state-dict keys stay the original ones.
    Subclasses define the computation in :meth:`compute`.
    """

    def __init__(self) -> None:
        super().__init__()
        self.checkpointed = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.checkpointed and checkpointing_applies(self):
            return recompute_in_backward(self.compute, self, x)
        return self.compute(x)

    def compute(self, x: torch.Tensor) -> torch.Tensor:
        """The block's output."""
        raise NotImplementedError


class ConvBNReLU(CheckpointableBlock):
    """k x k convolution -> BatchNorm -> ReLU (the original ``convolution``).

    The convolution has no bias when followed by BatchNorm; with ``with_bn=False`` it has a bias and
    ``bn`` is an empty ``Sequential`` (no state-dict keys), as in the original.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        with_bn: bool = True,
    ) -> None:
        super().__init__()
        padding = (kernel_size - 1) // 2
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride, padding, bias=not with_bn
        )
        self.bn = nn.BatchNorm2d(out_channels) if with_bn else nn.Sequential()
        self.relu = nn.ReLU(inplace=True)

    def compute(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


class Residual(CheckpointableBlock):
    """Basic residual block: 3x3 conv(stride) -> BN -> ReLU -> 3x3 conv -> BN, + skip, ReLU.

    The skip is a 1x1 conv(stride) + BN projection whenever the stride is not 1 or the channel count
    changes (so a stride-2 block with equal channels still projects); otherwise it is the identity.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        if stride != 1 or in_channels != out_channels:
            self.skip = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        else:
            self.skip = nn.Identity()
        self.relu = nn.ReLU(inplace=True)

    def compute(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu(y + self.skip(x))


class Fire(CheckpointableBlock):
    """SqueezeNet-style fire module of CornerNet-Squeeze (the original ``fire_module``).

    1x1 squeeze conv -> BN (no ReLU) -> [1x1 conv(stride) | depthwise 3x3 conv(stride)] concatenated
    -> BN -> + input only when stride is 1 and channels are equal (there is no projection skip) -> ReLU.
    """

    def __init__(
        self, in_channels: int, out_channels: int, squeeze_ratio: int = 2, stride: int = 1
    ) -> None:
        super().__init__()
        if out_channels % 2 or out_channels % squeeze_ratio:
            raise ValueError(
                f"Fire needs out_channels divisible by 2 and by squeeze_ratio={squeeze_ratio}, "
                f"got {out_channels}; pick an even channel count in the config's dims."
            )
        squeezed = out_channels // squeeze_ratio
        half = out_channels // 2
        self.conv1 = nn.Conv2d(in_channels, squeezed, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(squeezed)
        self.conv_1x1 = nn.Conv2d(squeezed, half, 1, stride, bias=False)
        self.conv_3x3 = nn.Conv2d(squeezed, half, 3, stride, 1, groups=squeezed, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.use_skip = stride == 1 and in_channels == out_channels
        self.relu = nn.ReLU(inplace=True)

    def compute(self, x: torch.Tensor) -> torch.Tensor:
        squeezed = self.bn1(self.conv1(x))
        y = self.bn2(torch.cat((self.conv_1x1(squeezed), self.conv_3x3(squeezed)), dim=1))
        return self.relu(y + x) if self.use_skip else self.relu(y)


def conv_bn(in_channels: int, out_channels: int) -> nn.Sequential:
    """1x1 convolution + BN without ReLU (the original ``_merge_mod``), for between-stack merges."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels)
    )
