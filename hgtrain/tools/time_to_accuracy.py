"""``hgtrain time-to-accuracy``: how long a training config takes to reach a target, over seeds.

DAWNBench style: each run is the user's whole command, ``hgtrain fit --config CONFIG
--seed_everything SEED`` (set generation, training, validation and the test after fit), started in
a fresh empty directory and timed by the wall clock. Every run has its own seed (``--seed``,
``--seed + 1``...; the data settings, and so the test sets, stay those of the config). From each
run's TensorBoard events come the validation curve (``--metric`` against seconds since the command
started), the time of the first validation at or above ``--target``, and the test results of the
best checkpoint. The report gives each run and the median and range over runs, as a table, as
JSON (``--json FILE``) and as an SVG plot of the curves (``--plot FILE``).

Options after ``--`` go to ``hgtrain fit`` unchanged (``-- --trainer.max_epochs 2``).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hgtrain.atomic import write_file_atomically
from hgtrain.cli.arguments import ToolParser
from hgtrain.tools.benchmark.plot import write_line_plot

__all__ = ["build_parser", "logged_results", "main", "read_scalars", "run_once", "summarize"]

TEST_METRIC = "/map@2"
"""What the report takes from each test set by default: ``test_<set>/map@2``."""


def build_parser() -> ToolParser:
    """The options of ``hgtrain time-to-accuracy``."""
    parser = ToolParser(
        prog="hgtrain time-to-accuracy",
        description="Run 'hgtrain fit --config CONFIG' several times from empty directories and "
        "report the wall time to a validation target, the whole command's time and the test "
        "results (median and range). Options after -- go to 'hgtrain fit'.",
    )
    parser.add_argument("--fit_config", default="quickstart.yaml", help="the training config")
    parser.add_argument("--runs", type=int, default=3, help="runs, one after another")
    parser.add_argument("--seed", type=int, default=0, help="seed_everything of the first run")
    parser.add_argument("--metric", default="val/map@2", help="the validation curve")
    parser.add_argument("--target", type=float, default=0.95, help="the value to reach")
    parser.add_argument(
        "--test_metrics",
        type=list[str] | None,
        default=None,
        help="test results to report (logged by the test after fit); default: the map@2 of "
        "every test set the runs logged (test_noisy/map@2, test_low_contrast/map@2, ...)",
    )
    parser.add_argument(
        "--workdir", default="time-to-accuracy", help="where each run gets its empty directory"
    )
    parser.add_argument("--json", default=None, help="write the report to this JSON file")
    parser.add_argument("--plot", default=None, help="write the curves to this SVG file")
    return parser


def read_scalars(log_dir: Path) -> dict[str, list[tuple[float, int, float]]]:
    """Every scalar in the TensorBoard event files under ``log_dir``: tag -> [(wall time, step,
    value)], in logging order."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    scalars: dict[str, list[tuple[float, int, float]]] = {}
    for events in sorted(log_dir.rglob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events), size_guidance={"scalars": 0})
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            scalars.setdefault(tag, []).extend(
                (e.wall_time, e.step, e.value) for e in accumulator.Scalars(tag)
            )
    return scalars


def logged_results(
    scalars: dict[str, list[tuple[float, int, float]]], test_metrics: Sequence[str] | None
) -> dict[str, float]:
    """The last value of each of ``test_metrics`` that was logged (None: every
    ``test_<set>/map@2``, in logging order)."""
    if test_metrics is None:
        test_metrics = [t for t in scalars if t.startswith("test_") and t.endswith(TEST_METRIC)]
    return {name: scalars[name][-1][2] for name in test_metrics if name in scalars}


def run_once(
    fit_config: str,
    seed: int,
    directory: Path,
    metric: str,
    target: float,
    test_metrics: Sequence[str] | None,
    fit_args: Sequence[str] = (),
) -> dict[str, Any]:
    """One timed ``hgtrain fit`` in the empty ``directory``; its curve, times and test results
    (``test_metrics``, or None: every logged ``test_<set>/map@2``)."""
    directory.mkdir(parents=True, exist_ok=False)
    config = Path(fit_config)
    config_arg = str(config.resolve()) if config.is_file() else fit_config  # else a packaged name
    command = [sys.executable, "-m", "hgtrain.cli.main", "fit", "--config", config_arg]
    command += ["--seed_everything", str(seed), *fit_args]
    start = time.time()
    with open(directory / "output.log", "wb") as log:
        finished = subprocess.run(command, cwd=directory, stdout=log, stderr=subprocess.STDOUT)
    wall = time.time() - start
    if finished.returncode != 0:
        raise SystemExit(
            f"hgtrain time-to-accuracy: run with seed {seed} failed (exit {finished.returncode}); "
            f"see {directory / 'output.log'}"
        )
    scalars = read_scalars(directory)
    curve = [(round(t - start, 1), step, value) for t, step, value in scalars.get(metric, [])]
    reached = next((seconds for seconds, _, value in curve if value >= target), None)
    tests = logged_results(scalars, test_metrics)
    return {
        "seed": seed,
        "wall_s": round(wall, 1),
        "time_to_target_s": reached,
        "curve": curve,
        "final": curve[-1][2] if curve else None,
        **tests,
    }


def summarize(runs: Sequence[dict[str, Any]], keys: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Median, min and max over runs of each key (runs that lack it, or never reached the
    target, are left out and counted as missing)."""
    summary = {}
    for key in keys:
        values = [run[key] for run in runs if run.get(key) is not None]
        summary[key] = {
            "median": statistics.median(values) if values else None,
            "min": min(values, default=None),
            "max": max(values, default=None),
            "missing": len(runs) - len(values),
        }
    return summary


def _format(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" if isinstance(value, float) and value < 10 else f"{value:g}"


def report_table(report: dict[str, Any]) -> str:
    """The report as Markdown: one row per run, then the median and range."""
    keys = ["wall_s", "time_to_target_s", "final", *report["test_metrics"]]
    header = ["seed", "wall s", f"s to {report['metric']} >= {report['target']}", "final"]
    header += report["test_metrics"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for run in report["runs"]:
        lines.append("| " + " | ".join(_format(run.get(k)) for k in ["seed", *keys]) + " |")
    cells = []
    for key in keys:
        s = report["summary"][key]
        if s["median"] is None:
            cells.append("-")
        else:
            cells.append(f"{_format(s['median'])} ({_format(s['min'])}-{_format(s['max'])})")
    lines.append("| median (range) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(args: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the report; prints the table and returns the report dict."""
    argv = list(sys.argv[1:] if args is None else args)
    split = argv.index("--") if "--" in argv else len(argv)
    parser = build_parser()
    options = parser.parse_args(argv[:split])
    fit_args = argv[split + 1 :]
    parser.check_at_least(options, runs=1)
    workdir = Path(options.workdir)
    if workdir.exists() and any(workdir.iterdir()):
        parser.error(f"--workdir={workdir}: exists and is not empty; each run needs a fresh one")
    runs = []
    for i in range(options.runs):
        seed = options.seed + i
        print(f"hgtrain time-to-accuracy: run {i + 1}/{options.runs}, seed {seed}", flush=True)
        run = run_once(
            options.fit_config,
            seed,
            workdir / f"seed_{seed}",
            options.metric,
            options.target,
            options.test_metrics,
            fit_args,
        )
        runs.append(run)
    test_metrics = options.test_metrics or list(
        dict.fromkeys(k for run in runs for k in run if k.startswith("test_"))
    )
    keys = ["wall_s", "time_to_target_s", "final", *test_metrics]
    report = {
        "fit_config": options.fit_config,
        "fit_args": fit_args,
        "metric": options.metric,
        "target": options.target,
        "test_metrics": test_metrics,
        "cpus": os.cpu_count(),
        "runs": runs,
        "summary": summarize(runs, keys),
    }
    print(report_table(report))
    if options.json:
        text = json.dumps(report, indent=2).encode()
        write_file_atomically(options.json, lambda file: file.write(text))
    if options.plot:
        write_line_plot(
            options.plot,
            {f"seed {r['seed']}": [(s, v) for s, _, v in r["curve"]] for r in runs},
            x_label="wall-clock seconds since 'hgtrain fit' started",
            y_label=options.metric,
            title=f"{options.fit_config}: {options.metric} against time",
            target=options.target,
        )
    return report


if __name__ == "__main__":
    main()
