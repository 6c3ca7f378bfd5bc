"""Files for deployment: the trained network or its backbone as a ``torch.export`` program or an ONNX
model, checked against the eager model before anyone gets to use them.

What a file computes (raw outputs; decoding stays in Python, :meth:`KeypointNet.decode`):

- ``network``: float32 RGB images in [0, 1], ``images`` [B, 3, H, W] -> the last stack's
  ``heatmaps`` logits [B, C, h, w] and ``offsets`` ([B, 2, h, w], or [B, C, 2, h, w] with corner
  pooling); the input normalisation is inside.
- ``backbone``: normalised float32 images, ``images`` [B, 3, H, W] -> one feature map per stack,
  ``features_0`` ... [B, feature_dim, h, w].

The batch dimension is dynamic (1 to 1024 in a ``torch-export`` program); H and W are the ones the
file was exported at. ``torch-export`` files (``.pt2``) load with ``torch.export.load``; ``onnx``
files (one file, weights inside) run in any ONNX runtime, corner pooling included (exported with
ONNX operators: :mod:`hgtrain.models.corner_pool`). Writing ONNX files needs the ``deploy`` extra
(``onnx``, ``onnxscript``, ``onnxruntime``).
"""

from __future__ import annotations

import os
import warnings
from typing import Literal

import torch
from torch import Tensor, nn

from hgtrain.models.backbone import HourglassBackbone
from hgtrain.models.network import KeypointNet

__all__ = [
    "CHECK_BATCH",
    "FORMATS",
    "PARTS",
    "TOLERANCE",
    "BackboneFeatures",
    "NetworkOutputs",
    "check_inputs",
    "export_program",
    "exportable",
    "largest_difference",
    "onnx_program",
    "run_file",
    "save_checked",
    "save_file",
]

PARTS = ("network", "backbone")
FORMATS = ("torch-export", "onnx")
Part = Literal["network", "backbone"]
Format = Literal["torch-export", "onnx"]
MAX_BATCH = 1024
TRACE_BATCH, CHECK_BATCH = 2, 3
"""Batch sizes of the example a file is traced with and of the check: unequal, so that the check
also tries the dynamic batch dimension."""
TOLERANCE = 1e-4
"""Largest absolute difference from the eager model (float32) that an export may show."""
INPUT_NAME = "images"


class NetworkOutputs(nn.Module):
    """A :class:`KeypointNet` whose forward returns plain tensors: (heatmap logits, offsets)."""

    part = "network"

    def __init__(self, network: KeypointNet) -> None:
        super().__init__()
        self.network = network

    @property
    def backbone(self) -> HourglassBackbone:
        """The network's backbone (what decides the input sizes it takes)."""
        return self.network.backbone

    @property
    def output_names(self) -> list[str]:
        """Names of the outputs, in order (the ONNX model's output names)."""
        return ["heatmaps", "offsets"]

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        heatmaps, offsets = self.network.raw_outputs(images)
        return heatmaps, offsets


class BackboneFeatures(nn.Module):
    """An :class:`HourglassBackbone` whose forward returns a tuple of every stack's features."""

    part = "backbone"

    def __init__(self, backbone: HourglassBackbone) -> None:
        super().__init__()
        self.backbone = backbone

    @property
    def output_names(self) -> list[str]:
        """Names of the outputs, in order (the ONNX model's output names)."""
        return [f"features_{i}" for i in range(self.backbone.config.stacks)]

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        return tuple(self.backbone(images).features)


Exportable = NetworkOutputs | BackboneFeatures


def exportable(network: KeypointNet | HourglassBackbone, part: Part = "network") -> Exportable:
    """The part of ``network`` to export, in eval mode, with tensor outputs only (a backbone on its
    own has only its ``backbone`` part)."""
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}, got {part!r}")
    if isinstance(network, HourglassBackbone):
        if part != "backbone":
            raise ValueError("a backbone without heads has only its backbone part to export")
        return BackboneFeatures(network).eval()
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


def onnx_program(module: Exportable, example: Tensor) -> torch.onnx.ONNXProgram:
    """The ONNX model of ``module`` (``torch.onnx``'s dynamo exporter, optimised) at the example's
    image size with a dynamic ``batch`` dimension, its inputs and outputs named. The exporter's
    progress lines and its deprecation warnings (about its own internals, which a user cannot act
    on) are kept quiet."""
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        return torch.onnx.export(
            module,
            (example,),
            dynamo=True,
            dynamic_shapes=({0: batch},),
            input_names=[INPUT_NAME],
            output_names=module.output_names,
            external_data=False,
            verbose=False,
        )


def check_inputs(part: Part, batch: int, input_size: int, seed: int = 0) -> Tensor:
    """Random float32 inputs of a part, [batch, 3, input_size, input_size]: RGB in [0, 1] for the
    network, standard-normal (as normalised images are, roughly) for the backbone."""
    generator = torch.Generator().manual_seed(seed)
    shape = (batch, 3, input_size, input_size)
    if part == "network":
        return torch.rand(shape, generator=generator)
    return torch.randn(shape, generator=generator)


def save_file(
    module: Exportable, format: Format, path: str | os.PathLike[str], input_size: int
) -> None:
    """Write ``module`` as a ``format`` file (traced at batch ``TRACE_BATCH``) to ``path``."""
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    example = check_inputs(module.part, TRACE_BATCH, input_size)
    if format == "torch-export":
        program = export_program(module, example)
        with open(path, "wb") as file:  # by path, torch warns about names not ending in .pt2
            torch.export.save(program, file)
    else:
        model = onnx_program(module, example).model_proto
        with open(path, "wb") as file:
            file.write(model.SerializeToString())


def run_file(format: Format, path: str | os.PathLike[str], images: Tensor) -> list[Tensor]:
    """The outputs of the ``format`` file at ``path`` for ``images`` (ONNX: in onnxruntime, CPU)."""
    if format == "torch-export":
        with open(path, "rb") as file, torch.no_grad():
            return list(torch.export.load(file).module()(images))
    import onnxruntime

    session = onnxruntime.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
    return [torch.from_numpy(out) for out in session.run(None, {INPUT_NAME: images.numpy()})]


def largest_difference(expected: list[Tensor], got: list[Tensor]) -> float:
    """The largest absolute difference over all outputs; ``inf`` where the shapes differ."""
    if len(expected) != len(got) or any(
        e.shape != g.shape for e, g in zip(expected, got, strict=True)
    ):
        return float("inf")
    return max((e - g).abs().max().item() for e, g in zip(expected, got, strict=True))


def save_checked(
    module: Exportable,
    format: Format,
    path: str | os.PathLike[str],
    input_size: int,
    tolerance: float = TOLERANCE,
) -> float:
    """Write ``module`` as a ``format`` file to ``path``, then run the file on a random batch of
    ``CHECK_BATCH`` inputs (another batch size than the traced one) and return its largest
    absolute difference from the eager ``module``: a ``ValueError`` above ``tolerance``."""
    save_file(module, format, path, input_size)
    images = check_inputs(module.part, CHECK_BATCH, input_size, seed=1)
    with torch.no_grad():
        expected = list(module(images))
    difference = largest_difference(expected, run_file(format, path, images))
    if not difference <= tolerance:
        raise ValueError(
            f"the {format} {module.part} differs from the eager model by up to {difference:.3g} "
            f"on {CHECK_BATCH} random inputs, more than the tolerance {tolerance:g}"
        )
    return difference
