"""The CornerNet-Lite backbones written plainly, as the original code lays them out.

This is the test oracle for ``hgtrain.models``: it follows the description of the original
``core/models/py_utils/utils.py`` and ``core/models/CornerNet*.py`` in
``shared/spec/cornernet-lite-architecture.md`` (sections 1, 2 and 9) literally, with the original
class and function names (``convolution``, ``residual``, ``fire_module``, ``hg_module``,
``saccade_module``, ``hg``, ``saccade``, ``make_*``) and no abstraction beyond theirs. Its
state-dict keys are those of the original ``module.hg.*`` entries without that prefix, which are
also hgtrain's keys, so the same weights load into both.

It lives under ``tests/`` on purpose: it is a second copy of the network whose only jobs are to
prove that hgtrain computes the same function, and to be the plain baseline of
``python -m tests.reference.compare``. The installed package never imports it.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class convolution(nn.Module):
    """k x k conv (no bias with BN) -> BN -> ReLU; without BN the conv has a bias."""

    def __init__(self, k: int, inp_dim: int, out_dim: int, stride: int = 1, with_bn: bool = True):
        super().__init__()
        pad = (k - 1) // 2
        self.conv = nn.Conv2d(
            inp_dim, out_dim, (k, k), padding=(pad, pad), stride=(stride, stride), bias=not with_bn
        )
        self.bn = nn.BatchNorm2d(out_dim) if with_bn else nn.Sequential()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.conv(x)
        bn = self.bn(conv)
        relu = self.relu(bn)
        return relu


class residual(nn.Module):
    """3x3 conv(stride) -> BN -> ReLU -> 3x3 conv -> BN, + skip, ReLU; projected skip when shapes change."""

    def __init__(self, inp_dim: int, out_dim: int, k: int = 3, stride: int = 1):
        super().__init__()
        p = (k - 1) // 2
        self.conv1 = nn.Conv2d(
            inp_dim, out_dim, (k, k), padding=(p, p), stride=(stride, stride), bias=False
        )
        self.bn1 = nn.BatchNorm2d(out_dim)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_dim, out_dim, (k, k), padding=(p, p), bias=False)
        self.bn2 = nn.BatchNorm2d(out_dim)
        if stride != 1 or inp_dim != out_dim:
            self.skip = nn.Sequential(
                nn.Conv2d(inp_dim, out_dim, (1, 1), stride=(stride, stride), bias=False),
                nn.BatchNorm2d(out_dim),
            )
        else:
            self.skip = nn.Sequential()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv1 = self.conv1(x)
        bn1 = self.bn1(conv1)
        relu1 = self.relu1(bn1)
        conv2 = self.conv2(relu1)
        bn2 = self.bn2(conv2)
        skip = self.skip(x)
        return self.relu(bn2 + skip)


class fire_module(nn.Module):
    """1x1 squeeze -> BN -> [1x1 | depthwise 3x3] (stride) -> concat -> BN (+ input if same shape) -> ReLU."""

    def __init__(self, inp_dim: int, out_dim: int, sr: int = 2, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(inp_dim, out_dim // sr, kernel_size=1, stride=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_dim // sr)
        self.conv_1x1 = nn.Conv2d(
            out_dim // sr, out_dim // 2, kernel_size=1, stride=stride, bias=False
        )
        self.conv_3x3 = nn.Conv2d(
            out_dim // sr,
            out_dim // 2,
            kernel_size=3,
            padding=1,
            stride=stride,
            groups=out_dim // sr,
            bias=False,
        )
        self.bn2 = nn.BatchNorm2d(out_dim)
        self.skip = stride == 1 and inp_dim == out_dim
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv1 = self.conv1(x)
        bn1 = self.bn1(conv1)
        conv2 = torch.cat((self.conv_1x1(bn1), self.conv_3x3(bn1)), 1)
        bn2 = self.bn2(conv2)
        if self.skip:
            return self.relu(bn2 + x)
        return self.relu(bn2)


class upsample(nn.Module):
    """Nearest-neighbour x2 (``F.interpolate`` with its default mode)."""

    def __init__(self, scale_factor: int):
        super().__init__()
        self.scale_factor = scale_factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=self.scale_factor)


class merge(nn.Module):
    """The two branches of a level are added."""

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x + y


def make_layer(inp_dim: int, out_dim: int, modules: int, layer=residual) -> nn.Sequential:
    layers = [layer(inp_dim, out_dim)]
    layers += [layer(out_dim, out_dim) for _ in range(1, modules)]
    return nn.Sequential(*layers)


def make_layer_revr(inp_dim: int, out_dim: int, modules: int, layer=residual) -> nn.Sequential:
    layers = [layer(inp_dim, inp_dim) for _ in range(modules - 1)]
    layers += [layer(inp_dim, out_dim)]
    return nn.Sequential(*layers)


def make_hg_layer(inp_dim: int, out_dim: int, modules: int, layer=residual) -> nn.Sequential:
    layers = [layer(inp_dim, out_dim, stride=2)]
    layers += [layer(out_dim, out_dim) for _ in range(1, modules)]
    return nn.Sequential(*layers)


def make_pool_layer(dim: int) -> nn.Module:
    # The class default is MaxPool2d(2); all three models override it with an empty Sequential.
    return nn.Sequential()


def make_unpool_layer(dim: int) -> nn.Module:
    return upsample(scale_factor=2)


def make_transposed_unpool_layer(dim: int) -> nn.Module:
    return nn.ConvTranspose2d(dim, dim, kernel_size=4, stride=2, padding=1)


def make_merge_layer(dim: int) -> nn.Module:
    return merge()


def make_merge_mod(inp_dim: int, out_dim: int) -> nn.Sequential:
    """The original ``_merge_mod``: 1x1 conv + BN, no ReLU (``inters_`` and ``cnvs_``)."""
    return nn.Sequential(nn.Conv2d(inp_dim, out_dim, (1, 1), bias=False), nn.BatchNorm2d(out_dim))


class hg_module(nn.Module):
    """``n`` nested levels; ``forward`` returns the outermost merge."""

    def __init__(
        self,
        n: int,
        dims: list[int],
        modules: list[int],
        make_up_layer=make_layer,
        make_pool_layer=make_pool_layer,
        make_hg_layer=make_hg_layer,
        make_low_layer=make_layer,
        make_hg_layer_revr=make_layer_revr,
        make_unpool_layer=make_unpool_layer,
        make_merge_layer=make_merge_layer,
    ):
        super().__init__()
        curr_mod = modules[0]
        next_mod = modules[1]
        curr_dim = dims[0]
        next_dim = dims[1]
        self.n = n
        self.up1 = make_up_layer(curr_dim, curr_dim, curr_mod)
        self.max1 = make_pool_layer(curr_dim)
        self.low1 = make_hg_layer(curr_dim, next_dim, curr_mod)
        self.low2 = (
            type(self)(
                n - 1,
                dims[1:],
                modules[1:],
                make_up_layer=make_up_layer,
                make_pool_layer=make_pool_layer,
                make_hg_layer=make_hg_layer,
                make_low_layer=make_low_layer,
                make_hg_layer_revr=make_hg_layer_revr,
                make_unpool_layer=make_unpool_layer,
                make_merge_layer=make_merge_layer,
            )
            if n > 1
            else make_low_layer(next_dim, next_dim, next_mod)
        )
        self.low3 = make_hg_layer_revr(next_dim, curr_dim, curr_mod)
        self.up2 = make_unpool_layer(curr_dim)
        self.merg = make_merge_layer(curr_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up1 = self.up1(x)
        max1 = self.max1(x)
        low1 = self.low1(max1)
        low2 = self.low2(low1)
        low3 = self.low3(low2)
        up2 = self.up2(low3)
        merg = self.merg(up1, up2)
        return merg


class saccade_module(hg_module):
    """``hg_module`` that also returns every level's merge, innermost first."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        up1 = self.up1(x)
        max1 = self.max1(x)
        low1 = self.low1(max1)
        if self.n > 1:
            low2, mergs = self.low2(low1)
        else:
            low2, mergs = self.low2(low1), []
        low3 = self.low3(low2)
        up2 = self.up2(low3)
        merg = self.merg(up1, up2)
        mergs.append(merg)
        return merg, mergs


class hg(nn.Module):
    """Stem, hourglass stacks, and the layers between stacks; returns each stack's ``cnv``."""

    def __init__(self, pre, hg_modules, cnvs, inters, cnvs_, inters_):
        super().__init__()
        self.pre = pre
        self.hgs = hg_modules
        self.cnvs = cnvs
        self.inters = inters
        self.inters_ = inters_
        self.cnvs_ = cnvs_

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        inter = self.pre(x)
        cnvs = []
        for ind, (hg_, cnv_) in enumerate(zip(self.hgs, self.cnvs, strict=True)):
            hg = hg_(inter)
            cnv = cnv_(hg)
            cnvs.append(cnv)
            if ind < len(self.hgs) - 1:
                inter = self.inters_[ind](inter) + self.cnvs_[ind](cnv)
                inter = F.relu_(inter)
                inter = self.inters[ind](inter)
        return cnvs


class saccade(hg):
    """``hg`` over ``saccade_module`` stacks; returns ``(cnvs, atts)``, ``atts[i]`` = stack i's mergs."""

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
        inter = self.pre(x)
        cnvs, atts = [], []
        for ind, (hg_, cnv_) in enumerate(zip(self.hgs, self.cnvs, strict=True)):
            hg, ups = hg_(inter)
            cnv = cnv_(hg)
            cnvs.append(cnv)
            atts.append(ups)
            if ind < len(self.hgs) - 1:
                inter = self.inters_[ind](inter) + self.cnvs_[ind](cnv)
                inter = F.relu_(inter)
                inter = self.inters[ind](inter)
        return cnvs, atts


def _fire_layer(inp_dim: int, out_dim: int, stride: int = 1) -> fire_module:
    return fire_module(inp_dim, out_dim, stride=stride)


def _with_layer(make, layer):
    return lambda inp_dim, out_dim, modules: make(inp_dim, out_dim, modules, layer=layer)


def build(
    n: int,
    dims: list[int],
    modules: list[int],
    stacks: int,
    fire: bool = False,
    transposed_unpool: bool = False,
    stem_depth: int = 1,
    stem_dim: int = 128,
    cnv_dim: int = 256,
    mergs: bool = False,
) -> hg:
    """One of the three networks, or a smaller one of the same structure.

    Args mirror the original model files: the hourglass ``n``/``dims``/``modules``, the number of
    stacks, fire modules inside the hourglasses (Squeeze), the ConvTranspose2d unpool (Squeeze), the
    number of stride-2 residuals in ``pre`` (2 in Squeeze), the 7x7 stem width (128), the ``cnvs``
    width (256), and ``saccade_module`` stacks that return their merges (Saccade).
    """
    layer = _fire_layer if fire else residual
    module_kwargs = {
        "make_up_layer": _with_layer(make_layer, layer),
        "make_hg_layer": _with_layer(make_hg_layer, layer),
        "make_low_layer": _with_layer(make_layer, layer),
        "make_hg_layer_revr": _with_layer(make_layer_revr, layer),
        "make_pool_layer": make_pool_layer,
        "make_unpool_layer": make_transposed_unpool_layer
        if transposed_unpool
        else make_unpool_layer,
        "make_merge_layer": make_merge_layer,
    }
    curr_dim = dims[0]
    pre = [convolution(7, 3, stem_dim, stride=2), residual(stem_dim, curr_dim, stride=2)]
    pre += [residual(curr_dim, curr_dim, stride=2) for _ in range(stem_depth - 1)]
    hourglass = saccade_module if mergs else hg_module
    wrapper = saccade if mergs else hg
    return wrapper(
        nn.Sequential(*pre),
        nn.ModuleList([hourglass(n, dims, modules, **module_kwargs) for _ in range(stacks)]),
        nn.ModuleList([convolution(3, curr_dim, cnv_dim) for _ in range(stacks)]),
        nn.ModuleList([residual(curr_dim, curr_dim) for _ in range(stacks - 1)]),
        nn.ModuleList([make_merge_mod(cnv_dim, curr_dim) for _ in range(stacks - 1)]),
        nn.ModuleList([make_merge_mod(curr_dim, curr_dim) for _ in range(stacks - 1)]),
    )


def cornernet() -> hg:
    """Hourglass-104 of CornerNet."""
    return build(5, [256, 256, 384, 384, 384, 512], [2, 2, 2, 2, 2, 4], stacks=2)


def cornernet_saccade() -> saccade:
    """Hourglass-54 of CornerNet-Saccade."""
    return build(3, [256, 384, 384, 512], [1, 1, 1, 1], stacks=3, mergs=True)


def cornernet_squeeze() -> hg:
    """The fire-module hourglass of CornerNet-Squeeze."""
    return build(
        4,
        [256, 256, 384, 384, 512],
        [2, 2, 2, 2, 4],
        stacks=2,
        fire=True,
        transposed_unpool=True,
        stem_depth=2,
    )


def from_config(config) -> hg:
    """The network described by an ``hgtrain`` ``HourglassConfig`` (read attribute by attribute)."""
    return build(
        config.n,
        config.dims,
        config.modules,
        config.stacks,
        fire=config.block == "fire",
        transposed_unpool=config.unpool == "transposed",
        stem_depth=config.stem_depth,
        stem_dim=config.stem_channels,
        cnv_dim=config.feature_dim,
        mergs=config.return_mergs,
    )


VARIANTS = {"cornernet": cornernet, "saccade": cornernet_saccade, "squeeze": cornernet_squeeze}
