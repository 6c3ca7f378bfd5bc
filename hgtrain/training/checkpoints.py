"""Checkpoints that survive the ways long runs end: preemption, kills, full disks.

- :class:`AtomicCheckpointIO` writes every checkpoint beside its target and renames it into place
  (:mod:`hgtrain.atomic`), so a kill during a write never leaves a truncated ``last.ckpt`` where a
  good one was. (Lightning's own writer stages files in the system's temporary folder, and a
  rename from there to another file system is a copy that a kill can cut short.)
- :class:`BestCheckpoint` is Lightning's ``ModelCheckpoint`` that never takes a non-finite score
  for a best one (point AP is NaN on an evaluation without ground truth).
- :class:`ResumableCheckpoints` refreshes ``last.ckpt`` every N training steps and, when the job is
  told to stop (SIGTERM, as SLURM and Kubernetes send before killing it), saves it once more at the
  batch boundary where Lightning stops (not during validation, whose metric states a checkpoint
  cannot hold: the previous ``last.ckpt`` stays), then exits with status 143 (128 + SIGTERM) so schedulers
  see an interrupted job. Resuming with ``--ckpt_path .../last.ckpt`` continues mid-epoch with
  the same batches in the same order as an uninterrupted run (the DataModule saves its position
  in the training stream in every checkpoint).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch.callbacks import Checkpoint, ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.exceptions import SIGTERMException

from hgtrain.atomic import write_file_atomically

__all__ = ["AtomicCheckpointIO", "BestCheckpoint", "ResumableCheckpoints"]


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's ``TorchCheckpointIO`` with atomic writes on local file systems (remote URLs
    keep Lightning's own writer)."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike[str], storage_options: Any = None
    ) -> None:
        if storage_options is not None or "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        write_file_atomically(path, lambda file: torch.save(checkpoint, file))
        return None


class BestCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` for a monitored metric that saves no checkpoint on a NaN or infinite
    score: such a score is undefined (no ground truth) or broken, never the best so far."""

    def check_monitor_top_k(self, trainer: L.Trainer, current: torch.Tensor | None = None) -> bool:
        finite = current is not None and bool(torch.isfinite(current))
        if not trainer.strategy.reduce_boolean_decision(finite, all=True):
            return False
        return super().check_monitor_top_k(trainer, current)


class ResumableCheckpoints(Checkpoint):
    """Keeps ``last.ckpt`` fresh within epochs and saves it when the job is told to stop.

    A ``Checkpoint`` callback, so Lightning runs it after the others at each step: a step that
    :class:`~hgtrain.training.divergence.DivergenceGuard` stops is never saved.

    Args:
        every_n_train_steps: refresh ``last.ckpt`` after every N optimiser steps (0: only at
            epoch ends, by the ``last`` ``ModelCheckpoint``, and on SIGTERM).
        save_on_sigterm: save ``last.ckpt`` when a SIGTERM stops the run.
        filename: name of the file (without ``.ckpt``), in the checkpoint folder of the run's
            first ``ModelCheckpoint`` (else ``<log_dir>/checkpoints``).
    """

    def __init__(
        self, every_n_train_steps: int = 0, save_on_sigterm: bool = True, filename: str = "last"
    ) -> None:
        if every_n_train_steps < 0:
            raise ValueError(f"every_n_train_steps must be >= 0, got {every_n_train_steps}")
        self.every_n_train_steps = every_n_train_steps
        self.save_on_sigterm = save_on_sigterm
        self.filename = filename
        self.saved_at_step = -1

    def path(self, trainer: L.Trainer) -> Path:
        """Where ``last.ckpt`` goes: beside the run's other checkpoints."""
        folders = [
            c.dirpath for c in trainer.checkpoint_callbacks if isinstance(c, ModelCheckpoint)
        ]
        folder = next((f for f in folders if f), None)
        if folder is None:
            folder = Path(trainer.log_dir or trainer.default_root_dir) / "checkpoints"
        return Path(folder) / f"{self.filename}.ckpt"

    def save(self, trainer: L.Trainer) -> Path:
        """Save a resumable checkpoint now (every rank takes part; rank 0 writes)."""
        path = self.path(trainer)
        trainer.save_checkpoint(path)
        self.saved_at_step = trainer.global_step
        return path

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any, **kwargs: Any
    ) -> None:
        step = trainer.global_step
        if (
            self.every_n_train_steps
            and step % self.every_n_train_steps == 0
            and step != self.saved_at_step
            and not trainer.sanity_checking
            and not trainer.fast_dev_run  # a set-up check writes no checkpoints
        ):
            self.save(trainer)

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        if not (self.save_on_sigterm and isinstance(exception, SIGTERMException)):
            return
        if trainer.fast_dev_run:
            return
        if not trainer.training:  # validation's metrics are not in checkpoints: keep the last one
            rank_zero_info(
                f"hgtrain: stopped by SIGTERM during validation at step {trainer.global_step}; "
                f"resume from the last checkpoint saved before it ({self.path(trainer)} if it "
                "exists)"
            )
            return
        path = self.save(trainer)
        rank_zero_info(
            f"hgtrain: stopped by SIGTERM at step {trainer.global_step}; saved {path}. "
            f"Resume with --ckpt_path {path}"
        )
