"""Hourglass backbones of the CornerNet family, their heads and the whole network (weight
conversion to and from the original layout: :mod:`hgtrain.weights.convert`)."""

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
