"""``hgtrain export``: a trained backbone as a file of its own, for use outside hgtrain.

``hgtrain export --ckpt_path last.ckpt --output squeeze_backbone.pt`` writes a plain dict, readable
with ``torch.load(weights_only=True)``::

    {"format": "hgtrain-backbone", "format_version": 1,
     "state_dict": {...},                  # backbone weights, hgtrain keys (pre.*, hgs.*, ...)
     "config": {...},                      # HourglassConfig.to_dict(): the exact architecture
     "feature_info": [...], "merg_info": [...],
     "input": {"pixel_mean", "pixel_std", "value_range", "input_size"},
     "provenance": {"variant", "global_step", "epoch", "metrics", "hgtrain_version",
                    "torch_version", "lightning_version", "trained_with_hgtrain",
                    "source_checkpoint", "created"}}

``hgtrain.load_backbone(path)`` builds the backbone from it. With ``--format cornernet-lite`` the file
is the backbone alone under the original ``module.hg.*`` keys, which the CornerNet-Lite code loads
with ``load_state_dict(..., strict=False)``; that format also converts any other file that
``load_backbone`` reads. Output files are written atomically and never replaced unless
``--overwrite true`` is given. Every option can also come from a YAML file: ``--config FILE``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from hgtrain import __version__
from hgtrain.arguments import ToolParser
from hgtrain.models.backbone import HourglassBackbone
from hgtrain.models.convert import load_state_exactly, to_cornernet_lite
from hgtrain.pretrained import (
    BACKBONE_FORMAT,
    BACKBONE_FORMAT_VERSION,
    is_training_checkpoint,
    read_checkpoint,
    stored_backbone,
)

FORMATS = ("hgtrain", "cornernet-lite")
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


def save_atomically(content: Any, output: Path, overwrite: bool = False) -> None:
    """``torch.save`` to a temporary file beside ``output``, then rename it into place: a reader
    never sees half a file, and a failed write leaves any existing ``output`` as it was."""
    if output.exists() and not overwrite:
        raise FileExistsError(f"{output} exists; pass --overwrite true to replace it.")
    output.parent.mkdir(parents=True, exist_ok=True)
    temporary = output.with_name(f".{output.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(temporary, "xb") as file:
            torch.save(content, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, output)
    finally:
        temporary.unlink(missing_ok=True)


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
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    ckpt_path, output = Path(ckpt_path), Path(output)
    if output.exists() and ckpt_path.exists() and output.samefile(ckpt_path):
        raise ValueError(
            f"--output {output} is the checkpoint being exported; choose another path."
        )
    if output.exists() and not overwrite:
        raise FileExistsError(f"{output} exists; pass --overwrite true to replace it.")
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


def main(args: list[str] | None = None) -> None:
    """Entry point of ``hgtrain export`` and ``python -m hgtrain.export``."""
    parser = ToolParser(
        prog="hgtrain export",
        description="Write the backbone of a training checkpoint to a file of its own.",
    )
    parser.add_argument(
        "--ckpt_path", type=str, required=True, help="hgtrain training checkpoint (.ckpt)"
    )
    parser.add_argument(
        "--output", type=str, required=True, help="file to write (e.g. backbone.pt)"
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="hgtrain",
        help="hgtrain: weights with architecture, normalisation and provenance (default); "
        "cornernet-lite: the original module.hg.* keys",
    )
    parser.add_argument(
        "--overwrite", type=bool, default=False, help="true: replace an existing --output"
    )
    options = parser.parse_args(args)
    try:
        content = export_backbone(
            options.ckpt_path, options.output, options.format, options.overwrite
        )
    except (OSError, ValueError) as err:
        raise SystemExit(f"hgtrain export: {err}") from err
    print(f"hgtrain export: wrote {options.output}: {describe(content)}")


if __name__ == "__main__":
    main()
