"""The README and the docs pages as an executable contract: every command and Python snippet in
them runs, in order.

Each shell command of the code blocks in README.md and the pages of ``docs/`` (in ``PAGES`` order)
has a runner in ``RUNNERS`` that says how it is checked; a command without one (or a runner whose
command left the documents) fails ``test_every_documented_command_has_a_runner``. The steps run in
that order in one fresh directory, as a new user would go through them: the quickstart writes
``runs/hgtrain/version_0``, which the later commands resume, validate, test and export. A command
or snippet shown on several pages runs once, where it first appears. Training commands run as
written with tiny sizes appended; commands that need GPUs or several nodes are checked as far as a
CPU can.
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
from PIL import Image

from hgtrain.cli.lightning_cli import build_cli
from hgtrain.cli.main import main
from hgtrain.data.loading.coco_format import read_keypoint_set
from hgtrain.data.loading.prepare import prepare_synthetic_set
from hgtrain.models import build_backbone
from hgtrain.tools.time_to_accuracy import read_scalars
from hgtrain.weights.convert import to_cornernet_lite

ROOT = Path(__file__).resolve().parents[1]
PAGES = (
    "index.md",
    "getting-started.md",
    "training.md",
    "data.md",
    "backbones.md",
    "transfer.md",
    "deployment.md",
    "performance.md",
    "architecture.md",
    "api.md",
)
"""The docs pages in the order of the site's menu, which is the order their steps run in (a
page's commands may use what earlier ones made)."""
DOCUMENTS = (ROOT / "README.md", *(ROOT / "docs" / page for page in PAGES))
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


def document_steps(document: Path) -> list[tuple[str, str]]:
    """``("bash", command)`` and ``("python", snippet)`` of a Markdown file's code blocks, in order.

    Shell lines are joined at a trailing backslash and stripped of ``# comments``.
    """
    steps = []
    for language, body in re.findall(r"^```(\w+)\n(.*?)^```", document.read_text(), re.M | re.S):
        if language == "python":
            steps.append(("python", body))
        elif language == "bash":
            for line in body.replace("\\\n", " ").splitlines():
                command = " ".join(line.split(" #", 1)[0].split())
                if command:
                    steps.append(("bash", command))
    return steps


def documented_steps() -> list[tuple[str, str, str]]:
    """``(document, kind, text)`` of every document in order, each step once (where it first
    appears)."""
    steps, seen = [], set()
    for document in DOCUMENTS:
        for kind, text in document_steps(document):
            if (kind, text) not in seen:
                seen.add((kind, text))
                steps.append((document.relative_to(ROOT).as_posix(), kind, text))
    return steps


def hgtrain(*args: str) -> None:
    """``hgtrain ARGS`` in this process; a clean ``SystemExit`` (``--print_config``) is fine."""
    try:
        main(list(args))
    except SystemExit as exit_:
        assert exit_.code in (0, None), f"hgtrain {' '.join(args)} exited with {exit_.code}"


def shell(command: str, timeout: float = 600, cwd: Path | None = None) -> str:
    """Run ``command`` with bash, as written, the test's environment's executables first on PATH;
    what it printed (stdout, then stderr)."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        ["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"{command}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


def args_of(command: str) -> list[str]:
    """The arguments after ``hgtrain`` in a command line."""
    words = shlex.split(command)
    return words[words.index("hgtrain") + 1 :]


# Runners: each takes a documented command as written, runs it, and checks what it should leave.


def newest_run() -> Path:
    """The most recent ``runs/hgtrain/version_N`` folder."""
    return max(Path("runs/hgtrain").iterdir(), key=lambda p: int(p.name.split("_")[1]))


def sets() -> set[str]:
    """Names of the generated sets under ``data/synthetic``."""
    return {p.name for p in Path("data/synthetic").iterdir()}


def train(command: str, *extra: str) -> Path | None:
    """Run a training command in this process with the tiny sizes (and ``extra``) appended;
    returns its run folder (``None`` when it made none)."""
    runs = set(Path("runs/hgtrain").iterdir()) if Path("runs/hgtrain").is_dir() else set()
    hgtrain(*args_of(command), *TINY, *extra)
    made = set(Path("runs/hgtrain").iterdir()) - runs if Path("runs/hgtrain").is_dir() else set()
    return made.pop() if made else None


def trains(command: str) -> None:
    """A training command: it leaves a run folder with its config and last checkpoint."""
    run = train(command)
    assert (run / "config.yaml").is_file() and (run / "checkpoints" / "last.ckpt").is_file()


def as_written(command: str) -> None:
    """Run the command in this process exactly as written."""
    hgtrain(*args_of(command))


def quickstart(command: str) -> None:
    """The set-up part is ``.ci/run``'s (which runs exactly it); the training part runs here as
    written, in a subprocess through ``.venv/bin/hgtrain``, with the tiny sizes appended."""
    setup, run = command.rsplit(" && ", 1)
    assert f"{setup} && .venv/bin/python -m pytest" in (ROOT / ".ci" / "run").read_text()
    printed = shell(f"{run} {shlex.join(TINY)}")
    assert Path("runs/hgtrain/version_0/checkpoints/last.ckpt").is_file()
    assert any(Path("runs/hgtrain/version_0/checkpoints").glob("best-*.ckpt"))
    quiet_console(printed)


QUICKSTART_TEST_SETS = ("noisy", "clean", "unseen", "low_contrast")
"""The test sets of quickstart.yaml, in the order it tests them."""
NOISE = ("LeafSpec", "litlogger", "is not supported by the model summary", "Test metric")
"""What the console of a run no longer shows: warnings a user cannot act on, Lightning's own
results table (a column per dataloader, all repeating the same numbers)."""


def quiet_console(printed: str) -> None:
    """No known noise; the model summary counts real FLOPs; the test results are one table that
    fits a screen, a column per test set."""
    assert not [line for line in printed.splitlines() if any(n in line for n in NOISE)]
    (flops,) = re.findall(r"^(\S+ \S?)\s*Total Flops$", printed, re.M)
    assert flops.strip() not in ("0", "")
    table = printed.split("test results (the full breakdown is in the logger):\n", 1)[1]
    header, *rows = table.split("\n\n", 1)[0].strip().splitlines()
    assert header.split() == ["metric", *QUICKSTART_TEST_SETS]
    assert 8 <= len(rows) <= 20


def the_test_command(command: str) -> None:
    """The test command is what ``.ci/run`` runs, verbatim (running it here would recurse)."""
    assert command in (ROOT / ".ci" / "run").read_text().splitlines()


def builds_the_docs(command: str) -> None:
    """The site builds from the repository with warnings as errors (the API reference from the
    docstrings included), with this environment's mkdocs."""
    shell(command.replace(".venv/bin/", f"{BIN}/", 1), cwd=ROOT)
    assert (ROOT / "site" / "api" / "index.html").is_file()


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
    run = train(command)
    assert yaml.safe_load((run / "config.yaml").read_text())["data"]["val_dir"] == "my_data/val"


def data_preview(command: str) -> None:
    as_written(command)
    assert Path("docs/images/data_preview.png").stat().st_size > 10_000


def own_data_preview(command: str) -> None:
    """The preview of the own training folder that ``own_data`` wrote: two rows of 3 x 2 tiles."""
    as_written(command)
    with Image.open("my_data_preview.png") as picture:
        assert picture.width > 6 * 256  # 3 samples x 2 tiles, 128 px enlarged to 256 for display


def previews_families(command: str) -> None:
    """One row of three samples per background family."""
    as_written(command)
    with Image.open("docs/images/backgrounds.png") as picture:
        assert picture.height > 5 * 256 and picture.width > 6 * 256  # enlarged for display


def data_benchmark(command: str) -> None:
    """The data benchmark at one small size, one short run."""
    hgtrain(*args_of(command), "--sizes", "64", "--seconds", "0.2", "--runs", "1")


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


def fine_tunes_original_weights(command: str) -> None:
    """A GPU command that also instantiates here with ``--config cpu.yaml``: the original (BGR)
    weights are loaded for RGB input, with the original normalisation in RGB order."""
    on_gpus(command)
    cli = build_cli([*args_of(command)[1:], "--config", "cpu.yaml"], run=False)
    assert cli.model.hparams.pixel_mean == pytest.approx([0.47026115, 0.44719302, 0.40789654])
    stem = cli.model.backbone.state_dict()["pre.0.conv.weight"]
    original = torch.load("CornerNet_Squeeze_500000.pkl", weights_only=True)
    assert torch.equal(stem, original["module.hg.pre.0.conv.weight"].flip(1))


def checks_a_set_up(command: str) -> None:
    """fast_dev_run: one batch each, no run folder."""
    assert train(command) is None


def resumes(command: str) -> None:
    """Resuming the quickstart at its own length (its one-cycle schedule cannot be stretched):
    the run had ended, so the resumed one stops at once and leaves the checkpoint as it was
    (interrupted runs resume exactly: tests/test_faults.py)."""
    checkpoint = Path(args_of(command)[args_of(command).index("--ckpt_path") + 1])
    before = checkpoint.read_bytes()
    run = train(command)
    assert (run / "config.yaml").is_file()
    assert checkpoint.read_bytes() == before


def validates(command: str) -> None:
    """validate reuses the checkpoint's validation set and writes no test set."""
    before = sets()
    as_written(command)
    assert sets() == before


def evaluates_other_scenes(command: str) -> None:
    """test with another seed writes only test sets, at the checkpoint's 64 px."""
    before = sets()
    as_written(command)
    written = sets() - before
    assert written and all(
        name.startswith(tuple(f"test-{name}-64px-8" for name in QUICKSTART_TEST_SETS))
        for name in written
    )


def prints_config(command: str) -> None:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        as_written(command)
    assert len(yaml.safe_load(printed.getvalue())["trainer"]["callbacks"]) == 6


def logs_csv(command: str) -> None:
    run = train(command)
    assert (run / "metrics.csv").is_file() and any((run / "images").rglob("*.png"))


def logs_nothing(command: str) -> None:
    """No logger: no run folder; checkpoints in ./checkpoints."""
    assert train(command) is None
    assert Path("checkpoints/last.ckpt").is_file()


def cpu_ddp(command: str) -> None:
    """DDP on two CPU processes, through the installed command (it relaunches itself)."""
    shell(f"{command} {shlex.join(TINY)}")
    config = yaml.safe_load((newest_run() / "config.yaml").read_text())
    assert str(config["trainer"]["devices"]) == "2"


def exports(command: str) -> None:
    as_written(command)
    output = Path(shlex.split(command)[shlex.split(command).index("--output") + 1])
    assert torch.load(output, weights_only=True, map_location="cpu")


def exports_a_graph(command: str) -> None:
    """A torch.export program loads and runs at another batch size; an ONNX file runs in
    onnxruntime."""
    as_written(command)
    output = Path(shlex.split(command)[shlex.split(command).index("--output") + 1])
    if output.suffix == ".pt2":
        program = torch.export.load(output).module()
        size = 64  # TINY's image size, which the quickstart checkpoint was trained at
        heatmaps, _ = program(torch.rand(3, 3, size, size))
        assert heatmaps.shape[0] == 3
    else:
        import onnxruntime

        session = onnxruntime.InferenceSession(str(output), providers=["CPUExecutionProvider"])
        assert session.get_inputs()[0].name == "images"


def unfreezes(command: str) -> None:
    """Unfreezing at epoch 2 needs three epochs."""
    run = train(command, "--trainer.max_epochs", "3")
    assert (run / "checkpoints" / "last.ckpt").is_file()


def predicts(command: str) -> None:
    """predict on a folder of two images of other sizes and a corrupt one: one JSON file with
    keypoints inside each readable image, and overlays."""
    folder = Path("my_photos")
    folder.mkdir(exist_ok=True)
    for name, size in {"wide.png": (90, 40), "tall.jpg": (30, 100)}.items():
        random_image(folder / name, size)
    (folder / "corrupt.png").write_bytes(b"not an image")
    before = set(Path("runs").rglob("predictions.json"))
    as_written(command)
    (written,) = set(Path("runs").rglob("predictions.json")) - before
    results = json.loads(written.read_text())
    assert {r["file_name"] for r in results} == {"wide.png", "tall.jpg"}
    assert sorted(p.name for p in written.with_name("predictions_overlays").iterdir()) == [
        "tall.png",
        "wide.png",
    ]


def random_image(path: Path, size: tuple[int, int]) -> None:
    """A random RGB image of ``size`` (width, height), saved by PIL in the suffix's format."""
    width, height = size
    pixels = torch.randint(0, 256, (height, width, 3), dtype=torch.uint8).numpy()
    Image.fromarray(pixels).save(path)


def benchmarks(command: str) -> None:
    """The benchmark at 128 px and batch 2, one timed step (the data pipeline has its own test)."""
    extra = ["--input_size", "128", "--batch_size", "2", "--steps", "1", "--warmup", "0"]
    extra += ["--data_workers", "0"]
    hgtrain(*args_of(command), *extra)


def times_to_accuracy(command: str) -> None:
    """Two tiny runs instead of three, each in its own empty folder: a report of both with their
    validation curves and test results, and the plot."""
    shell(f"{command} --runs 2 -- {' '.join(TINY)}")
    report = json.loads(Path("time_to_accuracy.json").read_text())
    assert [run["seed"] for run in report["runs"]] == [0, 1]
    for run in report["runs"]:
        assert run["wall_s"] > 0 and run["curve"] and "test_noisy/map@2" in run
    assert report["summary"]["wall_s"]["missing"] == 0
    assert Path("time_to_accuracy.svg").read_text().count("<polyline") == 2


TINY_TRANSFER = ["--train_size", "16", "--test_size", "8", "--image_size", "64"]
"""Appended to the transfer commands: 16 training and 8 test images of 64 px per task."""


def writes_transfer_sets(command: str) -> None:
    """Both tasks' train and test sets, as keypoint folders with their own classes."""
    hgtrain(*args_of(command), *TINY_TRANSFER)
    for task, classes in (("quads", 4), ("cubes", 1)):
        for split, size in (("train", 16), ("test", 8)):
            keypoint_set = read_keypoint_set(Path("data/transfer") / task / split)
            assert len(keypoint_set.records) == size and len(keypoint_set.class_names) == classes


def previews_a_transfer_set(command: str) -> None:
    """The preview of a task's training folder that ``writes_transfer_sets`` wrote."""
    as_written(command)
    output = Path(shlex.split(command)[shlex.split(command).index("--output") + 1])
    with Image.open(output) as picture:
        assert picture.width > 8 * 64  # 4 samples x 2 tiles


def transfers(command: str) -> None:
    """Every start on the cubes task (8 images, 2 steps, one seed; tests/test_transfer.py runs
    quads), on the set written above: the results, the table and the plot."""
    tiny = ["--tasks", "[cubes]", "--images", "[8]", "--batch_size", "4", "--seeds", "1"]
    hgtrain(*args_of(command), *TINY_TRANSFER, *tiny, "--steps", "2", "--eval_every", "1")
    results = json.loads(Path("transfer/results.json").read_text())
    assert len(results["runs"]) == 3 and Path("transfer/transfer.png").is_file()
    assert (Path("transfer/transfer.md").read_text().count("| cubes | 8 |")) == 3


def fine_tunes_on_a_transfer_set(command: str) -> None:
    """One fine-tuning run on the quads set: logged, evaluated, no checkpoint kept."""
    run = train(command, "--data.train_subset", "8", "--trainer.val_check_interval", "1")
    assert (run / "config.yaml").is_file() and not list(run.rglob("*.ckpt"))
    assert read_scalars(run)["val/map@2"]


def reference_compare(command: str) -> None:
    """``python -m tests.reference.compare`` from the repository root, tiny."""
    tiny = f"{command} --input_size 128 --steps 1 --warmup 0"
    shell(tiny.replace("python", sys.executable, 1), cwd=ROOT)


def gpu_check_dry_run(command: str) -> None:
    """The GPU script's CPU dry run within a 50-second budget (its set-up takes 10-15 s, and a
    run starts only with 20 s left), results outside the repository."""
    out = Path.cwd() / "gpu_check_dry_run"
    shell(f"PYTHON={sys.executable} {command} --budget 50 --out {out}", cwd=ROOT)
    assert (out / "table.md").is_file()


def measures_repeatability(command: str) -> None:
    """Two photographs, one pair of each change, at 64 px: the table, the JSON and the plot."""
    tiny = ["--photos", "camera", "coins", "--pairs", "1", "--size", "64", "--points", "50"]
    hgtrain(*args_of(command), *tiny)
    results = json.loads(Path("repeatability/repeatability.json").read_text())
    assert len(results["pairs"]) == 4 and Path("repeatability/repeatability.png").is_file()


def checks_an_original_config_learns(command: str) -> None:
    """The reduced CPU run of squeeze.yaml: two steps at 128 px (its smallest input), each
    validated, before its 11 minutes are up. In a subprocess: squeeze.yaml's DDP strategy, on
    one device, would leave a process group and its port behind in this one."""
    tiny = ["--data.image_size", "128", "--data.val_size", "2", "--data.batch_size", "2"]
    steps = ["--trainer.max_steps", "2", "--trainer.val_check_interval", "1"]
    shell(f"{command} {shlex.join([*TINY, *tiny, *steps])}")
    assert len(read_scalars(newest_run())["val/map@2"]) == 2


RUNNERS: dict[str, Callable[[str], None]] = {
    'python3 -m venv .venv && .venv/bin/pip install -e ".[dev]" && .venv/bin/hgtrain fit --config quickstart.yaml': quickstart,
    ".venv/bin/tensorboard --logdir runs": tensorboard,
    ".venv/bin/mkdocs build --strict": builds_the_docs,
    'python3 -m venv .venv && .venv/bin/pip install -e ".[dev]" && .venv/bin/python -m pytest': the_test_command,
    "hgtrain fit --config quickstart.yaml --data.train_dir my_data/train --data.val_dir my_data/val --data.test_dir my_data/test": own_data,
    "hgtrain data-preview --data_dir my_data/train --image_size 128 --stride 4 --sigma 1 --augmented true --output my_data_preview.png": own_data_preview,
    "hgtrain data-preview --seed 2 --output docs/images/data_preview.png": data_preview,
    "hgtrain data-preview --background smooth noise stripes marble photo --clean true --count 3 --output docs/images/backgrounds.png": previews_families,
    "hgtrain data-benchmark": data_benchmark,
    "hgtrain fit --config squeeze.yaml": on_gpus,
    "hgtrain fit --config squeeze.yaml --trainer.devices 8 --data.batch_size 7": on_gpus,
    "hgtrain fit --config quickstart.yaml --config debug.yaml": checks_a_set_up,
    "hgtrain fit --config quickstart.yaml --ckpt_path runs/hgtrain/version_0/checkpoints/last.ckpt": resumes,
    "hgtrain validate --ckpt_path runs/hgtrain/version_0/checkpoints/last.ckpt": validates,
    "hgtrain test --ckpt_path runs/hgtrain/version_0/checkpoints/last.ckpt --data.seed 7": evaluates_other_scenes,
    "hgtrain fit --config squeeze.yaml --config cpu.yaml --data.image_size 256 --data.batch_size 4 --data.num_workers 0 --data.val_size 32 --trainer.max_time 00:00:11:00 --trainer.val_check_interval 8 --trainer.check_val_every_n_epoch null": checks_an_original_config_learns,
    "hgtrain fit --config quickstart.yaml --print_config": prints_config,
    "hgtrain fit --config quickstart.yaml --trainer.logger CSVLogger": logs_csv,
    "hgtrain fit --config quickstart.yaml --trainer.logger false": logs_nothing,
    "hgtrain fit --config squeeze.yaml --trainer.devices 4": on_gpus,
    "hgtrain fit --config quickstart.yaml --config ddp.yaml": on_gpus,
    "hgtrain fit --config quickstart.yaml --trainer.accelerator cpu --trainer.devices 2 --trainer.strategy ddp --trainer.sync_batchnorm false": cpu_ddp,
    "torchrun --nnodes 2 --nproc_per_node 8 --node_rank R --master_addr HOST --master_port 29500 $(which hgtrain) fit --config squeeze.yaml --trainer.num_nodes 2 --trainer.devices 8": on_gpus,
    "srun hgtrain fit --config squeeze.yaml --trainer.num_nodes 2 --trainer.devices 8": on_gpus,
    "hgtrain predict --ckpt_path runs/hgtrain/version_0/checkpoints/last.ckpt --data.predict_dir my_photos --prediction.overlays true": predicts,
    "hgtrain export --ckpt_path runs/hgtrain/version_0/checkpoints/last.ckpt --output backbone.pt": exports,
    "hgtrain export --ckpt_path runs/hgtrain/version_0/checkpoints/last.ckpt --output backbone_cornernet_lite.pkl --format cornernet-lite": exports,
    "hgtrain export --ckpt_path runs/hgtrain/version_0/checkpoints/last.ckpt --output net.onnx --format onnx": exports_a_graph,
    "hgtrain export --ckpt_path runs/hgtrain/version_0/checkpoints/last.ckpt --output net.pt2 --format torch-export": exports_a_graph,
    "hgtrain export --ckpt_path runs/hgtrain/version_0/checkpoints/last.ckpt --output backbone.onnx --format onnx --part backbone": exports_a_graph,
    "hgtrain fit --config quickstart.yaml --config finetune.yaml --model.backbone_weights backbone.pt": trains,
    "hgtrain fit --config quickstart.yaml --config finetune.yaml --model.backbone_weights backbone.pt --model.freeze_backbone false --trainer.callbacks+=BackboneFinetuning --trainer.callbacks.unfreeze_backbone_at_epoch 2": unfreezes,
    "hgtrain fit --config squeeze.yaml --config finetune.yaml --model.backbone_weights CornerNet_Squeeze_500000.pkl": fine_tunes_original_weights,
    "hgtrain benchmark --backbone squeeze --input_size 255 --batch_size 2 --steps 5 --warmup 1 --data_workers 2": benchmarks,
    "hgtrain benchmark --backbone squeeze --input_size 255 --batch_size 2 --steps 6 --warmup 1 --versus bf16": benchmarks,
    "hgtrain benchmark --backbone cornernet --input_size 511 --batch_size 8 --steps 2 --warmup 1 --versus checkpoint_blocks": benchmarks,
    "hgtrain benchmark --mode inference --backbone squeeze --input_size 511 --batch_size 4 --steps 5 --warmup 1": benchmarks,
    "hgtrain benchmark --mode inference --backbone squeeze --input_size 511 --batch_size 4 --steps 5 --warmup 1 --versus bf16": benchmarks,
    "hgtrain time-to-accuracy --runs 3 --json time_to_accuracy.json --plot time_to_accuracy.svg": times_to_accuracy,
    "hgtrain repeatability --ckpt_path runs/hgtrain/version_0/checkpoints/last.ckpt --output repeatability": measures_repeatability,
    "hgtrain transfer-data --root data/transfer": writes_transfer_sets,
    "hgtrain data-preview --data_dir data/transfer/quads/train --count 4 --columns 4 --output docs/images/transfer_quads.png": previews_a_transfer_set,
    "hgtrain data-preview --data_dir data/transfer/cubes/train --count 4 --columns 4 --output docs/images/transfer_cubes.png": previews_a_transfer_set,
    "hgtrain transfer --backbone backbone.pt": transfers,
    "hgtrain fit --config quickstart.yaml --config transfer.yaml --model.backbone_weights backbone.pt --data.train_subset 64": fine_tunes_on_a_transfer_set,
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
    folder = tmp_path_factory.mktemp("docs")
    (folder / ".venv").symlink_to(sys.prefix)
    original = to_cornernet_lite(build_backbone("squeeze").state_dict())
    torch.save(original, folder / "CornerNet_Squeeze_500000.pkl")
    previous = Path.cwd()
    os.chdir(folder)
    yield folder
    os.chdir(previous)


def step_params() -> list:
    params = []
    for index, (document, kind, text) in enumerate(documented_steps()):
        marks = [pytest.mark.slow] if text in SLOW else []
        label = f"{index:02d} {document} {kind}: {' '.join(text.split())[:80]}"
        params.append(pytest.param(document, kind, text, marks=marks, id=label))
    return params


def test_every_page_is_run_here_and_in_the_site():
    pages = {path.name for path in (ROOT / "docs").glob("*.md")}
    assert pages == set(PAGES), "a docs page that this test does not run, or a missing one"
    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]
    assert [page for entry in nav for page in entry.values()] == list(PAGES)


def test_every_documented_command_has_a_runner():
    for document in DOCUMENTS:
        commands = [text for kind, text in document_steps(document) if kind == "bash"]
        assert len(commands) == len(set(commands)), f"a command appears twice in {document.name}"
    commands = {text for _, kind, text in documented_steps() if kind == "bash"}
    assert commands - set(RUNNERS) == set(), "documented commands without a runner"
    assert set(RUNNERS) - commands == set(), "runners of commands no longer documented"
    assert set(SLOW) <= set(RUNNERS)


@pytest.mark.parametrize(("document", "kind", "text"), step_params())
def test_documented_step_runs(workspace: Path, document: str, kind: str, text: str) -> None:
    if kind == "python":
        exec(compile(text, document, "exec"), {"__name__": "docs"})
    else:
        RUNNERS[text](text)
