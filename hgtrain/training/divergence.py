"""``DivergenceGuard``: a run whose loss turns non-finite or explodes stops and says so.

Without it a diverged run (learning rate 1e3: a loss of 1e24 after a few steps) trains to the end,
keeps validating, and may keep writing checkpoints of a broken model. The guard watches the
training loss after every step:

- a non-finite loss (NaN or inf), or
- a loss above ``factor`` times its running average (an exponential moving average over about
  the last ``1 / smoothing`` steps, so one lucky batch does not lower the bar)

stops the run at once with :class:`DivergenceError`, which names the step and suggests fixes, so
no checkpoint of the diverged model is written (``last.ckpt`` and the best checkpoint stay those
saved before). With ``action="skip"`` a step with a non-finite loss is skipped instead (its
gradients are dropped before the optimiser step), up to ``max_skipped`` steps in a row. Every
rank takes the same decision (the loss is reduced across ranks), so DDP runs stop together.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_warn

__all__ = ["DivergenceError", "DivergenceGuard"]

FIXES = (
    "lower the learning rate (the optimizer's lr, or a warm-up), use 32-bit precision if the run "
    "is in 16-bit, or check the data for broken labels"
)


class DivergenceError(RuntimeError):
    """The training loss became non-finite or exploded; the message names the step."""


class DivergenceGuard(L.Callback):
    """Stops (or skips the steps of) a run whose training loss diverges.

    Args:
        factor: a loss above ``factor`` x its running average counts as exploded (0: only
            non-finite losses count).
        smoothing: weight of each new loss in that running average.
        action: ``"stop"`` raises :class:`DivergenceError`; ``"skip"`` drops the gradients of
            steps with a non-finite loss (an exploded finite loss still stops the run).
        max_skipped: with ``"skip"``, stop after this many skipped steps in a row.
    """

    def __init__(
        self,
        factor: float = 1e3,
        smoothing: float = 0.1,
        action: Literal["stop", "skip"] = "stop",
        max_skipped: int = 10,
    ) -> None:
        if (
            factor < 0
            or not 0 < smoothing <= 1
            or action not in ("stop", "skip")
            or max_skipped < 1
        ):
            raise ValueError(
                f"need factor >= 0, 0 < smoothing <= 1, action 'stop' or 'skip', max_skipped >= 1; "
                f"got {factor}, {smoothing}, {action!r}, {max_skipped}"
            )
        self.factor = factor
        self.smoothing = smoothing
        self.action = action
        self.max_skipped = max_skipped
        self.average: float | None = None
        self.skipped = 0

    def state_dict(self) -> dict[str, Any]:
        return {"average": self.average}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.average = state_dict.get("average")

    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        """With ``action="skip"``: a step with non-finite gradients (from a non-finite loss) gets
        none, so the optimiser leaves the weights as they are."""
        if self.action != "skip":
            return
        gradients = [p.grad for group in optimizer.param_groups for p in group["params"]]
        gradients = [g for g in gradients if g is not None]
        finite = torch.stack([g.isfinite().all() for g in gradients]).all() if gradients else True
        if bool(trainer.strategy.reduce_boolean_decision(bool(finite), all=True)):
            self.skipped = 0
            return
        self.skipped += 1
        if self.skipped > self.max_skipped:
            raise DivergenceError(
                f"the gradients were not finite for {self.skipped} steps in a row, up to step "
                f"{trainer.global_step + 1}: {FIXES}"
            )
        rank_zero_warn(f"hgtrain: step {trainer.global_step + 1} skipped: non-finite gradients")
        for group in optimizer.param_groups:
            for parameter in group["params"]:
                parameter.grad = None

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if not isinstance(loss, torch.Tensor):
            return
        value = float(trainer.strategy.reduce(loss.detach(), reduce_op="max"))
        step = trainer.global_step
        if not math.isfinite(value):
            if self.action == "skip":
                return
            raise DivergenceError(f"the training loss is {value} at step {step}: {FIXES}")
        average = self.average
        if self.factor and average is not None and value > self.factor * average:
            raise DivergenceError(
                f"the training loss exploded to {value:.4g} at step {step}, {value / average:.3g} "
                f"times its running average ({average:.4g}): {FIXES}"
            )
        self.average = value if average is None else average + self.smoothing * (value - average)
