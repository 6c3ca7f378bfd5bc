"""DivergenceGuard: which losses stop a run, and the skip mode's dropped gradients."""

from __future__ import annotations

import contextlib
from types import SimpleNamespace

import pytest
import torch

from hgtrain.training.divergence import DivergenceError, DivergenceGuard


class OneProcess:
    """The two collective calls the guard makes, for a single process."""

    def reduce(self, value, reduce_op):
        return value

    def reduce_boolean_decision(self, decision, all=True):
        return decision


def feed(guard: DivergenceGuard, losses: list[float]) -> None:
    for step, loss in enumerate(losses, start=1):
        trainer = SimpleNamespace(strategy=OneProcess(), global_step=step)
        guard.on_train_batch_end(trainer, None, {"loss": torch.tensor(loss)}, None, step - 1)


def test_a_loss_that_falls_or_wobbles_never_stops_the_run():
    falling = [2.3 * 0.95**i for i in range(200)]  # down to about 1e-4
    wobbling = [0.01, 0.5, 0.02, 3.0, 0.01]  # a hard batch, 300 x the average
    feed(DivergenceGuard(), falling + wobbling)


def test_one_lucky_batch_does_not_lower_the_bar():
    feed(DivergenceGuard(factor=100), [1.0] * 20 + [1e-6] + [50.0])


@pytest.mark.parametrize(
    ("loss", "message"),
    [
        (2e4, r"exploded to 2e\+04 at step 21, 1e\+04 times its running average \(2\)"),
        (float("nan"), r"the training loss is nan at step 21"),
        (float("inf"), r"the training loss is inf at step 21"),
    ],
)
def test_an_exploded_or_non_finite_loss_stops_the_run_naming_the_step(loss, message):
    with pytest.raises(DivergenceError, match=message + r".*lower the learning rate"):
        feed(DivergenceGuard(), [2.0] * 20 + [loss])


def test_skip_mode_drops_the_gradients_of_a_non_finite_step_and_stops_after_too_many():
    guard = DivergenceGuard(action="skip", max_skipped=2)
    weight = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.SGD([weight], lr=1.0)
    trainer = SimpleNamespace(strategy=OneProcess(), global_step=5)
    weight.grad = torch.tensor([1.0, float("nan"), 0.0])
    with pytest.warns(UserWarning, match="step 6 skipped: non-finite gradients"):
        guard.on_before_optimizer_step(trainer, None, optimizer)
    assert weight.grad is None
    feed(guard, [float("nan")])  # skipped steps do not stop the run...
    weight.grad = torch.tensor([float("inf"), 0.0, 0.0])
    with pytest.warns(UserWarning):
        guard.on_before_optimizer_step(trainer, None, optimizer)
    weight.grad = torch.tensor([float("inf"), 0.0, 0.0])
    with pytest.raises(DivergenceError, match="not finite for 3 steps in a row"):
        guard.on_before_optimizer_step(trainer, None, optimizer)  # ...until max_skipped


def test_finite_gradients_reset_the_count_of_skipped_steps():
    guard = DivergenceGuard(action="skip", max_skipped=1)
    weight = torch.nn.Parameter(torch.ones(1))
    optimizer = torch.optim.SGD([weight], lr=1.0)
    trainer = SimpleNamespace(strategy=OneProcess(), global_step=0)
    for gradient in [float("nan"), 1.0, float("nan"), 1.0]:
        weight.grad = torch.tensor([gradient])
        with pytest.warns(UserWarning) if gradient != 1.0 else contextlib.nullcontext():
            guard.on_before_optimizer_step(trainer, None, optimizer)
