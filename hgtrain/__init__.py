"""hgtrain: train the stacked-hourglass backbones of the CornerNet family with PyTorch Lightning."""

from importlib.metadata import PackageNotFoundError, version

from hgtrain.models import (
    BackboneOutput,
    HourglassBackbone,
    HourglassConfig,
    build_backbone,
    get_config,
    list_backbones,
)
from hgtrain.pretrained import load_backbone

try:
    __version__ = version("hgtrain")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

__all__ = [
    "BackboneOutput",
    "HourglassBackbone",
    "HourglassConfig",
    "__version__",
    "build_backbone",
    "get_config",
    "list_backbones",
    "load_backbone",
]
