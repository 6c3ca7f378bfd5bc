"""Named backbone configurations and ``build_backbone``.

=================  =========================  ======  =======================  =========================
name               aliases                    stacks  dims                     parameters (backbone)
=================  =========================  ======  =======================  =========================
``cornernet``      ``hourglass104``           2       256,256,384,384,384,512  187,700,352
``saccade``        ``hourglass54``            3       256,384,384,512          89,884,544
``squeeze``        ``hourglass52``            2       256,256,384,384,512      24,728,448
=================  =========================  ======  =======================  =========================
"""

from __future__ import annotations

import dataclasses

from hgtrain.models.backbone import HourglassBackbone, HourglassConfig

_CONFIGS: dict[str, HourglassConfig] = {
    "cornernet": HourglassConfig(
        name="cornernet",
        n=5,
        dims=[256, 256, 384, 384, 384, 512],
        modules=[2, 2, 2, 2, 2, 4],
        stacks=2,
    ),
    "saccade": HourglassConfig(
        name="saccade",
        n=3,
        dims=[256, 384, 384, 512],
        modules=[1, 1, 1, 1],
        stacks=3,
        return_mergs=True,
    ),
    "squeeze": HourglassConfig(
        name="squeeze",
        n=4,
        dims=[256, 256, 384, 384, 512],
        modules=[2, 2, 2, 2, 4],
        stacks=2,
        block="fire",
        unpool="transposed",
        stem_depth=2,
    ),
}

ALIASES: dict[str, str] = {
    "hourglass104": "cornernet",
    "hourglass54": "saccade",
    "hourglass52": "squeeze",
}


def list_backbones() -> list[str]:
    """Names accepted by :func:`build_backbone` (aliases included)."""
    return sorted([*_CONFIGS, *ALIASES])


def get_config(name: str) -> HourglassConfig:
    """A fresh copy of the named configuration."""
    key = ALIASES.get(name.lower(), name.lower())
    if key not in _CONFIGS:
        raise ValueError(
            f"Unknown backbone {name!r}. Choose one of {list_backbones()}, or pass an "
            "HourglassConfig for a custom hourglass."
        )
    return dataclasses.replace(_CONFIGS[key])


def find_variant(config: HourglassConfig) -> str:
    """The registered name whose architecture equals ``config``, or ``"custom"``."""
    for name, known in _CONFIGS.items():
        if dataclasses.replace(known, return_mergs=config.return_mergs) == config:
            return name
    return "custom"


def build_backbone(name_or_config: str | HourglassConfig) -> HourglassBackbone:
    """Build a backbone from a registered name (``"squeeze"``, ``"hourglass104"``...) or a config."""
    if isinstance(name_or_config, HourglassConfig):
        config = name_or_config
    else:
        config = get_config(name_or_config)
    return HourglassBackbone(config)
