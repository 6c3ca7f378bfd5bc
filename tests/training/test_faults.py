"""Long runs survive faults: SIGTERM mid-epoch, SIGKILL mid-write, damaged files, divergence."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import torch

from hgtrain.cli.main import main
from tests.cli.test_cli import last_weights, tiny_config


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


class SigtermAtStep(L.Callback):
    """Sends this process a SIGTERM after training step ``step``, as a scheduler would."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: L.Trainer, *args, **kwargs) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGTERM)


class SigtermInValidation(L.Callback):
    """Sends this process a SIGTERM during the first validation after training starts."""

    def on_validation_batch_start(self, trainer: L.Trainer, *args, **kwargs) -> None:
        if not trainer.sanity_checking:
            os.kill(os.getpid(), signal.SIGTERM)


def fit_in(folder: Path, *extra: str) -> None:
    folder.mkdir(exist_ok=True)
    os.chdir(folder)
    config = tiny_config(folder, max_epochs=2)
    main(["fit", "--config", str(config), *extra])


@pytest.mark.parametrize(  # after 3 of epoch 0's 4 batches; 2 of epoch 1's (the quickstart's LR)
    ("step", "schedule"), [(3, "step"), (6, "one_cycle")]
)
def test_a_sigterm_mid_epoch_saves_a_checkpoint_that_resumes_exactly(tmp_path, step, schedule):
    schedule_args = ("--model.lr_schedule", schedule)
    fit_in(tmp_path / "straight", *schedule_args)
    with pytest.raises(SystemExit) as stopped:
        fit_in(
            tmp_path / "stopped",
            *schedule_args,
            f"--trainer.callbacks+={__name__}.SigtermAtStep",
            f"--trainer.callbacks.step={step}",
        )
    assert stopped.value.code == 143
    (saved,) = (tmp_path / "stopped" / "runs").rglob("last.ckpt")
    assert torch.load(saved, weights_only=True)["global_step"] == step
    resumed_from = saved.with_name("stopped.ckpt")
    saved.rename(resumed_from)
    fit_in(tmp_path / "stopped", *schedule_args, "--ckpt_path", str(resumed_from))
    expected, resumed = last_weights(tmp_path / "straight"), last_weights(tmp_path / "stopped")
    assert expected.keys() == resumed.keys()
    for key in expected:
        torch.testing.assert_close(resumed[key], expected[key], msg=key)


def test_a_sigterm_during_validation_keeps_the_checkpoint_saved_before_it(tmp_path):
    with pytest.raises(SystemExit) as stopped:
        fit_in(
            tmp_path,
            f"--trainer.callbacks+={__name__}.SigtermInValidation",
            "--resumable.every_n_train_steps",
            "3",
        )
    assert stopped.value.code == 143
    (saved,) = tmp_path.rglob("last.ckpt")
    assert torch.load(saved, weights_only=True)["global_step"] == 3  # not 4, mid-validation


KILL_ON_SECOND_WRITE = """
import os, signal, sys
import hgtrain.training.checkpoints as checkpointing
from hgtrain.cli.main import main

real, writes = checkpointing.write_file_atomically, []

def killed_on_second_write(path, write):
    writes.append(path)
    def then_killed(file):
        write(file)
        file.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    return real(path, then_killed if len(writes) == 2 else write)

if os.environ.get("KILL_ON_SECOND_WRITE"):
    checkpointing.write_file_atomically = killed_on_second_write
main(sys.argv[1:])
"""


def fit_process(folder: Path, *extra: str, kill: bool = False) -> int:
    """``hgtrain fit`` of the tiny config in a process of its own, killed (SIGKILL) during its
    second checkpoint write when ``kill``; its exit status."""
    folder.mkdir(exist_ok=True)
    config = tiny_config(folder, max_epochs=2)
    command = [sys.executable, "-c", KILL_ON_SECOND_WRITE, "fit", "--config", str(config), *extra]
    environment = {**os.environ, "KILL_ON_SECOND_WRITE": "1" if kill else ""}
    return subprocess.run(command, cwd=folder, env=environment, timeout=300).returncode


def test_a_kill_during_a_checkpoint_write_leaves_the_previous_checkpoint_to_resume_from(tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert fit_process(straight) == 0
    every_2 = ("--resumable.every_n_train_steps", "2")
    assert fit_process(killed, *every_2, kill=True) == -signal.SIGKILL
    (last,) = (killed / "runs").rglob("last.ckpt")
    assert torch.load(last, weights_only=True)["global_step"] == 2  # the first write, whole
    assert fit_process(killed, "--ckpt_path", str(last)) == 0
    expected, resumed = last_weights(straight), last_weights(killed)
    for key in expected:
        torch.testing.assert_close(resumed[key], expected[key], msg=key)


def test_a_diverging_run_stops_with_a_message_and_keeps_no_checkpoint_from_after(tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        fit_in(
            tmp_path,
            "--model.optimizer",
            "torch.optim.SGD",
            "--model.optimizer.lr",
            "1e3",
            "--resumable.every_n_train_steps",
            "1",
        )
    message = str(stopped.value.code)
    assert message.startswith("hgtrain: the training loss")
    assert "lower the learning rate" in message
    step = int(re.search(r"at step (\d+)", message).group(1))
    saved = [torch.load(p, weights_only=True)["global_step"] for p in tmp_path.rglob("*.ckpt")]
    assert saved and max(saved) < step
    assert not list(tmp_path.rglob("best*.ckpt"))


UNREADABLE = "not a readable checkpoint (empty, truncated, or another kind of file)"


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", UNREADABLE),
        (b"epoch,loss\n1,0.5\n", UNREADABLE),
        ("truncated", UNREADABLE),
        (
            "backbone",
            "not a training checkpoint (no state_dict); an exported backbone goes to "
            "--model.backbone_weights",
        ),
    ],
)
def test_a_bad_checkpoint_file_is_one_line_naming_it(tmp_path, capsys, content, problem):
    path = tmp_path / "model.ckpt"
    if content == "truncated":
        torch.save({"state_dict": {"w": torch.zeros(1000)}}, path)
        path.write_bytes(path.read_bytes()[:500])
    elif content == "backbone":
        torch.save({"format": "hgtrain-backbone", "config": {}}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(SystemExit):
        main(["validate", "--ckpt_path", str(path)])
    printed = capsys.readouterr().err
    assert "Traceback" not in printed
    assert printed.strip().splitlines()[-1].endswith(f"ckpt_path={path}: {problem}")


@pytest.mark.parametrize("content", [None, b"", b"not a checkpoint"])
def test_bad_backbone_weights_are_one_line_naming_the_file(tmp_path, capsys, content):
    path = tmp_path / "backbone.pt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(tiny_config(tmp_path)), "--model.backbone_weights", str(path)])
    printed = capsys.readouterr().err
    assert "Traceback" not in printed
    assert f"model.backbone_weights='{path}': " in printed.strip().splitlines()[-1]


def sigterm_the_job(tmp_path: Path, *options: str, after: float = 0.0) -> tuple[int, str]:
    """Start ``hgtrain fit`` with 2 persistent data workers in its own process group, send the
    whole group SIGTERM ``after`` seconds past its first best checkpoint, and return the exit
    status and what it printed on stderr."""
    config = tiny_config(tmp_path, max_epochs=1000)
    command = [sys.executable, "-m", "hgtrain.cli.main", "fit", "--config", str(config)]
    command += ["--data.num_workers", "2", "--data.persistent_workers", "true", *options]
    log = tmp_path / "stderr.log"
    with log.open("w") as stderr:
        job = subprocess.Popen(command, cwd=tmp_path, start_new_session=True, stderr=stderr)
    try:
        deadline = time.monotonic() + 120
        while not list(tmp_path.rglob("best-*.ckpt")) and time.monotonic() < deadline:
            time.sleep(0.2)  # until the first epoch has trained and validated
        time.sleep(after)
        os.killpg(job.pid, signal.SIGTERM)
        status = job.wait(timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(job.pid, signal.SIGKILL)
    return status, log.read_text()


def test_a_sigterm_to_every_process_of_the_job_still_saves_a_checkpoint(tmp_path):
    """SLURM signals every process of a job, data workers included: the workers ignore it, the
    main process stops at its next step, saves last.ckpt and exits with 143."""
    status, _ = sigterm_the_job(tmp_path)
    assert status == 143
    (last,) = tmp_path.rglob("last.ckpt")
    assert torch.load(last, weights_only=True)["global_step"] >= 4


def test_a_sigterm_during_validation_with_persistent_workers_still_exits(tmp_path):
    """A SIGTERM that interrupts validation leaves the loader's workers running (they ignore
    SIGTERM); the run still exits with 143 at once instead of waiting for them for ever."""
    # Validation of 400 images takes seconds, an epoch's 4 training steps a fraction of one.
    status, printed = sigterm_the_job(tmp_path, "--data.val_size", "400", after=1.0)
    assert status == 143
    assert "stopped by SIGTERM during validation" in printed


def test_a_set_up_check_writes_no_checkpoint_even_with_step_checkpoints(tmp_path):
    fit_in(tmp_path, "--trainer.fast_dev_run", "true", "--resumable.every_n_train_steps", "1")
    assert not list(tmp_path.rglob("*.ckpt"))
