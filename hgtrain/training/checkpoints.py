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
  see an interrupted job. Ctrl-C (SIGINT) during training does the same at the end of the
  current training step (a validation in progress runs to its end first) and exits with 130; a
  second Ctrl-C stops at once, saving nothing. Resuming with ``--ckpt_path .../last.ckpt`` continues
  mid-epoch with the same batches in the same order as an uninterrupted run (the DataModule saves
  its position in the training stream in every checkpoint). At the start of fit it removes the
  temporary files that killed checkpoint writes left in the run's checkpoint folder and in the
  folder of the checkpoint it resumes from (:func:`hgtrain.atomic.remove_stale_temporaries`).
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch.callbacks import Checkpoint, ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.exceptions import SIGTERMException

from hgtrain.atomic import remove_stale_temporaries, write_file_atomically

__all__ = ["AtomicCheckpointIO", "BestCheckpoint", "ResumableCheckpoints", "SIGINTException"]

CTRL_C_NOTICE = (
    b"\nhgtrain: Ctrl-C: saving last.ckpt at the end of the training step, then stopping "
    b"(Ctrl-C again stops at once, saving nothing)\n"
)


class SIGINTException(SystemExit):
    """Stops fit at the training batch boundary after a Ctrl-C (SIGINT), once ``last.ckpt`` is
    saved. A ``SystemExit``, as Lightning's ``SIGTERMException``, so that ``except Exception``
    blocks let it through."""


_ctrl_c_catcher: ResumableCheckpoints | None = None
"""The callback that Ctrl-C goes to in this process (and in the data workers forked from it)."""


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    """The SIGINT handler while a fit catches Ctrl-C; Python's own (``KeyboardInterrupt``) once
    it no longer does. One function, so that a handler left behind is recognised as such: Lightning
    puts back the handlers it found when its fit began, after the callbacks have let go."""
    if _ctrl_c_catcher is None:
        raise KeyboardInterrupt
    _ctrl_c_catcher.ctrl_c()


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

    Once training has started, the first Ctrl-C makes fit stop with :class:`SIGINTException` at
    the end of the training step it arrives in (or of the next one, after a validation): every
    DDP rank asks the others at every step whether one got it, so all stop at the same step.
    Before training (set-up, sanity check), a Ctrl-C is Python's ``KeyboardInterrupt``, as is a
    second one; where SIGINT is ignored or has a handler other than Python's, it is left alone.
    The handler is set at set-up, before any data worker is forked: the workers inherit it and
    ignore the first Ctrl-C (a terminal sends it to the whole process group, and a worker that
    died of it would fail the run before the save), and end quietly on the next.

    Args:
        every_n_train_steps: refresh ``last.ckpt`` after every N optimiser steps (0: only at
            epoch ends, by the ``last`` ``ModelCheckpoint``, and on SIGTERM or Ctrl-C).
        save_on_sigterm: save ``last.ckpt`` when a SIGTERM stops the run.
        filename: name of the file (without ``.ckpt``), in the checkpoint folder of the run's
            first ``ModelCheckpoint`` (else ``<log_dir>/checkpoints``).
        save_on_sigint: on Ctrl-C, stop at the end of the training step and save ``last.ckpt``
            (``False``: Lightning's handling, which stops at once and saves nothing).
    """

    def __init__(
        self,
        every_n_train_steps: int = 0,
        save_on_sigterm: bool = True,
        filename: str = "last",
        save_on_sigint: bool = True,
    ) -> None:
        if every_n_train_steps < 0:
            raise ValueError(f"every_n_train_steps must be >= 0, got {every_n_train_steps}")
        self.every_n_train_steps = every_n_train_steps
        self.save_on_sigterm = save_on_sigterm
        self.filename = filename
        self.save_on_sigint = save_on_sigint
        self.saved_at_step = -1
        self.sigint_received = False
        self._asking = False  # every rank asks the others about Ctrl-C at every training step
        self._armed = False  # the next Ctrl-C in the main process stops fit at a step's end
        self._process = -1  # the process catching Ctrl-C; forked data workers have other PIDs
        self._announce = False  # rank 0 says what a Ctrl-C does
        self._worker_sigints = 0

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
        trainer.save_checkpoint(path, weights_only=False)
        self.saved_at_step = trainer.global_step
        return path

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Catch Ctrl-C before any data worker is forked (the workers inherit the handler)."""
        self.sigint_received = self._armed = False
        self._asking = stage == "fit" and self.save_on_sigint and not trainer.fast_dev_run
        if self._asking:
            self._catch_sigint(trainer)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Remove what killed checkpoint writes left (rank 0 writes every checkpoint): in the
        run's checkpoint folder and in the folder of the checkpoint this run resumes from."""
        if not trainer.is_global_zero:
            return
        folders = {self.path(trainer).parent}
        if trainer.ckpt_path and "://" not in str(trainer.ckpt_path):
            folders.add(Path(trainer.ckpt_path).parent)
        for folder in sorted(folders):
            removed = remove_stale_temporaries(folder)
            if removed:
                rank_zero_info(
                    f"hgtrain: removed {len(removed)} temporary file(s) that interrupted "
                    f"checkpoint writes left in {folder}: {', '.join(p.name for p in removed)}"
                )

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._armed = _ctrl_c_catcher is self

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any, **kwargs: Any
    ) -> None:
        if self._ctrl_c_on_any_rank(trainer):
            raise SIGINTException
        step = trainer.global_step
        if (
            self.every_n_train_steps
            and step % self.every_n_train_steps == 0
            and step != self.saved_at_step
            and not trainer.sanity_checking
            and not trainer.fast_dev_run  # a set-up check writes no checkpoints
        ):
            self.save(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """A Ctrl-C after the last step (in the last validation) still ends in a save and 130."""
        self._armed = False
        if self._ctrl_c_on_any_rank(trainer):
            raise SIGINTException

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self._armed = False
        self._release_sigint()
        if isinstance(exception, SIGINTException):
            cause = "Ctrl-C"
        elif self.save_on_sigterm and isinstance(exception, SIGTERMException):
            cause = "SIGTERM"
        else:
            return
        if trainer.fast_dev_run:
            return
        if not trainer.training:  # validation's metrics are not in checkpoints: keep the last one
            rank_zero_info(
                f"hgtrain: stopped by {cause} during validation at step {trainer.global_step}; "
                f"resume from the last checkpoint saved before it ({self.path(trainer)} if it "
                "exists)"
            )
            return
        path = self.save(trainer)
        rank_zero_info(
            f"hgtrain: stopped by {cause} at step {trainer.global_step}; saved {path}. "
            f"Resume with --ckpt_path {path}"
        )

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._armed = False
        self._release_sigint()

    def ctrl_c(self) -> None:
        """A Ctrl-C: during training, the first one asks fit to stop at the step's end; any other
        one is Python's ``KeyboardInterrupt``. A data worker ignores its first one."""
        if os.getpid() != self._process:
            self._worker_sigints += 1
            if self._worker_sigints == 1:
                return
            raise KeyboardInterrupt  # PyTorch's worker loop ends quietly on it
        if not self._armed:
            raise KeyboardInterrupt
        self._armed = False
        self.sigint_received = True
        if self._announce:
            os.write(2, CTRL_C_NOTICE)  # not print: the handler may interrupt a print

    def _catch_sigint(self, trainer: L.Trainer) -> None:
        """Send Ctrl-C to :meth:`ctrl_c`, where Python's own handler has it (signal handlers can
        only be set in the main thread)."""
        global _ctrl_c_catcher
        if threading.current_thread() is threading.main_thread() and signal.getsignal(
            signal.SIGINT
        ) in (signal.default_int_handler, _on_sigint):
            signal.signal(signal.SIGINT, _on_sigint)
            _ctrl_c_catcher = self
            self._process = os.getpid()
            self._announce = trainer.is_global_zero

    def _release_sigint(self) -> None:
        """Give Ctrl-C back to Python's own handler."""
        global _ctrl_c_catcher
        if _ctrl_c_catcher is self:
            _ctrl_c_catcher = None
            if signal.getsignal(signal.SIGINT) is _on_sigint:
                signal.signal(signal.SIGINT, signal.default_int_handler)

    def _ctrl_c_on_any_rank(self, trainer: L.Trainer) -> bool:
        """Whether a rank got a Ctrl-C (every rank asks at the same step, so all stop there)."""
        return self._asking and trainer.strategy.reduce_boolean_decision(
            self.sigint_received, all=False
        )
