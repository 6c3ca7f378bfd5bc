"""Hourglass backbones of the CornerNet family, their heads, the whole network, and weight
conversion."""

from hgtrain.models.backbone import BackboneOutput, HourglassBackbone, HourglassConfig
from hgtrain.models.network import KeypointNet, KeypointNetConfig
from hgtrain.models.registry import build_backbone, get_config, list_backbones

__all__ = [
    "BackboneOutput",
    "HourglassBackbone",
    "HourglassConfig",
    "KeypointNet",
    "KeypointNetConfig",
    "build_backbone",
    "get_config",
    "list_backbones",
]
