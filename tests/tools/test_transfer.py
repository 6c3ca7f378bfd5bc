"""``hgtrain transfer``: the runs it makes, how it resumes, its report, and that pretraining helps."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from filelock import FileLock
from PIL import Image

from hgtrain.cli.main import main
from hgtrain.tools.transfer import experiment
from hgtrain.tools.transfer.experiment import Run
from hgtrain.tools.transfer.summary import markdown_table, steps_to_reach, summarize, write_plot

TINY_FIT = [
    "--data.image_size", "64",
    "--data.train_length", "32",
    "--data.val_size", "8",
    "--data.test_size", "8",
    "--data.batch_size", "8",
    "--trainer.max_epochs", "1",
    "--trainer.enable_progress_bar", "false",
    "--test_after_fit", "false",
]  # fmt: skip
TINY_TRANSFER = [
    "--tasks", "[quads]",
    "--images", "[8]",
    "--batch_size", "4",
    "--seeds", "1",
    "--steps", "2",
    "--eval_every", "1",
    "--image_size", "64",
    "--train_size", "8",
    "--test_size", "4",
]  # fmt: skip


@contextlib.contextmanager
def inside(folder: Path) -> Iterator[None]:
    """Run the body with ``folder`` as the working directory, as a user in it would."""
    previous = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


@contextlib.contextmanager
def both_cores() -> Iterator[None]:
    """Two intra-op threads for the body (the suite runs on one): the training here is a single
    process of real size, which the second core speeds up."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def pretrain(folder: Path, *extra: str) -> None:
    """``hgtrain fit --config quickstart.yaml`` (tiny, plus ``extra``), then ``hgtrain export``
    of its backbone to ``folder/backbone.pt``."""
    with inside(folder):
        main(["fit", "--config", "quickstart.yaml", *TINY_FIT, *extra])
        ckpt = "runs/hgtrain/version_0/checkpoints/last.ckpt"
        main(["export", "--ckpt_path", ckpt, "--output", "backbone.pt"])


NATIVE_PRECISION = (
    [] if torch.ops.mkldnn._is_mkldnn_bf16_supported() else ["--trainer.precision", "32-true"]
)
"""The quickstart's bf16 where the CPU has it natively, else float32 (emulated bf16 trains about
5x slower)."""


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory) -> Path:
    """A folder with a quickstart backbone pretrained for 100 steps at 64 px as ``backbone.pt``."""
    folder = tmp_path_factory.mktemp("transfer")
    with both_cores():
        pretrain(
            folder, "--data.train_length", "1600", "--data.batch_size", "16", *NATIVE_PRECISION
        )
    return folder


def transfer(folder: Path, *args: str) -> None:
    with inside(folder):
        main(["transfer", *args])


def test_steps_to_reach_interpolates_between_evaluations():
    curve = [(25, 0.5), (50, 0.8), (75, 0.9)]
    assert steps_to_reach(curve, 0.5) == 25
    assert steps_to_reach(curve, 0.65) == pytest.approx(37.5)
    assert steps_to_reach(curve, 0.25) == pytest.approx(12.5)  # from (0, 0) to the first point
    assert steps_to_reach(curve, 0.95) is None


def results_of(curves: dict[str, list]) -> dict:
    return {"settings": {"steps": 100}, "runs": {k: {"curve": c} for k, c in curves.items()}}


def test_the_summary_compares_every_start_with_scratchs_final_value():
    runs = [
        Run("quads", 64, start, seed) for start in ("pretrained", "scratch") for seed in (0, 1, 2)
    ]
    curves = {
        "quads/64/scratch/seed0": [(50, 0.3), (100, 0.6)],
        "quads/64/scratch/seed1": [(50, 0.4), (100, 0.7)],
        "quads/64/scratch/seed2": [(50, 0.2), (100, 0.5)],
        "quads/64/pretrained/seed0": [(50, 0.6), (100, 0.9)],
        "quads/64/pretrained/seed1": [(50, 0.8), (100, 0.9)],
        "quads/64/pretrained/seed2": [(50, 0.5), (100, 0.8)],
    }
    rows = {row["start"]: row for row in summarize(results_of(curves), runs)}
    assert rows["scratch"]["scratch_final"] == pytest.approx(0.6)
    assert rows["scratch"]["steps_to_scratch_final"] == pytest.approx(100)  # its median seed
    assert rows["pretrained"]["final"] == pytest.approx(0.9)
    assert rows["pretrained"]["final_range"] == (0.8, 0.9)
    # seeds reach 0.6 at 50, 37.5 and 100x(0.6-0.5)/(0.8-0.5) = 66.7 steps: median 50
    assert rows["pretrained"]["steps_to_scratch_final"] == pytest.approx(50)
    assert rows["pretrained"]["ratio"] == pytest.approx(0.5)
    table = markdown_table(list(rows.values()), 100)
    assert "| quads | 64 | pretrained | 0.900 (0.800-0.900) | 50 | 0.50 |" in table


def test_a_start_that_mostly_never_reaches_scratch_has_no_ratio():
    runs = [Run("quads", 64, start, 0) for start in ("frozen", "scratch")]
    curves = {"quads/64/scratch/seed0": [(50, 0.5)], "quads/64/frozen/seed0": [(50, 0.4)]}
    rows = {row["start"]: row for row in summarize(results_of(curves), runs)}
    assert rows["frozen"]["steps_to_scratch_final"] is None and rows["frozen"]["ratio"] is None
    assert "| quads | 64 | frozen | 0.400 (0.400-0.400) | - | - |" in markdown_table(
        list(rows.values()), 50
    )


def test_the_plot_is_a_png_with_a_panel_per_task_and_image_count(tmp_path):
    runs = [Run(task, n, "scratch", 0) for task in ("quads", "cubes") for n in (64, 256, 1024)]
    curves = {run.key: [(50, 0.2), (100, 0.5)] for run in runs}
    write_plot(results_of(curves), runs, tmp_path / "plot.png")
    with Image.open(tmp_path / "plot.png") as image:
        assert image.format == "PNG"
        assert image.width > image.height > 400  # 3 panels wide, 2 high


def test_transfer_runs_every_start_and_resumes_where_it_stopped(pretrained, capsys):
    output = pretrained / "transfer"
    transfer(pretrained, *TINY_TRANSFER)
    results = json.loads((output / "results.json").read_text())
    keys = ["quads/8/pretrained/seed0", "quads/8/scratch/seed0", "quads/8/frozen/seed0"]
    assert sorted(results["runs"]) == sorted(keys)
    for key in keys:
        assert [step for step, _ in results["runs"][key]["curve"]] == [1, 2]
        assert any((output / "runs" / key).glob("events.out.tfevents.*"))
    table = (output / "transfer.md").read_text()
    assert table.count("| quads | 8 |") == 3
    assert Image.open(output / "transfer.png").format == "PNG"
    assert not list(output.rglob("*.ckpt"))  # the fine-tuning runs keep no checkpoints

    del results["runs"]["quads/8/scratch/seed0"]  # as if stopped before the second run ended
    (output / "results.json").write_text(json.dumps(results))
    capsys.readouterr()
    transfer(pretrained, *TINY_TRANSFER)
    started = [line for line in capsys.readouterr().err.splitlines() if ": run " in line]
    assert started == ["hgtrain transfer: run 2/3: quads/8/scratch/seed0"]
    assert len(json.loads((output / "results.json").read_text())["runs"]) == 3


def test_transfer_refuses_results_of_other_settings_and_bad_options(pretrained, capsys):
    transfer(pretrained, *TINY_TRANSFER, "--output", "other", "--starts", "[scratch]")
    cases = {
        ("--output", "other", "--steps", "3"): "holds runs with other settings (steps)",
        ("--backbone", "missing.pt"): "--backbone=missing.pt: no such file",
        ("--images", "[2]"): "--images=[2]: each must be at least --batch_size=4",
        ("--images", "[16]"): "--images=[16]: at most --train_size=8",
        (
            "--starts",
            "[warm]",
        ): "--starts: unknown ['warm']; choose from pretrained, scratch, frozen",
    }
    for extra, message in cases.items():
        with pytest.raises(SystemExit) as exit_:
            transfer(pretrained, *TINY_TRANSFER, *extra)
        assert exit_.value.code == 2
        assert message in capsys.readouterr().err


@pytest.mark.slow
def test_a_pretrained_backbone_beats_a_fresh_one_at_equal_steps(pretrained):
    """The benchmark in small: 100 steps of pretraining at 64 px (the fixture), then 40
    fine-tuning steps on 64 images of the quads task (new classes that turn with the object), from
    the pretrained backbone and from scratch: the pretrained start is ahead at every evaluation."""
    small = ["--tasks", "[quads]", "--images", "[64]", "--starts", "[pretrained, scratch]"]
    small += ["--seeds", "1", "--steps", "40", "--eval_every", "20", "--image_size", "64"]
    small += ["--train_size", "64", "--test_size", "32"]
    with both_cores():
        transfer(pretrained, *small, "--data_root", "small", "--output", "small_transfer")
    runs = json.loads((pretrained / "small_transfer" / "results.json").read_text())["runs"]
    ahead, behind = (
        runs[f"quads/64/{start}/seed0"]["curve"] for start in ("pretrained", "scratch")
    )
    assert [step for step, _ in ahead] == [step for step, _ in behind] == [20, 40]
    for (step, pretrained_ap), (_, scratch_ap) in zip(ahead, behind, strict=True):
        assert pretrained_ap > scratch_ap + 0.1, (
            f"step {step}: pretrained {pretrained_ap:.3f}, scratch {scratch_ap:.3f}"
        )


def test_a_benchmark_stopped_by_sigterm_keeps_its_finished_runs_and_says_how_to_continue(
    pretrained, monkeypatch, capsys
):
    calls = []

    def first_run_then_sigterm(run, sets, options):
        calls.append(run.key)
        if len(calls) == 2:
            raise SystemExit(143)  # what hgtrain fit does when a SIGTERM stops it
        return [(1, 0.5), (2, 0.6)]

    monkeypatch.setattr(experiment, "run_one", first_run_then_sigterm)
    with pytest.raises(SystemExit) as exit_:
        transfer(pretrained, *TINY_TRANSFER, "--output", "stopped")
    assert exit_.value.code == 143
    runs = json.loads((pretrained / "stopped" / "results.json").read_text())["runs"]
    assert list(runs) == ["quads/8/pretrained/seed0"]
    assert (
        "stopped during quads/8/scratch/seed0; the same command continues: it keeps the 1 "
        "finished runs of stopped/results.json and starts this one again"
    ) in capsys.readouterr().err


def test_a_second_benchmark_writing_to_the_same_folder_is_refused(pretrained, capsys):
    (pretrained / "busy").mkdir()
    another_command = FileLock(pretrained / "busy" / ".lock")
    with another_command, pytest.raises(SystemExit) as exit_:
        transfer(pretrained, *TINY_TRANSFER, "--output", "busy")
    assert exit_.value.code == 2
    assert "--output=busy: another hgtrain transfer is writing there" in capsys.readouterr().err
    assert not (pretrained / "busy" / "results.json").exists()
