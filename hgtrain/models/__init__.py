"""Hourglass backbones of the CornerNet family, their heads, and weight conversion."""

from hgtrain.models.backbone import BackboneOutput, HourglassBackbone, HourglassConfig
from hgtrain.models.registry import build_backbone, get_config, list_backbones

__all__ = [
    "BackboneOutput",
    "HourglassBackbone",
    "HourglassConfig",
    "build_backbone",
    "get_config",
    "list_backbones",
]
