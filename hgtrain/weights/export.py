"""``hgtrain export``: a trained model as a file of its own, for use outside hgtrain.

``--format`` chooses the file:

- ``hgtrain`` (default): the backbone as a plain dict, readable with
  ``torch.load(weights_only=True)``; ``hgtrain.load_backbone(path)`` builds the backbone from it::

    {"format": "hgtrain-backbone", "format_version": 1,
     "state_dict": {...},                  # backbone weights, hgtrain keys (pre.*, hgs.*, ...)
     "config": {...},                      # HourglassConfig.to_dict(): the exact architecture
     "feature_info": [...], "merg_info": [...],
     "input": {"pixel_mean", "pixel_std", "value_range", "input_size"},
     "provenance": {"variant", "global_step", "epoch", "metrics", "hgtrain_version",
                    "torch_version", "lightning_version", "trained_with_hgtrain",
                    "source_checkpoint", "created"}}

- ``cornernet-lite``: the backbone alone under the original ``module.hg.*`` keys, which the
  CornerNet-Lite code loads with ``load_state_dict(..., strict=False)``; this format also converts
  any other file that ``load_backbone`` reads.
- ``torch-export``: a ``torch.export`` program (``torch.export.save``; run it with
  ``torch.export.load(path).module()(images)``).
- ``onnx``: an ONNX model, weights inside (needs the ``deploy`` extra:
  ``pip install 'hgtrain[deploy]'``).

The first two hold the backbone's weights only. The last two are graphs (:mod:`hgtrain.weights.deploy`) of
``--part network`` (default; a training checkpoint's whole network: float32 RGB images in [0, 1],
[B, 3, N, N] -> the last stack's heatmap logits and offsets, normalisation inside, decoding left to
:meth:`KeypointNet.decode`) or ``--part backbone`` (normalised images -> every stack's features;
from any file that ``load_backbone`` reads, its weights as stored: BGR for the original
CornerNet-Lite files). N is the input size the checkpoint was trained at, or
``--input_size N``; the batch size is dynamic. Before a graph file is kept, it is run on a random
batch of another size than the traced one and compared with the eager model: a largest absolute
difference above ``--tolerance`` (1e-4) fails the export.

Output files are written atomically (a failed export leaves nothing behind) and never replaced
unless ``--overwrite true`` is given. Every option can also come from a YAML file: ``--config FILE``.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

import torch
from jsonargparse import Namespace

from hgtrain import __version__
from hgtrain.atomic import atomic_path
from hgtrain.cli.arguments import ToolParser
from hgtrain.models.backbone import HourglassBackbone
from hgtrain.weights import deploy
from hgtrain.weights.convert import load_state_exactly, to_cornernet_lite
from hgtrain.weights.pretrained import (
    BACKBONE_FORMAT,
    BACKBONE_FORMAT_VERSION,
    is_backbone_export,
    is_training_checkpoint,
    keypoint_net,
    read_checkpoint,
    stored_backbone,
)

BACKBONE_FORMATS = ("hgtrain", "cornernet-lite")
FORMATS = BACKBONE_FORMATS + deploy.FORMATS
DEPLOY_EXTRA = ("onnx", "onnxscript", "onnxruntime")
VALUE_RANGE = "RGB uint8 / 255"


def best_scores(checkpoint: Mapping[str, Any]) -> dict[str, float]:
    """``{monitor: best score}`` of every ``ModelCheckpoint`` whose state the checkpoint holds."""
    scores = {}
    for state in checkpoint.get("callbacks", {}).values():
        if (
            isinstance(state, Mapping)
            and state.get("monitor")
            and state.get("best_model_score") is not None
        ):
            scores[state["monitor"]] = float(state["best_model_score"])
    return scores


def backbone_export(checkpoint: Mapping[str, Any], source: str) -> dict[str, Any]:
    """The content of an ``hgtrain-backbone`` file for the content of a training checkpoint."""
    hparams = checkpoint.get("hyper_parameters", {}) if is_training_checkpoint(checkpoint) else {}
    required = ("backbone", "pixel_mean", "pixel_std", "input_size")
    if not all(key in hparams for key in required):
        raise ValueError(
            f"{source} is not an hgtrain training checkpoint (its hyper_parameters need "
            f"{', '.join(required)}). Use --format cornernet-lite to convert other weights, or "
            "hgtrain.load_backbone to read them."
        )
    stored = stored_backbone(checkpoint, source)
    backbone = HourglassBackbone(stored.config)
    load_state_exactly(backbone, stored.state, source)
    return {
        "format": BACKBONE_FORMAT,
        "format_version": BACKBONE_FORMAT_VERSION,
        "state_dict": stored.state,
        "config": stored.config.to_dict(),
        "feature_info": backbone.feature_info,
        "merg_info": backbone.merg_info,
        "input": {
            "pixel_mean": [float(v) for v in hparams["pixel_mean"]],
            "pixel_std": [float(v) for v in hparams["pixel_std"]],
            "value_range": VALUE_RANGE,
            "input_size": int(hparams["input_size"]),
        },
        "provenance": {
            "variant": stored.config.name,
            "global_step": checkpoint.get("global_step"),
            "epoch": checkpoint.get("epoch"),
            "metrics": best_scores(checkpoint),
            "hgtrain_version": __version__,
            "torch_version": str(torch.__version__),
            "lightning_version": checkpoint.get("pytorch-lightning_version"),
            "trained_with_hgtrain": checkpoint.get("hgtrain", {}).get("version"),
            "source_checkpoint": str(Path(source).resolve()),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        },
    }


@contextmanager
def atomic_output(output: Path, overwrite: bool = False) -> Iterator[Path]:
    """A temporary path beside ``output`` for the body to write, renamed into place when the body
    succeeds (:func:`hgtrain.atomic.atomic_path`); an existing ``output`` only with ``overwrite``."""
    if output.exists() and not overwrite:
        raise FileExistsError(f"{output} exists; pass --overwrite true to replace it.")
    with atomic_path(output) as temporary:
        yield temporary


def save_atomically(content: Any, output: Path, overwrite: bool = False) -> None:
    """``torch.save`` to ``output`` atomically (:func:`atomic_output`)."""
    with atomic_output(output, overwrite) as temporary, open(temporary, "xb") as file:
        torch.save(content, file)


def check_output(ckpt_path: Path, output: Path, overwrite: bool) -> None:
    """Errors, before any work, for an ``output`` that is the checkpoint or exists."""
    if output.exists() and ckpt_path.exists() and output.samefile(ckpt_path):
        raise ValueError(
            f"--output {output} is the checkpoint being exported; choose another path."
        )
    if output.exists() and not overwrite:
        raise FileExistsError(f"{output} exists; pass --overwrite true to replace it.")


def export_backbone(
    ckpt_path: str | os.PathLike[str],
    output: str | os.PathLike[str],
    format: str = "hgtrain",
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write the backbone of ``ckpt_path`` to ``output`` and return what was written.

    ``format="hgtrain"`` needs an hgtrain training checkpoint; ``"cornernet-lite"`` takes any file
    that ``hgtrain.load_backbone`` reads. ``output`` is never the checkpoint itself.
    """
    if format not in BACKBONE_FORMATS:
        raise ValueError(f"format must be one of {BACKBONE_FORMATS}, got {format!r}")
    ckpt_path, output = Path(ckpt_path), Path(output)
    check_output(ckpt_path, output, overwrite)
    checkpoint = read_checkpoint(ckpt_path)
    if format == "hgtrain":
        content = backbone_export(checkpoint, str(ckpt_path))
    else:
        content = to_cornernet_lite(stored_backbone(checkpoint, str(ckpt_path)).state)
    save_atomically(content, output, overwrite)
    return content


def describe(content: Mapping[str, Any]) -> str:
    """One line about an exported file's content, for the command's output."""
    if content.get("format") != BACKBONE_FORMAT:
        return f"{len(content)} CornerNet-Lite backbone tensors (module.hg.*)"
    provenance = content["provenance"]
    metrics = ", ".join(f"{k} {v:.4g}" for k, v in provenance["metrics"].items())
    buffers = ("running_mean", "running_var", "num_batches_tracked")
    parameters = sum(v.numel() for k, v in content["state_dict"].items() if not k.endswith(buffers))
    return (
        f"{provenance['variant']} backbone, {parameters:,} weights, "
        f"step {provenance['global_step']}" + (f", {metrics}" if metrics else "")
    )


class Deployment(NamedTuple):
    """What :func:`export_for_deployment` wrote, and how close to the eager model it came."""

    format: str
    part: str
    input_size: int
    difference: float


def require_deploy_extra() -> None:
    """An ``ImportError`` saying how to install what ONNX export needs, when it is missing."""
    try:
        for name in DEPLOY_EXTRA:
            importlib.import_module(name)
    except ImportError as err:
        raise ImportError(
            "--format onnx needs the deploy extra: pip install 'hgtrain[deploy]'"
        ) from err


def trained_input_size(content: Any) -> int | None:
    """The input size recorded in a training checkpoint or an ``hgtrain`` export, else ``None``."""
    if is_backbone_export(content):
        size = content.get("input", {}).get("input_size")
    elif is_training_checkpoint(content):
        size = content["hyper_parameters"].get("input_size")
    else:
        size = None
    return None if size is None else int(size)


def exportable_part(content: Any, source: str, part: str) -> tuple[deploy.Exportable, int | None]:
    """The module to export for ``part`` out of a file's content, and the input size it was
    trained at (``None`` where the file does not say)."""
    if part == "backbone":
        stored = stored_backbone(content, source)
        backbone = HourglassBackbone(stored.config)
        load_state_exactly(backbone, stored.state, source)
        return deploy.exportable(backbone, "backbone"), trained_input_size(content)
    if not is_training_checkpoint(content):
        raise ValueError(
            f"{source} holds no keypoint heads: --part network needs an hgtrain training "
            "checkpoint (.ckpt); --part backbone exports the backbone of any file that "
            "hgtrain.load_backbone reads."
        )
    network = keypoint_net(content, source)
    return deploy.exportable(network, "network"), network.config.input_size


def export_for_deployment(
    ckpt_path: str | os.PathLike[str],
    output: str | os.PathLike[str],
    format: str = "onnx",
    part: str = "network",
    input_size: int | None = None,
    overwrite: bool = False,
    tolerance: float = deploy.TOLERANCE,
) -> Deployment:
    """Write ``part`` of ``ckpt_path`` as a ``torch-export`` or ``onnx`` file at ``output``, checked
    against the eager model (:func:`hgtrain.weights.deploy.save_checked`); nothing is written when the
    check fails. ``input_size`` defaults to the one the checkpoint was trained at."""
    if format not in deploy.FORMATS:
        raise ValueError(f"format must be one of {deploy.FORMATS}, got {format!r}")
    if part not in deploy.PARTS:
        raise ValueError(f"part must be one of {deploy.PARTS}, got {part!r}")
    if format == "onnx":
        require_deploy_extra()
    ckpt_path, output = Path(ckpt_path), Path(output)
    check_output(ckpt_path, output, overwrite)
    module, trained_size = exportable_part(read_checkpoint(ckpt_path), str(ckpt_path), part)
    if input_size is None:
        if trained_size is None:
            raise ValueError(f"{ckpt_path} records no input size; pass --input_size N.")
        input_size = trained_size
    else:
        try:
            module.backbone.config.check_input_size(input_size, input_size)
        except ValueError as err:
            raise ValueError(f"--input_size {input_size}: {err}") from err
    with atomic_output(output, overwrite) as temporary:
        difference = deploy.save_checked(module, format, temporary, input_size, tolerance)
    return Deployment(format, part, input_size, difference)


def check_options(parser: ToolParser, options: Namespace) -> None:
    """``parser.error`` (one line, exit status 2) for options that do not go together."""
    parser.check_at_least(options, input_size=1)
    if options.tolerance is not None and options.tolerance < 0:
        parser.error(f"--tolerance={options.tolerance}: must be >= 0")
    if options.format in BACKBONE_FORMATS:
        if options.part == "network":
            parser.error(
                f"--part network: --format {options.format} holds the backbone only; "
                "--format torch-export or onnx export the whole network"
            )
        for name in ("input_size", "tolerance"):
            if options[name] is not None:
                parser.error(f"--{name}: applies to --format torch-export and onnx only")


def main(args: list[str] | None = None) -> None:
    """Entry point of ``hgtrain export`` and ``python -m hgtrain.weights.export``."""
    parser = ToolParser(
        prog="hgtrain export",
        description="Write a trained backbone, or the whole trained network, to a file of its own: "
        "backbone weights (hgtrain, cornernet-lite) or a graph for deployment (torch-export, onnx).",
    )
    parser.add_argument(
        "--ckpt_path",
        type=str,
        required=True,
        help="hgtrain training checkpoint (.ckpt); --format cornernet-lite and --part backbone "
        "also take any file that hgtrain.load_backbone reads",
    )
    parser.add_argument(
        "--output", type=str, required=True, help="file to write (e.g. backbone.pt, net.onnx)"
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="hgtrain",
        help="hgtrain: backbone weights with architecture, normalisation and provenance; "
        "cornernet-lite: backbone weights under the original module.hg.* keys; "
        "torch-export: a torch.export program (torch.export.load); onnx: an ONNX model (needs "
        "pip install 'hgtrain[deploy]'). torch-export and onnx files have a dynamic batch size "
        "and are checked against the eager model before they are kept",
    )
    parser.add_argument(
        "--part",
        choices=deploy.PARTS,
        default=None,
        help="torch-export and onnx only. network (their default): float32 RGB images in [0, 1], "
        "[B, 3, N, N] -> the last stack's heatmap logits and offsets, normalisation inside; "
        "backbone: normalised images -> every stack's features. hgtrain and cornernet-lite hold "
        "the backbone only",
    )
    parser.add_argument(
        "--input_size",
        type=int,
        default=None,
        help="torch-export and onnx only: image side N of the graph (default: the size the "
        "checkpoint was trained at)",
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=None,
        help="torch-export and onnx only: largest absolute difference from the eager model on "
        f"random inputs that the export may show (default: {deploy.TOLERANCE:g})",
    )
    parser.add_argument(
        "--overwrite", type=bool, default=False, help="true: replace an existing --output"
    )
    options = parser.parse_args(args)
    check_options(parser, options)
    try:
        if options.format in BACKBONE_FORMATS:
            content = export_backbone(
                options.ckpt_path, options.output, options.format, options.overwrite
            )
            print(f"hgtrain export: wrote {options.output}: {describe(content)}")
            return
        done = export_for_deployment(
            options.ckpt_path,
            options.output,
            options.format,
            options.part or "network",
            options.input_size,
            options.overwrite,
            deploy.TOLERANCE if options.tolerance is None else options.tolerance,
        )
    except (ImportError, OSError, ValueError) as err:
        raise SystemExit(f"hgtrain export: {err}") from err
    print(
        f"hgtrain export: wrote {options.output} ({done.format}, {done.part} at "
        f"{done.input_size}x{done.input_size} px, dynamic batch; {deploy.CHECK_BATCH} inputs "
        f"checked: max abs difference {done.difference:.2g} vs eager)"
    )


if __name__ == "__main__":
    main()
