"""The stacked hourglass backbone: stem, hourglass stacks and the layers between stacks.

``HourglassBackbone`` is the original CornerNet-Lite ``hg`` / ``saccade`` wrapper. Its state-dict
keys are the original ones without the ``module.hg.`` prefix (``pre.*``, ``hgs.*``, ``cnvs.*``,
``inters.*``, ``inters_.*``, ``cnvs_.*``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, NamedTuple

import torch
from torch import nn

from hgtrain.models.blocks import CheckpointableBlock, ConvBNReLU, Residual, conv_bn
from hgtrain.models.checkpointing import (
    CHECKPOINTING_MODES,
    ActivationCheckpointing,
    checkpointing_applies,
    recompute_in_backward,
)
from hgtrain.models.hourglass import BLOCKS, UNPOOLS, Hourglass, LayerMakers


@dataclass
class HourglassConfig:
    """Architecture of a stacked hourglass backbone.

    Attributes:
        n: number of nested levels (downsamplings) in each hourglass.
        dims: channels at each level, outermost first, then the bottleneck (length ``n + 1``).
        modules: blocks per part at each level, then in the bottleneck (length ``n + 1``).
        stacks: number of hourglasses in sequence; every stack yields a feature map.
        block: block inside the hourglasses: ``"residual"`` or ``"fire"`` (CornerNet-Squeeze).
        unpool: ``"nearest"`` x2 upsampling or ``"transposed"`` ConvTranspose2d(4, 2, 1).
        stem_depth: stride-2 residual blocks after the stem's 7x7 stride-2 conv (1 gives output
            stride 4; 2, as in CornerNet-Squeeze, gives stride 8).
        stem_channels: output channels of the stem's 7x7 conv.
        feature_dim: channels of each stack's output feature map (``cnvs``).
        return_mergs: also return every level's merge output (CornerNet-Saccade).
    """

    n: int
    dims: list[int]
    modules: list[int]
    stacks: int = 2
    block: Literal["residual", "fire"] = "residual"
    unpool: Literal["nearest", "transposed"] = "nearest"
    stem_depth: int = 1
    stem_channels: int = 128
    feature_dim: int = 256
    return_mergs: bool = False
    name: str = field(default="custom", compare=False)

    def __post_init__(self) -> None:
        self.dims = list(self.dims)
        self.modules = list(self.modules)
        problems = []
        if self.n < 1:
            problems.append(f"n must be >= 1, got {self.n}")
        if len(self.dims) != self.n + 1:
            problems.append(
                f"dims needs n + 1 = {self.n + 1} entries (one per level plus the bottleneck), "
                f"got {len(self.dims)}: {self.dims}"
            )
        if len(self.modules) != self.n + 1:
            problems.append(
                f"modules needs n + 1 = {self.n + 1} entries (one per level plus the bottleneck), "
                f"got {len(self.modules)}: {self.modules}"
            )
        if any(d < 1 for d in self.dims) or any(m < 1 for m in self.modules):
            problems.append(f"dims and modules must be positive, got {self.dims}, {self.modules}")
        if self.block == "fire" and any(d % 2 for d in self.dims):
            problems.append(f"fire blocks need even channel counts in dims, got {self.dims}")
        if self.stacks < 1 or self.stem_depth < 1:
            problems.append(
                f"stacks and stem_depth must be >= 1, got {self.stacks} and {self.stem_depth}"
            )
        if self.stem_channels < 1 or self.feature_dim < 1:
            problems.append("stem_channels and feature_dim must be positive")
        if self.block not in BLOCKS:
            problems.append(f"block must be one of {sorted(BLOCKS)}, got {self.block!r}")
        if self.unpool not in UNPOOLS:
            problems.append(f"unpool must be one of {sorted(UNPOOLS)}, got {self.unpool!r}")
        if problems:
            raise ValueError(f"Invalid hourglass config {self.name!r}: " + "; ".join(problems))

    @property
    def output_stride(self) -> int:
        """Input pixels per feature-map cell (4 for CornerNet and Saccade, 8 for Squeeze)."""
        return 2 ** (1 + self.stem_depth)

    def output_size(self, input_size: int) -> int:
        """Side of the feature maps for an input side (e.g. 511 -> 128 for CornerNet)."""
        return math.ceil(input_size / self.output_stride)

    def check_input_size(self, height: int, width: int) -> None:
        """Raise a ``ValueError`` saying why an input size cannot pass the hourglass, and what can.

        The stem shrinks a side ``s`` to ``ceil(s / output_stride)``; every hourglass level halves
        it and later doubles it back, so the stem output must be divisible by ``2 ** n``.
        """
        for axis, size in (("height", height), ("width", width)):
            side = self.output_size(size)
            divisor = 2**self.n
            if side % divisor == 0:
                continue
            level, level_side = 1, side
            while level_side % 2 == 0:
                level, level_side = level + 1, level_side // 2
            below = (side // divisor) * divisor * self.output_stride
            above = ((-(-side // divisor) * divisor) - 1) * self.output_stride + 1
            nearest = f"{below} or {above}" if below > 0 else f"{above}"
            raise ValueError(
                f"Input {axis} {size} does not fit the {self.name!r} hourglass: the stem (stride "
                f"{self.output_stride}) gives {side} px, and at hourglass level {level} of {self.n} "
                f"the map is {level_side} px, which is odd and cannot be halved and restored. The "
                f"stem output must be a multiple of {divisor}; the nearest input sizes that work "
                f"are {nearest}."
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python form, for checkpoints and YAML."""
        return asdict(self)


class BackboneOutput(NamedTuple):
    """What the backbone returns.

    Attributes:
        features: one map per stack, ``[B, feature_dim, H / stride, W / stride]``, last stack last.
        mergs: per stack, the merge output of every hourglass level, coarsest first (for
            intermediate supervision); empty unless the config has ``return_mergs``.
    """

    features: list[torch.Tensor]
    mergs: list[list[torch.Tensor]]


def make_stem(config: HourglassConfig) -> nn.Sequential:
    """7x7 stride-2 conv, then ``stem_depth`` stride-2 residual blocks (the original ``pre``)."""
    width = config.dims[0]
    layers: list[nn.Module] = [ConvBNReLU(3, config.stem_channels, kernel_size=7, stride=2)]
    layers.append(Residual(config.stem_channels, width, stride=2))
    layers += [Residual(width, width, stride=2) for _ in range(config.stem_depth - 1)]
    return nn.Sequential(*layers)


class HourglassBackbone(nn.Module):
    """Stem, ``stacks`` hourglasses, and the layers that pass features from one stack to the next.

    For stack ``i``: ``cnv_i = cnvs[i](hourglass_i(inter))`` is that stack's output; between stacks,
    ``inter = inters[i](relu(inters_[i](inter) + cnvs_[i](cnv_i)))``, so the next hourglass sees
    the previous stack's *input* plus the projected output.

    ``activation_checkpointing`` (a run-time choice that changes no weights, so not part of the
    config) trades compute for memory in training: with ``"stacks"`` each hourglass keeps only its
    input and recomputes its activations in the backward pass; with ``"blocks"`` every block of the
    backbone does (the residual or fire blocks, and the conv-BN-ReLU layers of the stem and of the
    stack outputs), which leaves far less to keep. Loss, gradients and BatchNorm statistics are
    those of ``"none"``.
    """

    def __init__(
        self, config: HourglassConfig, activation_checkpointing: ActivationCheckpointing = "none"
    ) -> None:
        super().__init__()
        self.config = config
        width, stacks = config.dims[0], config.stacks
        makers = LayerMakers.from_block(BLOCKS[config.block], UNPOOLS[config.unpool])
        self.pre = make_stem(config)
        self.hgs = nn.ModuleList(
            Hourglass(config.n, config.dims, config.modules, makers) for _ in range(stacks)
        )
        self.cnvs = nn.ModuleList(ConvBNReLU(width, config.feature_dim) for _ in range(stacks))
        self.inters = nn.ModuleList(Residual(width, width) for _ in range(stacks - 1))
        self.inters_ = nn.ModuleList(conv_bn(width, width) for _ in range(stacks - 1))
        self.cnvs_ = nn.ModuleList(conv_bn(config.feature_dim, width) for _ in range(stacks - 1))
        self.activation_checkpointing = activation_checkpointing

    @property
    def activation_checkpointing(self) -> ActivationCheckpointing:
        """What keeps only its input in training: ``"none"``, ``"stacks"`` or ``"blocks"``."""
        return self._activation_checkpointing

    @activation_checkpointing.setter
    def activation_checkpointing(self, mode: ActivationCheckpointing) -> None:
        if mode not in CHECKPOINTING_MODES:
            raise ValueError(
                f"activation_checkpointing must be one of {', '.join(CHECKPOINTING_MODES)}, "
                f"got {mode!r}"
            )
        self._activation_checkpointing = mode
        for module in self.modules():
            if isinstance(module, CheckpointableBlock):
                module.checkpointed = mode == "blocks"

    @property
    def feature_info(self) -> list[dict[str, Any]]:
        """Channels, stride and module name of each stack's output, timm style."""
        stride = self.config.output_stride
        return [
            {"num_chs": self.config.feature_dim, "reduction": stride, "module": f"cnvs.{i}"}
            for i in range(self.config.stacks)
        ]

    @property
    def merg_info(self) -> list[dict[str, Any]]:
        """Channels and stride of each entry of a stack's ``mergs``, coarsest first."""
        if not self.config.return_mergs:
            return []
        n, stride = self.config.n, self.config.output_stride
        return [
            {"num_chs": self.config.dims[level], "reduction": stride * 2**level}
            for level in reversed(range(n))
        ]

    def forward(self, x: torch.Tensor) -> BackboneOutput:
        if not torch.compiler.is_compiling():
            self.config.check_input_size(x.shape[-2], x.shape[-1])
        inter = self.pre(x)
        features, mergs = [], []
        last = len(self.hgs) - 1
        for i, (hourglass, cnv) in enumerate(zip(self.hgs, self.cnvs, strict=True)):
            out, stack_mergs = self.run_hourglass(hourglass, inter)
            feature = cnv(out)
            features.append(feature)
            if self.config.return_mergs:
                mergs.append(stack_mergs)
            if i < last:
                inter = torch.relu_(self.inters_[i](inter) + self.cnvs_[i](feature))
                inter = self.inters[i](inter)
        return BackboneOutput(features, mergs)

    def run_hourglass(
        self, hourglass: nn.Module, x: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """One stack's hourglass, checkpointed with ``activation_checkpointing="stacks"``."""
        if self.activation_checkpointing == "stacks" and checkpointing_applies(self):
            return recompute_in_backward(hourglass, hourglass, x)
        return hourglass(x)
