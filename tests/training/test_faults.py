"""Long runs survive faults: SIGTERM or Ctrl-C mid-epoch, SIGKILL mid-write, damaged files,
divergence, resumes of another length."""

from __future__ import annotations

import contextlib
import csv
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

from hgtrain.atomic import STALE_AFTER_S
from hgtrain.cli.main import main
from tests.cli.test_cli import last_weights, tiny_config

REPOSITORY = Path(__file__).parents[2]


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


class SigintAtStep(L.Callback):
    """Sends this process ``times`` SIGINTs after training step ``step``, as Ctrl-C would (under
    DDP, only in the process of rank ``rank``, if given)."""

    def __init__(self, step: int, times: int = 1, rank: int | None = None) -> None:
        self.step = step
        self.times = times
        self.rank = rank

    def on_train_batch_end(self, trainer: L.Trainer, *args, **kwargs) -> None:
        if trainer.global_step == self.step and self.rank in (None, trainer.global_rank):
            for _ in range(self.times):
                os.kill(os.getpid(), signal.SIGINT)


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


@pytest.fixture
def ctrl_c_as_in_a_terminal():
    """Python's own SIGINT handler, which a terminal's program has (a test run started in the
    background may ignore SIGINT, and hgtrain then leaves it ignored)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.usefixtures("ctrl_c_as_in_a_terminal")
@pytest.mark.parametrize(  # after 3 of epoch 0's 4 batches; 2 of epoch 1's (the quickstart's LR)
    ("stop", "step", "schedule", "status"),
    [("Sigterm", 3, "step", 143), ("Sigterm", 6, "one_cycle", 143), ("Sigint", 3, "step", 130)],
)
def test_a_sigterm_or_ctrl_c_mid_epoch_saves_a_checkpoint_that_resumes_exactly(
    tmp_path, caplog, stop, step, schedule, status
):
    schedule_args = ("--model.lr_schedule", schedule)
    fit_in(tmp_path / "straight", *schedule_args)
    with pytest.raises(SystemExit) as stopped:
        fit_in(
            tmp_path / "stopped",
            *schedule_args,
            f"--trainer.callbacks+={__name__}.{stop}AtStep",
            f"--trainer.callbacks.step={step}",
        )
    assert stopped.value.code == status
    cause = {"Sigterm": "SIGTERM", "Sigint": "Ctrl-C"}[stop]
    assert f"stopped by {cause} at step {step}; saved " in caplog.text
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
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal
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
    environment = {  # PYTHONPATH: the callbacks of this file can be given by class path
        **os.environ,
        "KILL_ON_SECOND_WRITE": "1" if kill else "",
        "PYTHONPATH": str(REPOSITORY),
    }
    return subprocess.run(command, cwd=folder, env=environment, timeout=300).returncode


def test_a_kill_during_a_checkpoint_write_leaves_the_previous_checkpoint_to_resume_from(tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert fit_process(straight) == 0
    every_2 = ("--resumable.every_n_train_steps", "2")
    assert fit_process(killed, *every_2, kill=True) == -signal.SIGKILL
    (last,) = (killed / "runs").rglob("last.ckpt")
    assert torch.load(last, weights_only=True)["global_step"] == 2  # the first write, whole
    (leftover,) = last.parent.glob(".last.ckpt.*.tmp")  # the second write's temporary file
    assert fit_process(killed, "--ckpt_path", str(last)) == 0
    assert not leftover.exists()  # removed by the resumed run: its writer is gone
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


AS_IN_A_TERMINAL = (
    "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "from hgtrain.cli.main import main; main(sys.argv[1:])"
)
"""``hgtrain`` with Python's SIGINT handler, whatever the test run's is."""


def sigterm_the_job(
    tmp_path: Path, *options: str, after: float = 0.0, signum: int = signal.SIGTERM
) -> tuple[int, str]:
    """Start ``hgtrain fit`` with 2 persistent data workers in its own process group, send the
    whole group SIGTERM (or ``signum``: SIGINT is what Ctrl-C in a terminal sends) ``after``
    seconds past its first best checkpoint, and return the exit status and what it printed on
    stderr."""
    config = tiny_config(tmp_path, max_epochs=1000)
    command = [sys.executable, "-c", AS_IN_A_TERMINAL, "fit", "--config", str(config)]
    command += ["--data.num_workers", "2", "--data.persistent_workers", "true", *options]
    log = tmp_path / "stderr.log"
    with log.open("w") as stderr:
        job = subprocess.Popen(command, cwd=tmp_path, start_new_session=True, stderr=stderr)
    try:
        deadline = time.monotonic() + 120
        while not list(tmp_path.rglob("best-*.ckpt")) and time.monotonic() < deadline:
            time.sleep(0.2)  # until the first epoch has trained and validated
        time.sleep(after)
        os.killpg(job.pid, signum)
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


def test_ctrl_c_in_a_terminal_saves_a_checkpoint_and_exits_with_130(tmp_path):
    """A terminal sends Ctrl-C's SIGINT to every process of the group, data workers included: they
    ignore it, the main process stops at the end of its training step, saves last.ckpt, says how
    to resume and exits with 130 (128 + SIGINT)."""
    status, printed = sigterm_the_job(tmp_path, signum=signal.SIGINT)
    assert status == 130
    (last,) = tmp_path.rglob("last.ckpt")
    step = torch.load(last, weights_only=True)["global_step"]
    assert step >= 5  # a step after the first epoch's validation
    assert "Ctrl-C again stops at once" in printed
    saved = last.relative_to(tmp_path)
    assert f"stopped by Ctrl-C at step {step}; saved {saved}. Resume with --ckpt_path {saved}" in (
        printed
    )
    assert "Traceback" not in printed


def test_a_second_ctrl_c_stops_at_once_without_saving(tmp_path):
    ctrl_c_twice = [f"--trainer.callbacks+={__name__}.SigintAtStep", "--trainer.callbacks.step=2"]
    status = fit_process(tmp_path, *ctrl_c_twice, "--trainer.callbacks.times=2")
    assert status not in (0, 130)
    assert not list(tmp_path.rglob("*.ckpt"))


KILLED_WRITER = """
import os, signal, sys
from hgtrain.atomic import write_file_atomically

def killed(file):
    file.write(b"half a checkpoint")
    file.flush()
    os.kill(os.getpid(), signal.SIGKILL)

write_file_atomically(sys.argv[1], killed)
"""
WRITING_UNTIL_TOLD = """
import sys
from hgtrain.atomic import write_file_atomically

def write_until_told(file):
    file.write(b"checkpoint")
    print("writing", flush=True)
    sys.stdin.readline()

write_file_atomically(sys.argv[1], write_until_told)
"""


def test_fit_removes_the_temporaries_of_killed_writes_but_no_other_file(tmp_path, caplog):
    checkpoints = tmp_path / "checkpoints"  # where they go without a logger
    checkpoints.mkdir()
    subprocess.run([sys.executable, "-c", KILLED_WRITER, checkpoints / "last.ckpt"], timeout=60)
    (killed,) = checkpoints.glob(".last.ckpt.*.tmp")
    another_run = subprocess.Popen(  # writing into the same folder now
        [sys.executable, "-c", WRITING_UNTIL_TOLD, checkpoints / "best.ckpt"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert another_run.stdout.readline() == b"writing\n"
        (in_progress,) = checkpoints.glob(".best.ckpt.*.tmp")
        day_old = checkpoints / f".last.ckpt.{'0' * 32}.tmp"  # as an earlier hgtrain named them
        hour_old = checkpoints / f".last.ckpt.{'1' * 32}.tmp"
        remote = checkpoints / ".last.ckpt.other-node-1-99999999-abcd1234.tmp"  # PID: not here
        users = [checkpoints / name for name in ("my.ckpt", ".my.ckpt.tmp", ".my.ckpt.1.tmp")]
        ages = [(day_old, STALE_AFTER_S), (hour_old, 3600), (remote, 3600)]
        for path, age in ages + [(p, 1e6) for p in users]:
            path.write_bytes(b"x")
            os.utime(path, (time.time() - age, time.time() - age))
        fit_in(tmp_path, "--trainer.logger", "false", "--trainer.max_steps", "1")
        assert not killed.exists() and not day_old.exists()
        kept = [in_progress, hour_old, remote, *users]
        assert all(path.exists() for path in kept)
        assert (
            "hgtrain: removed 2 temporary file(s) that interrupted checkpoint writes left in "
            f"{checkpoints}: {day_old.name}, {killed.name}"
        ) in caplog.text
    finally:
        another_run.communicate(b"go\n", timeout=60)
    assert another_run.returncode == 0
    assert (checkpoints / "best.ckpt").read_bytes() == b"checkpoint"


def learning_rates(root: Path) -> dict[int, float]:
    """Step -> learning rate, as the CSV logger of the newest run under ``root`` logged it."""
    newest = max((root / "runs").rglob("metrics.csv"), key=lambda p: p.parent.name)
    with newest.open() as file:
        return {int(r["step"]): float(r["lr-Adam"]) for r in csv.DictReader(file) if r["lr-Adam"]}


@pytest.mark.parametrize(
    ("first_steps", "stopped_at"),  # its drop, at half of its steps: at 4, ahead; at 2, taken
    [(8, 2), (4, 3)],
    ids=["stopped-before-the-drop", "stopped-after-the-drop"],
)
def test_a_resumed_step_schedule_drops_at_lr_drop_at_of_the_resumed_runs_steps(
    tmp_path, first_steps, stopped_at
):
    csv_drop = ("--trainer.logger", "CSVLogger", "--model.lr_drop_at", "0.5")
    with pytest.raises(SystemExit):
        fit_in(
            tmp_path,
            *csv_drop,
            f"--trainer.max_steps={first_steps}",
            f"--trainer.callbacks+={__name__}.SigtermAtStep",
            f"--trainer.callbacks.step={stopped_at}",
        )
    (last,) = tmp_path.rglob("last.ckpt")
    longer = ("--trainer.max_steps", "16", "--trainer.max_epochs", "4")  # drop at step 8
    fit_in(tmp_path, *csv_drop, *longer, "--ckpt_path", str(last))
    expected = {step: 2.5e-4 if step < 8 else 2.5e-5 for step in range(stopped_at, 16)}
    assert learning_rates(tmp_path) == pytest.approx(expected)


def test_a_one_cycle_run_resumed_with_another_length_stops_with_one_line(tmp_path):
    fit_in(tmp_path, "--model.lr_schedule", "one_cycle", "--trainer.max_steps", "4")
    (last,) = tmp_path.rglob("last.ckpt")
    with pytest.raises(SystemExit) as stopped:
        fit_in(tmp_path, "--ckpt_path", str(last), "--trainer.max_steps", "8")
    assert str(stopped.value.code) == (
        "hgtrain: model.lr_schedule='one_cycle': the schedule resumed from the checkpoint spans "
        "4 steps, this run 8: resume with the trainer.max_epochs / max_steps the run started "
        "with, or train on from its weights in a new run (--config finetune.yaml "
        "--model.backbone_weights CKPT)"
    )
    saved = {torch.load(p, weights_only=True)["global_step"] for p in tmp_path.rglob("*.ckpt")}
    assert saved == {4}  # nothing after the refusal
