"""Training checkpoints of tiny models, for the pretrained-backbone, export and fine-tuning tests."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader

from hgtrain.training.module import HourglassKeypointModule

from .helpers import keypoint_batch, tiny_backbone

MONITOR = "train/loss"


def tiny_module(variant: str = "squeeze", seed: int = 0, **options) -> HourglassKeypointModule:
    """A tiny keypoint module for 64 px inputs, seeded."""
    torch.manual_seed(seed)
    return HourglassKeypointModule(
        backbone=tiny_backbone(variant), num_classes=2, input_size=64, head_dim=8, **options
    )


def fit(
    module: HourglassKeypointModule,
    steps: int = 3,
    callbacks: list[L.Callback] | None = None,
    **trainer_options,
) -> L.Trainer:
    """Train ``module`` for ``steps`` CPU steps on fixed synthetic batches."""
    batches = [keypoint_batch(seed=i) for i in range(steps)]
    options = dict(
        max_steps=steps,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer = L.Trainer(**{**options, **trainer_options}, callbacks=callbacks or [])
    trainer.fit(module, DataLoader(batches, batch_size=None))
    return trainer


def train_checkpoint(
    path: Path, variant: str = "squeeze", steps: int = 3
) -> HourglassKeypointModule:
    """Train a tiny module a few steps (none for ``steps=0``) and save its Lightning checkpoint,
    with a ModelCheckpoint state holding the best score (as ``hgtrain fit`` writes); returns the
    trained module."""
    module = tiny_module(variant)
    best = ModelCheckpoint(dirpath=path.parent / "best", monitor=MONITOR, every_n_train_steps=1)
    trainer = fit(module, steps, callbacks=[best], enable_checkpointing=True)
    trainer.save_checkpoint(path)
    return module
