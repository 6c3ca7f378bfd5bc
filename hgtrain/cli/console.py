"""What the training subcommands print: no line a user cannot act on, and results that fit a screen.

Lightning and torch print a few messages on every run that say nothing about the run itself;
:func:`quiet_known_noise` filters exactly those, each at its source, with the reason beside it.
Everything else (a real warning about the user's settings) still shows. The model summary
(:class:`CompactModelSummary`) counts the FLOPs of the network on one image.
:func:`results_table` turns the metrics of the test sets (or the validation set) into one table
with the sets as columns and the headline metrics as rows; the full breakdown goes to the logger
as before.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Mapping, Sequence

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelSummary

from hgtrain.models.flops import inference_flops
from hgtrain.models.network import KeypointNetConfig

__all__ = ["CompactModelSummary", "quiet_known_noise", "results_table"]

KNOWN_WARNINGS = (
    # Lightning's own pytree helper checks ``isinstance(spec, LeafSpec)``, which torch deprecated;
    # the call is Lightning's (lightning/pytorch/utilities/_pytree.py), nothing hgtrain or a user
    # does can change it.
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
    # The model summary does not know mixed precision and falls back to 32 bits per parameter,
    # which is right: under bf16-mixed the weights stay float32, only the compute is bf16.
    r"Precision .*-mixed is not supported by the model summary",
)
LOGGED_TIPS = ("💡 Tip:",)
"""Starts of Lightning's info lines that advertise a service rather than describe the run."""


class _DropTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(LOGGED_TIPS)


def quiet_known_noise() -> None:
    """Filter the known messages that no setting of a run can address (idempotent)."""
    for message in KNOWN_WARNINGS:
        warnings.filterwarnings("ignore", message=message)
    # Lightning logs its rank-zero messages on this logger (lightning.pytorch.utilities.rank_zero).
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, _DropTips) for f in logger.filters):
        logger.addFilter(_DropTips())


class CompactModelSummary(ModelSummary):
    """Lightning's model summary with the FLOPs of the network's inference on one image at the
    training input size, counted on the meta device (:func:`hgtrain.models.flops.inference_flops`),
    instead of a column of zeros.

    Lightning counts FLOPs only by running the module's ``example_input_array`` through it, on the
    real device, before training; with one, a tiny channels_last network in float32 on the CPU
    aborted in its first backward pass (torch 2.14, ``tests/training/test_training_recipe.py``), so
    hgtrain counts them without running anything.
    """

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self._max_depth:
            return
        summary = self._summary(trainer, pl_module)
        if not trainer.is_global_zero:
            return
        network = getattr(pl_module, "model", None)
        config = getattr(network, "config", None)
        flops = inference_flops(config, 1) if isinstance(config, KeypointNetConfig) else 0
        columns = [column for column in summary._get_summary_data() if column[0] != "FLOPs"]
        self.summarize(
            columns,
            summary.total_parameters,
            summary.trainable_parameters,
            summary.model_size,
            summary.total_training_modes,
            total_flops=flops,
            **self._summarize_kwargs,
        )


HEADLINE = ("map@1", "map@2", "map@4", "map")
"""Rows before the per-class ones: point AP at each distance threshold (px), and their mean."""
TAIL = ("recall@2", "loc_error", "loss")
"""Rows after them: recall at 2 px, the mean localisation error (px) of the matches, the loss."""
LABELS = {
    "map@1": "AP@1",
    "map@2": "AP@2",
    "map@4": "AP@4",
    "map": "AP (mean over 1/2/4 px)",
    "recall@2": "recall@2",
    "loc_error": "localisation error (px)",
    "loss": "loss",
}


def results_table(
    metrics: Mapping[str, float], prefixes: Sequence[str], class_names: Sequence[str] = ()
) -> str:
    """One table of the metrics logged under each prefix (``test_noisy``, ``val``...): a column
    per prefix, a row per headline metric and one per class (its AP@2); rows no prefix logged
    are left out."""
    rows = [
        *((name, LABELS[name]) for name in HEADLINE),
        *((f"ap@2/{name}", f"AP@2 {name}") for name in class_names),
        *((name, LABELS[name]) for name in TAIL),
    ]
    columns = [prefix.removeprefix("test_") for prefix in prefixes]
    cells = []
    for key, label in rows:
        values = [metrics.get(f"{prefix}/{key}") for prefix in prefixes]
        if any(value is not None for value in values):
            cells.append([label, *(_number(value) for value in values)])
    label_width = max(len(row[0]) for row in [["metric"], *cells])
    widths = [max(8, len(column)) for column in columns]

    def line(label: str, values: Sequence[str]) -> str:
        right = (f"{value:>{width}}" for value, width in zip(values, widths, strict=True))
        return "  ".join([f"{label:<{label_width}}", *right])

    header = line("metric", columns)
    lines = [header, "-" * len(header), *(line(label, values) for label, *values in cells)]
    return "\n".join(lines)


def _number(value: float | None) -> str:
    if value is None:
        return ""
    value = float(value)
    return "n/a" if math.isnan(value) else f"{value:.4f}"
