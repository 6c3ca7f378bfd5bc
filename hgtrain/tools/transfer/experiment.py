"""``hgtrain transfer``: does a backbone pretrained here help on tasks it never saw?

For each downstream task (:mod:`hgtrain.data.generator.downstream`, written by
:mod:`hgtrain.tools.transfer.sets`), each number of labelled training images and each seed, the same
fine-tuning recipe runs from three starts:

- ``pretrained``: the backbone loaded from ``--backbone`` (a file of ``hgtrain export`` or a
  training checkpoint), everything trained;
- ``scratch``: the same architecture, freshly initialised;
- ``frozen``: the pretrained backbone kept fixed (weights and BatchNorm statistics), the heads
  trained.

Every run is ``hgtrain fit --config FIT_CONFIG --config transfer.yaml`` with the run's data, start
and seed, in this process, for the same number of steps, evaluating AP@2 on the task's test set
every ``--eval_every`` steps (the curve; no model is selected on it). Each run logs to TensorBoard
under ``OUTPUT/runs/TASK/IMAGES/START/seedN`` and is added to ``OUTPUT/results.json`` when it
ends, so an interrupted benchmark continues where it stopped when the same command runs again
(a second command writing to the same folder at the same time is refused: ``OUTPUT/.lock``).
At the end (:mod:`hgtrain.tools.transfer.summary`) come ``OUTPUT/transfer.md`` (the table) and
``OUTPUT/transfer.png`` (AP@2 against steps).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
from filelock import FileLock, Timeout
from lightning.pytorch.callbacks import Callback

from hgtrain.atomic import write_file_atomically
from hgtrain.cli.arguments import ToolParser
from hgtrain.cli.lightning_cli import SIGTERM_EXIT_STATUS, build_cli
from hgtrain.data.generator.downstream import DOWNSTREAM_TASKS
from hgtrain.tools.transfer.sets import TaskSets, prepare_for_command
from hgtrain.tools.transfer.summary import write_report

__all__ = [
    "STARTS",
    "EvaluationCurve",
    "Run",
    "build_parser",
    "fit_arguments",
    "main",
    "run_benchmark",
    "run_one",
]

STARTS = ("pretrained", "scratch", "frozen")
METRIC = "val/map@2"
RESULTS = "results.json"
LOCK = ".lock"
"""Held by the command that writes an output folder, so that a second one there stops at once."""


class EvaluationCurve(Callback):
    """Records ``(optimizer steps done, metric)`` after every validation of a fit."""

    def __init__(self, metric: str = METRIC) -> None:
        self.metric = metric
        self.points: list[tuple[int, float]] = []

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking and self.metric in trainer.callback_metrics:
            value = float(trainer.callback_metrics[self.metric])
            self.points.append((trainer.global_step, round(value, 5)))


@dataclass(frozen=True)
class Run:
    """One fine-tuning run of the benchmark."""

    task: str
    images: int
    start: str
    seed: int

    @property
    def key(self) -> str:
        """Its name in the results and its TensorBoard folder: ``quads/256/pretrained/seed0``."""
        return f"{self.task}/{self.images}/{self.start}/seed{self.seed}"


def fit_arguments(run: Run, sets: TaskSets, options: Any) -> list[str]:
    """The ``hgtrain fit`` arguments of ``run``."""
    weights = "null" if run.start == "scratch" else str(options.backbone)
    start = ["--model.backbone_weights", weights]
    start += ["--model.freeze_backbone", str(run.start == "frozen").lower()]
    logs = Path(options.output) / "runs"
    flip_pairs = json.dumps(DOWNSTREAM_TASKS[run.task].flip_pairs)
    return [
        "fit",
        *("--config", options.fit_config, "--config", "transfer.yaml"),
        *("--data.train_dir", str(sets.train), "--data.train_subset", str(run.images)),
        *("--data.val_dir", str(sets.test), "--data.test_dir", str(sets.test)),
        *("--data.image_size", str(options.image_size), "--data.flip_pairs", flip_pairs),
        *("--data.batch_size", str(options.batch_size), "--data.seed", str(run.seed)),
        *("--seed_everything", str(run.seed), *start),
        *("--trainer.max_steps", str(options.steps)),
        *("--trainer.val_check_interval", str(options.eval_every)),
        *("--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"),
        *("--trainer.logger.init_args.save_dir", str(logs)),
        *("--trainer.logger.init_args.name", run.key.rsplit("/", 1)[0]),
        *("--trainer.logger.init_args.version", f"seed{run.seed}"),
        "--trainer.callbacks+=hgtrain.tools.transfer.experiment.EvaluationCurve",
        *options.fit_args,
    ]


def run_one(run: Run, sets: TaskSets, options: Any) -> list[tuple[int, float]]:
    """Fine-tune ``run`` (its earlier TensorBoard folder, of an interrupted try, replaced);
    its evaluation curve."""
    shutil.rmtree(Path(options.output) / "runs" / run.key, ignore_errors=True)
    cli = build_cli(fit_arguments(run, sets, options))
    curve = next(c for c in cli.trainer.callbacks if isinstance(c, EvaluationCurve))
    return curve.points


def settings_of(options: Any) -> dict[str, Any]:
    """What makes results comparable: everything but the list of runs."""
    backbone = Path(options.backbone)
    digest = hashlib.sha256(backbone.read_bytes()).hexdigest()[:16] if backbone.is_file() else None
    return {
        "fit_config": options.fit_config,
        "backbone_sha256": digest,
        "steps": options.steps,
        "eval_every": options.eval_every,
        "batch_size": options.batch_size,
        "image_size": options.image_size,
        "train_size": options.train_size,
        "test_size": options.test_size,
        "data_seed": options.data_seed,
        "fit_args": list(options.fit_args),
        "flip_pairs": {
            name: [list(pair) for pair in task.flip_pairs]
            for name, task in DOWNSTREAM_TASKS.items()
        },
    }


def build_parser() -> ToolParser:
    """The options of ``hgtrain transfer``."""
    parser = ToolParser(
        prog="hgtrain transfer",
        description="Fine-tune from a pretrained backbone, from scratch and with the backbone "
        "frozen, on downstream tasks that pretraining never saw, with few labelled images, over "
        "seeds; write a table and a plot of AP@2 against steps. Options after -- go to "
        "'hgtrain fit' unchanged.",
    )
    parser.add_argument("--backbone", default="backbone.pt", help="the pretrained backbone")
    parser.add_argument("--fit_config", default="quickstart.yaml", help="model and recipe")
    parser.add_argument(
        "--tasks", type=list[str], default=list(DOWNSTREAM_TASKS), help="downstream tasks"
    )
    parser.add_argument(
        "--images",
        type=list[int],
        default=[64, 256, 1024],
        help="labelled training images of a run: the first N of the task's train set",
    )
    parser.add_argument(
        "--starts",
        type=list[str],
        default=list(STARTS),
        help="pretrained: the backbone, all trained; scratch: a fresh one; frozen: the "
        "backbone fixed, the heads trained",
    )
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0 .. N-1 of every setting")
    parser.add_argument("--steps", type=int, default=200, help="optimizer steps of every run")
    parser.add_argument("--eval_every", type=int, default=25, help="steps between evaluations")
    parser.add_argument("--batch_size", type=int, default=16, help="images per step")
    parser.add_argument(
        "--image_size", type=int, default=128, help="side of the sets' images and of the input"
    )
    parser.add_argument("--data_root", default="data/transfer", help="the tasks' sets")
    parser.add_argument("--train_size", type=int, default=1024, help="images per train set")
    parser.add_argument("--test_size", type=int, default=256, help="images per test set")
    parser.add_argument("--data_seed", type=int, default=0, help="seed of the sets' images")
    parser.add_argument("--output", default="transfer", help="results, table, plot and logs")
    return parser


def main(args: Sequence[str] | None = None) -> None:
    """Entry point of ``hgtrain transfer``."""
    argv = list(sys.argv[1:] if args is None else args)
    fit_args = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = build_parser()
    options = parser.parse_args(argv)
    options.fit_args = fit_args
    parser.check_at_least(
        options, images=1, seeds=1, steps=1, eval_every=1, batch_size=1, train_size=1, test_size=1
    )
    for name, allowed in (("tasks", DOWNSTREAM_TASKS), ("starts", STARTS)):
        unknown = [value for value in options[name] if value not in allowed]
        if unknown:
            parser.error(f"--{name}: unknown {unknown}; choose from {', '.join(allowed)}")
    if min(options.images) < options.batch_size:
        parser.error(
            f"--images={options.images}: each must be at least --batch_size="
            f"{options.batch_size} (a smaller set makes no full batch)"
        )
    if max(options.images) > options.train_size:
        parser.error(f"--images={options.images}: at most --train_size={options.train_size}")
    if {"pretrained", "frozen"} & set(options.starts) and not Path(options.backbone).is_file():
        parser.error(
            f"--backbone={options.backbone}: no such file; pretrain and export one first "
            "(docs/transfer.md)"
        )
    output = Path(options.output)
    output.mkdir(parents=True, exist_ok=True)
    lock = FileLock(output / LOCK)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        parser.error(
            f"--output={options.output}: another hgtrain transfer is writing there; wait for it "
            "to end, or choose another --output"
        )
    try:
        run_benchmark(options, parser)
    finally:
        lock.release()


def run_benchmark(options: Any, parser: ToolParser) -> None:
    """The runs of ``options`` that ``OUTPUT/results.json`` lacks, one by one, each added to it
    when it ends; then the report."""
    results_path = Path(options.output) / RESULTS
    results = load_results(results_path, settings_of(options), parser)
    sets = prepare_for_command(
        parser,
        options.tasks,
        options.data_root,
        options.train_size,
        options.test_size,
        options.image_size,
        options.data_seed,
    )
    runs = [
        Run(task, images, start, seed)
        for task in options.tasks
        for images in options.images
        for seed in range(options.seeds)
        for start in options.starts
    ]
    for number, run in enumerate(runs, start=1):
        if run.key in results["runs"]:
            continue
        print(f"hgtrain transfer: run {number}/{len(runs)}: {run.key}", file=sys.stderr)
        try:
            curve = run_one(run, sets[run.task], options)
        except SystemExit as stop:
            if stop.code == SIGTERM_EXIT_STATUS:
                print(
                    f"hgtrain transfer: stopped during {run.key}; the same command continues: "
                    f"it keeps the {len(results['runs'])} finished runs of {results_path} and "
                    "starts this one again",
                    file=sys.stderr,
                )
            raise
        results["runs"][run.key] = {"curve": curve}
        text = json.dumps(results, indent=1).encode()
        write_file_atomically(results_path, lambda file, text=text: file.write(text))
    print(write_report(results, runs, Path(options.output)))


def load_results(path: Path, settings: dict[str, Any], parser: ToolParser) -> dict[str, Any]:
    """The results so far in ``path`` (runs of these settings), or new empty ones."""
    if not path.is_file():
        return {"settings": settings, "runs": {}}
    try:
        results = json.loads(path.read_text())
        stored = results["settings"]
        results["runs"]
    except (ValueError, KeyError, TypeError) as error:
        parser.error(f"{path} is not a results file of hgtrain transfer ({error}); move it away")
    if stored != settings:
        changed = sorted(
            k for k in settings.keys() | stored.keys() if settings.get(k) != stored.get(k)
        )
        parser.error(
            f"{path} holds runs with other settings ({', '.join(changed)}); choose another "
            "--output, or move it away to start again"
        )
    return results
