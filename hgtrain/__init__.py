"""hgtrain: train the stacked-hourglass backbones of the CornerNet family with PyTorch Lightning.

The public names below are imported on first use, so that ``import hgtrain`` (and
``hgtrain --version``) stays instant and does not load torch.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("hgtrain")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

_PUBLIC = {
    "BackboneOutput": "hgtrain.models",
    "HourglassBackbone": "hgtrain.models",
    "HourglassConfig": "hgtrain.models",
    "KeypointNet": "hgtrain.models",
    "KeypointNetConfig": "hgtrain.models",
    "PointAP": "hgtrain.task.metrics",
    "build_backbone": "hgtrain.models",
    "get_config": "hgtrain.models",
    "list_backbones": "hgtrain.models",
    "input_normalization": "hgtrain.weights.pretrained",
    "load_backbone": "hgtrain.weights.pretrained",
}

__all__ = [
    "BackboneOutput",
    "HourglassBackbone",
    "HourglassConfig",
    "KeypointNet",
    "KeypointNetConfig",
    "PointAP",
    "__version__",
    "build_backbone",
    "get_config",
    "input_normalization",
    "list_backbones",
    "load_backbone",
]

if TYPE_CHECKING:
    from hgtrain.models import (
        BackboneOutput,
        HourglassBackbone,
        HourglassConfig,
        KeypointNet,
        KeypointNetConfig,
        build_backbone,
        get_config,
        list_backbones,
    )
    from hgtrain.task.metrics import PointAP
    from hgtrain.weights.pretrained import input_normalization, load_backbone


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'hgtrain' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
