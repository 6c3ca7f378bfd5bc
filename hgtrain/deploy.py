"""Graphs for deployment: the trained network or its backbone as a ``torch.export`` program.

What a program computes (raw outputs; decoding stays in Python, :meth:`KeypointNet.decode`):

- ``network``: float32 RGB images in [0, 1], [B, 3, H, W] -> the last stack's heatmap logits
  [B, C, h, w] and offsets ([B, 2, h, w], or [B, C, 2, h, w] with corner pooling); the input
  normalisation is inside.
- ``backbone``: normalised float32 images -> one feature map per stack, [B, feature_dim, h, w].

The batch dimension is dynamic; H and W are the ones the program was exported at.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from hgtrain.models.backbone import HourglassBackbone
from hgtrain.models.network import KeypointNet

__all__ = ["PARTS", "BackboneFeatures", "NetworkOutputs", "export_program", "exportable"]

PARTS = ("network", "backbone")
Part = Literal["network", "backbone"]
MAX_BATCH = 1024


class NetworkOutputs(nn.Module):
    """A :class:`KeypointNet` whose forward returns plain tensors: (heatmap logits, offsets)."""

    def __init__(self, network: KeypointNet) -> None:
        super().__init__()
        self.network = network

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        heatmaps, offsets = self.network.raw_outputs(images)
        return heatmaps, offsets


class BackboneFeatures(nn.Module):
    """An :class:`HourglassBackbone` whose forward returns a tuple of every stack's features."""

    def __init__(self, backbone: HourglassBackbone) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        return tuple(self.backbone(images).features)


def exportable(network: KeypointNet, part: Part = "network") -> nn.Module:
    """The part of ``network`` to export, in eval mode, with tensor outputs only."""
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}, got {part!r}")
    module = NetworkOutputs(network) if part == "network" else BackboneFeatures(network.backbone)
    return module.eval()


def export_program(
    module: nn.Module, example: Tensor, dynamic_batch: bool = True
) -> torch.export.ExportedProgram:
    """``torch.export`` of ``module`` at the example's image size, the batch size left dynamic."""
    dynamic_shapes = None
    if dynamic_batch:
        batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
        dynamic_shapes = ({0: batch},)
    with torch.no_grad():
        return torch.export.export(module, (example,), dynamic_shapes=dynamic_shapes)
