"""Weight conversion between hgtrain and the original CornerNet code.

hgtrain's backbone keys are the CornerNet-Lite ``hg.*`` keys without the prefix, so the conversion
is a matter of prefixes, plus the renaming of the ECCV'18 CornerNet repository (``kps.`` for
``hg.hgs.`` and so on). The architecture is read back from the keys and shapes alone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch
from torch import nn

from hgtrain.models.backbone import HourglassConfig
from hgtrain.models.registry import find_variant, get_config

StateDict = Mapping[str, torch.Tensor]

CORNERNET_LITE_PREFIX = "module.hg."

# ECCV'18 CornerNet (princeton-vl/CornerNet) names -> CornerNet-Lite names, prefix by prefix.
ECCV_TO_LITE = {
    "pre.": "hg.pre.",
    "kps.": "hg.hgs.",
    "cnvs.": "hg.cnvs.",
    "inters.": "hg.inters.",
    "inters_.": "hg.inters_.",
    "cnvs_.": "hg.cnvs_.",
    "tl_cnvs.": "tl_modules.",
    "br_cnvs.": "br_modules.",
    "tl_regrs.": "tl_offs.",
    "br_regrs.": "br_offs.",
}


def strip_prefix(state: StateDict, prefix: str) -> dict[str, torch.Tensor]:
    """Drop ``prefix`` from every key that has it; other keys stay as they are."""
    return {k.removeprefix(prefix): v for k, v in state.items()}


def is_eccv_layout(state: StateDict) -> bool:
    """True for a state dict in the naming of the ECCV'18 CornerNet repository."""
    return any(k.removeprefix("module.").startswith("kps.") for k in state)


def eccv_to_lite(state: StateDict) -> dict[str, torch.Tensor]:
    """Rename an ECCV'18 CornerNet state dict to the CornerNet-Lite layout (without ``module.``)."""
    renamed = {}
    for key, value in strip_prefix(state, "module.").items():
        old = next((p for p in ECCV_TO_LITE if key.startswith(p)), None)
        renamed[ECCV_TO_LITE[old] + key[len(old) :] if old else key] = value
    return renamed


def from_cornernet_lite(
    state: StateDict,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Split an original checkpoint (CornerNet-Lite or ECCV'18 naming) into backbone and heads.

    Returns ``(backbone_state, head_state)``: the backbone keys in hgtrain's layout, and the
    remaining keys (corner pools, heads, attention heads) under their CornerNet-Lite names.
    """
    lite = eccv_to_lite(state) if is_eccv_layout(state) else strip_prefix(state, "module.")
    backbone = {k.removeprefix("hg."): v for k, v in lite.items() if k.startswith("hg.")}
    heads = {k: v for k, v in lite.items() if not k.startswith("hg.")}
    if not backbone:
        raise ValueError(
            "No backbone weights found: expected keys starting with 'module.hg.' or 'hg.' "
            f"(CornerNet-Lite) or 'kps.' (CornerNet ECCV'18); got e.g. {sorted(state)[:5]}."
        )
    return backbone, heads


def to_cornernet_lite(
    backbone_state: StateDict, prefix: str = CORNERNET_LITE_PREFIX
) -> dict[str, torch.Tensor]:
    """hgtrain backbone state dict -> CornerNet-Lite ``module.hg.*`` keys (``prefix="hg."`` for an
    unwrapped model), which the original ``model.load_state_dict(..., strict=False)`` accepts."""
    return {prefix + k: v for k, v in backbone_state.items()}


def infer_config(backbone_state: StateDict) -> HourglassConfig:
    """Read the architecture off a backbone state dict (hgtrain layout) from its keys and shapes.

    When the architecture is a registered variant, its name (and, for Saccade, ``return_mergs``)
    is restored; any other architecture becomes a ``"custom"`` config without ``return_mergs``
    (whether mergs are returned is not stored in the weights).
    """
    keys = set(backbone_state)
    if "pre.0.conv.weight" not in keys or "cnvs.0.conv.weight" not in keys:
        raise ValueError(
            "Not an hourglass backbone state dict: 'pre.0.conv.weight' and 'cnvs.0.conv.weight' "
            f"are required; got e.g. {sorted(keys)[:5]}."
        )
    stacks = 1 + max(int(m.group(1)) for k in keys if (m := re.match(r"hgs\.(\d+)\.", k)))
    stem_layers = 1 + max(int(m.group(1)) for k in keys if (m := re.match(r"pre\.(\d+)\.", k)))

    def blocks_at(prefix: str) -> int:
        pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
        return 1 + max(int(m.group(1)) for k in keys if (m := pattern.match(k)))

    dims, modules, level = [], [], "hgs.0."
    while f"{level}up1.0.bn2.weight" in keys:
        dims.append(backbone_state[f"{level}up1.0.bn2.weight"].shape[0])
        modules.append(blocks_at(f"{level}up1."))
        level += "low2."
    dims.append(backbone_state[f"{level}0.bn2.weight"].shape[0])
    modules.append(blocks_at(level))
    config = HourglassConfig(
        n=len(dims) - 1,
        dims=dims,
        modules=modules,
        stacks=stacks,
        block="fire" if "hgs.0.up1.0.conv_3x3.weight" in keys else "residual",
        unpool="transposed" if "hgs.0.up2.weight" in keys else "nearest",
        stem_depth=stem_layers - 1,
        stem_channels=backbone_state["pre.0.conv.weight"].shape[0],
        feature_dim=backbone_state["cnvs.0.conv.weight"].shape[0],
    )
    variant = find_variant(config)
    return get_config(variant) if variant != "custom" else config


def load_state_exactly(module: nn.Module, state: StateDict, source: str = "checkpoint") -> None:
    """``load_state_dict`` that fails with every missing, unexpected or mis-shaped key named."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = [
        f"{k}: {tuple(state[k].shape)} in {source}, {tuple(v.shape)} in the model"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = []
    for title, items in (
        ("missing", missing),
        ("unexpected", unexpected),
        ("shape mismatch", mismatched),
    ):
        if items:
            shown = ", ".join(items[:8]) + (
                f", ... ({len(items)} in all)" if len(items) > 8 else ""
            )
            problems.append(f"{title}: {shown}")
    if problems:
        raise ValueError(
            f"The weights in {source} do not fit this {type(module).__name__} "
            f"(is it another variant or size?). " + "; ".join(problems)
        )
    module.load_state_dict(state, strict=True)
