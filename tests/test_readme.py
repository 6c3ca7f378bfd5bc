"""The README as an executable contract: every command and Python snippet in it runs, in order.

Each shell command of README.md's code blocks has a runner in ``RUNNERS`` that says how it is
checked; a README command without one (or a runner whose command left the README) fails
``test_every_readme_command_has_a_runner``. The steps run in README order in one fresh directory, as
a new user would go through them: the quickstart writes ``runs/hgtrain/version_0``, which the later
commands resume, validate, test and export. Training commands run as written with tiny sizes
appended; commands that need GPUs or several nodes are checked as far as a CPU can.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
import yaml

from hgtrain.cli import main
from hgtrain.data.prepare import prepare_synthetic_set
from hgtrain.models import build_backbone
from hgtrain.models.convert import to_cornernet_lite

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BIN = Path(sys.executable).parent

TINY = [
    "--data.image_size", "64",
    "--data.train_length", "32",
    "--data.val_size", "8",
    "--data.test_size", "8",
    "--data.batch_size", "8",
    "--data.num_workers", "0",
    "--trainer.max_epochs", "1",
    "--trainer.enable_progress_bar", "false",
]  # fmt: skip
"""Appended to every training command: 64 px, 4 steps of 8 images, one epoch, 8-image sets."""


def readme_steps() -> list[tuple[str, str]]:
    """``("bash", command)`` and ``("python", snippet)`` of README.md's code blocks, in order.

    Shell lines are joined at a trailing backslash and stripped of ``# comments``.
    """
    steps = []
    for language, body in re.findall(r"^```(\w+)\n(.*?)^```", README.read_text(), re.M | re.S):
        if language == "python":
            steps.append(("python", body))
        elif language == "bash":
            for line in body.replace("\\\n", " ").splitlines():
                command = " ".join(line.split(" #", 1)[0].split())
                if command:
                    steps.append(("bash", command))
    return steps


def hgtrain(*args: str) -> None:
    """``hgtrain ARGS`` in this process; a clean ``SystemExit`` (``--print_config``) is fine."""
    try:
        main(list(args))
    except SystemExit as exit_:
        assert exit_.code in (0, None), f"hgtrain {' '.join(args)} exited with {exit_.code}"


def shell(command: str, timeout: float = 600, cwd: Path | None = None) -> str:
    """Run ``command`` with bash, as written, the test's environment's executables first on PATH."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        ["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"{command}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def args_of(command: str) -> list[str]:
    """The arguments after ``hgtrain`` in a command line."""
    words = shlex.split(command)
    return words[words.index("hgtrain") + 1 :]


# Runners: each takes the README command as written.


def train(*extra: str) -> Callable[[str], None]:
    """Run the command in this process with the tiny sizes (and ``extra``) appended."""

    def run(command: str) -> None:
        hgtrain(*args_of(command), *TINY, *extra)

    return run


def as_written(command: str) -> None:
    """Run the command in this process exactly as written."""
    hgtrain(*args_of(command))


def on_gpus(command: str) -> None:
    """A GPU command (or the hgtrain command that torchrun / srun start): its config resolves
    (``--print_config``, the command line's trainer values in it), and here, without a GPU,
    running it ends with the one-line hint to add ``--config cpu.yaml``."""
    words = shlex.split(command)
    words = words[words.index("fit") :]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        hgtrain(*words, "--print_config")
    config = yaml.safe_load(printed.getvalue())
    assert config["trainer"]["accelerator"] == "gpu"
    for option, value in itertools.pairwise(words):
        if option.startswith("--trainer.") and not value.startswith("--"):
            assert str(config["trainer"][option.split(".", 1)[1]]) == value
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit, match=r"add --config cpu\.yaml"):
            main(words)


def on_gpus_and_instantiated_on_cpu(command: str) -> None:
    """A GPU command that also instantiates here with ``--config cpu.yaml`` (weights loaded)."""
    on_gpus(command)
    from hgtrain.lightning_cli import build_cli

    cli = build_cli([*args_of(command)[1:], "--config", "cpu.yaml"], run=False)
    assert cli.model.backbone.config.name == "squeeze"


def quickstart(command: str) -> None:
    """The set-up part is ``.ci/run``'s (which runs exactly it); the training part runs here as
    written, in a subprocess through ``.venv/bin/hgtrain``, with the tiny sizes appended."""
    setup, run = command.rsplit(" && ", 1)
    assert f"{setup} && .venv/bin/python -m pytest" in (ROOT / ".ci" / "run").read_text()
    shell(f"{run} {shlex.join(TINY)}")
    assert Path("runs/hgtrain/version_0/checkpoints/last.ckpt").is_file()


def the_test_command(command: str) -> None:
    """The test command is what ``.ci/run`` runs, verbatim (running it here would recurse)."""
    assert command in (ROOT / ".ci" / "run").read_text().splitlines()


def tensorboard(command: str) -> None:
    """TensorBoard starts as written and lists the quickstart's run."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    server = subprocess.Popen(
        shlex.split(command), env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    try:
        url = None
        deadline = time.monotonic() + 60
        while url is None and time.monotonic() < deadline:
            line = server.stderr.readline()
            assert line or server.poll() is None, "tensorboard exited"
            found = re.search(r"(http://localhost:\d+/)", line)
            url = found.group(1) if found else None
        assert url, "tensorboard did not say where it serves"
        runs = json.loads(urllib.request.urlopen(url + "data/runs", timeout=30).read())
        assert any(run.startswith("hgtrain/version_0") for run in runs), runs
    finally:
        server.terminate()
        server.wait(timeout=30)


def own_data(command: str) -> None:
    """Own COCO-keypoints folders (written here from the synthetic generator) replace the sets."""
    for split in ("train", "val", "test"):
        folder = prepare_synthetic_set("generated", split, 16, 64)
        shutil.copytree(folder, Path("my_data") / split)
    train()(command)


def with_tiny_benchmark(command: str) -> None:
    hgtrain(*args_of(command), "--input_size", "128", "--steps", "1", "--warmup", "0")


def reference_compare(command: str) -> None:
    """``python -m tests.reference.compare`` from the repository root, tiny."""
    tiny = f"{command} --input_size 128 --steps 1 --warmup 0"
    shell(tiny.replace("python", sys.executable, 1), cwd=ROOT)


def gpu_check_dry_run(command: str) -> None:
    """The GPU script's CPU dry run, within a 30-second budget, results outside the repository."""
    out = Path.cwd() / "gpu_check_dry_run"
    shell(f"PYTHON={sys.executable} {command} --budget 30 --out {out}", cwd=ROOT)
    assert (out / "table.md").is_file()


def exported(name: str) -> Callable[[str], None]:
    def run(command: str) -> None:
        as_written(command)
        assert torch.load(name, weights_only=True, map_location="cpu")

    return run


RUNNERS: dict[str, Callable[[str], None]] = {
    'python3 -m venv .venv && .venv/bin/pip install -e ".[dev]" && .venv/bin/hgtrain fit --config quickstart.yaml': quickstart,
    ".venv/bin/tensorboard --logdir runs": tensorboard,
    'python3 -m venv .venv && .venv/bin/pip install -e ".[dev]" && .venv/bin/python -m pytest': the_test_command,
    "hgtrain fit --config quickstart.yaml --data.train_dir my_data/train --data.val_dir my_data/val --data.test_dir my_data/test": own_data,
    "hgtrain data-preview --seed 2 --output docs/images/data_preview.png": as_written,
    "hgtrain data-benchmark": lambda c: hgtrain(*args_of(c), "--sizes", "64", "--seconds", "0.2", "--runs", "1"),
    "hgtrain fit --config squeeze.yaml": on_gpus,
    "hgtrain fit --config squeeze.yaml --trainer.devices 8 --data.batch_size 7": on_gpus,
    "hgtrain fit --config quickstart.yaml --config debug.yaml": train(),
    "hgtrain fit --config quickstart.yaml --ckpt_path runs/hgtrain/version_0/checkpoints/last.ckpt": train("--trainer.max_epochs", "2"),
    "hgtrain validate --ckpt_path runs/hgtrain/version_0/checkpoints/last.ckpt": as_written,
    "hgtrain test --ckpt_path runs/hgtrain/version_0/checkpoints/last.ckpt --data.seed 7": as_written,
    "hgtrain fit --config quickstart.yaml --print_config": as_written,
    "hgtrain fit --config quickstart.yaml --trainer.logger CSVLogger": train(),
    "hgtrain fit --config quickstart.yaml --trainer.logger false": train(),
    "hgtrain fit --config squeeze.yaml --trainer.devices 4": on_gpus,
    "hgtrain fit --config quickstart.yaml --config ddp.yaml": on_gpus,
    "hgtrain fit --config quickstart.yaml --trainer.accelerator cpu --trainer.devices 2 --trainer.strategy ddp --trainer.sync_batchnorm false": lambda c: shell(f"{c} {shlex.join(TINY)}"),
    "torchrun --nnodes 2 --nproc_per_node 8 --node_rank R --master_addr HOST --master_port 29500 $(which hgtrain) fit --config squeeze.yaml --trainer.num_nodes 2 --trainer.devices 8": on_gpus,
    "srun hgtrain fit --config squeeze.yaml --trainer.num_nodes 2 --trainer.devices 8": on_gpus,
    "hgtrain export --ckpt_path runs/hgtrain/version_0/checkpoints/last.ckpt --output backbone.pt": exported("backbone.pt"),
    "hgtrain export --ckpt_path runs/hgtrain/version_0/checkpoints/last.ckpt --output backbone_cornernet_lite.pkl --format cornernet-lite": exported("backbone_cornernet_lite.pkl"),
    "hgtrain fit --config quickstart.yaml --config finetune.yaml --model.backbone_weights backbone.pt": train(),
    "hgtrain fit --config quickstart.yaml --config finetune.yaml --model.backbone_weights backbone.pt --model.freeze_backbone false --trainer.callbacks+=BackboneFinetuning --trainer.callbacks.unfreeze_backbone_at_epoch 2": train("--trainer.max_epochs", "3"),
    "hgtrain fit --config squeeze.yaml --config finetune.yaml --model.backbone_weights squeeze_rgb.pt --model.pixel_mean [0.47026115,0.44719302,0.40789654] --model.pixel_std [0.27809835,0.27408164,0.28863828]": on_gpus_and_instantiated_on_cpu,
    "hgtrain benchmark --backbone squeeze --input_size 255 --batch_size 2 --steps 5 --warmup 1 --data_workers 2": lambda c: with_tiny_benchmark(f"{c} --data_workers 0"),
    "hgtrain benchmark --backbone squeeze --input_size 255 --batch_size 2 --steps 6 --warmup 1 --versus bf16": with_tiny_benchmark,
    "python -m tests.reference.compare --backbone squeeze --input_size 255 --batch_size 2 --steps 6 --warmup 1": reference_compare,
    "scripts/gpu_check.sh --device cpu --tiny --skip-compile --no-install --out gpu_check_dry_run": gpu_check_dry_run,
}  # fmt: skip
SLOW = {  # more than ~20 s on 2 cores
    "scripts/gpu_check.sh --device cpu --tiny --skip-compile --no-install --out gpu_check_dry_run",
}  # fmt: skip


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh directory, as a new user's, with ``.venv`` being this environment and a stand-in
    for an original CornerNet-Lite file (the original's keys and shapes, random weights)."""
    folder = tmp_path_factory.mktemp("readme")
    (folder / ".venv").symlink_to(sys.prefix)
    original = to_cornernet_lite(build_backbone("squeeze").state_dict())
    torch.save(original, folder / "CornerNet_Squeeze_500000.pkl")
    previous = Path.cwd()
    os.chdir(folder)
    yield folder
    os.chdir(previous)


def step_params() -> list:
    params = []
    for index, (kind, text) in enumerate(readme_steps()):
        marks = [pytest.mark.slow] if text in SLOW else []
        label = f"{index:02d} {kind}: {' '.join(text.split())[:90]}"
        params.append(pytest.param(kind, text, marks=marks, id=label))
    return params


def test_every_readme_command_has_a_runner():
    commands = [text for kind, text in readme_steps() if kind == "bash"]
    assert len(commands) == len(set(commands)), "a README command appears twice"
    assert set(commands) - set(RUNNERS) == set(), "README commands without a runner"
    assert set(RUNNERS) - set(commands) == set(), "runners of commands no longer in the README"
    assert set(SLOW) <= set(RUNNERS)


@pytest.mark.parametrize(("kind", "text"), step_params())
def test_readme_step_runs(workspace: Path, kind: str, text: str) -> None:
    if kind == "python":
        exec(compile(text, "README.md", "exec"), {"__name__": "readme"})
    else:
        RUNNERS[text](text)
