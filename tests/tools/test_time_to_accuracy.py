"""``hgtrain time-to-accuracy``: the timed runs, what is read from their logs, the report and plot.

The whole command with real training runs is the docs' (tests/test_docs.py); these check its
parts and its errors.
"""

import itertools
import xml.etree.ElementTree as ET

import pytest
from torch.utils.tensorboard import SummaryWriter

from hgtrain.tools.benchmark.plot import line_plot_svg, nice_ticks, write_line_plot
from hgtrain.tools.time_to_accuracy import (
    logged_results,
    main,
    read_scalars,
    report_table,
    summarize,
)


def test_ticks_are_round_steps_that_cover_the_range():
    ticks = nice_ticks(0.0, 173.0)
    assert ticks[0] <= 0.0 and ticks[-1] >= 173.0
    steps = {round(b - a, 9) for a, b in itertools.pairwise(ticks)}
    assert steps == {50.0}
    assert nice_ticks(0.62, 0.97)[:2] == [0.6, 0.7]


def test_a_plot_has_one_line_per_series_a_target_and_a_legend(tmp_path):
    series = {"seed 0": [(10, 0.5), (60, 0.9), (120, 0.96)], "seed 1": [(12, 0.4), (70, 0.95)]}
    svg = line_plot_svg(series, x_label="seconds", y_label="val/map@2", target=0.95)
    root = ET.fromstring(svg)  # well-formed XML
    namespace = "{http://www.w3.org/2000/svg}"
    assert len(root.findall(f"{namespace}polyline")) == 2
    assert len(root.findall(f"{namespace}circle")) == 5
    texts = [t.text for t in root.iter(f"{namespace}text")]
    assert {"seed 0", "seed 1", "target 0.95", "seconds", "val/map@2"} <= set(texts)
    path = write_line_plot(tmp_path / "curve.svg", series, x_label="s", y_label="AP")
    assert path.read_text().startswith("<svg")


def test_scalars_are_read_with_their_wall_times(tmp_path):
    writer = SummaryWriter(tmp_path / "runs" / "version_0")
    writer.add_scalar("val/map@2", 0.5, global_step=10, walltime=1000.0)
    writer.add_scalar("val/map@2", 0.96, global_step=20, walltime=1060.0)
    writer.add_scalar("test_noisy/map@2", 0.955, global_step=20, walltime=1070.0)
    writer.close()
    scalars = read_scalars(tmp_path)
    assert [(t, s) for t, s, _ in scalars["val/map@2"]] == [(1000.0, 10), (1060.0, 20)]
    assert scalars["test_noisy/map@2"][0][2] == pytest.approx(0.955)


def test_by_default_the_report_takes_every_test_sets_map_at_2():
    scalars = {
        "val/map@2": [(1.0, 1, 0.9)],
        "test_noisy/map@2": [(2.0, 9, 0.95)],
        "test_noisy/map@4": [(2.0, 9, 0.97)],
        "test_low_contrast/map@2": [(3.0, 9, 0.91)],
    }
    assert logged_results(scalars, None) == {
        "test_noisy/map@2": 0.95,
        "test_low_contrast/map@2": 0.91,
    }
    assert logged_results(scalars, ["test_noisy/map@4", "test_faint/map@2"]) == {
        "test_noisy/map@4": 0.97
    }


def test_the_summary_is_the_median_and_range_and_counts_runs_that_missed():
    runs = [
        {"seed": 0, "wall_s": 170.0, "time_to_target_s": 150.0, "final": 0.96},
        {"seed": 1, "wall_s": 160.0, "time_to_target_s": None, "final": 0.94},
        {"seed": 2, "wall_s": 180.0, "time_to_target_s": 140.0, "final": 0.97},
    ]
    summary = summarize(runs, ["wall_s", "time_to_target_s"])
    assert summary["wall_s"] == {"median": 170.0, "min": 160.0, "max": 180.0, "missing": 0}
    assert summary["time_to_target_s"]["median"] == 145.0
    assert summary["time_to_target_s"]["missing"] == 1
    report = {
        "metric": "val/map@2",
        "target": 0.95,
        "test_metrics": [],
        "runs": runs,
        "summary": summarize(runs, ["wall_s", "time_to_target_s", "final"]),
    }
    table = report_table(report)
    assert "| 1 | 160 | - | 0.9400 |" in table
    assert table.splitlines()[-1].startswith("| median (range) | 170 (160-180) | 145 (140-150) |")
    never = [{**run, "time_to_target_s": None} for run in runs]
    report = {
        **report,
        "runs": never,
        "summary": summarize(never, ["wall_s", "time_to_target_s", "final"]),
    }
    assert (
        report_table(report).splitlines()[-1].startswith("| median (range) | 170 (160-180) | - |")
    )


def test_a_workdir_with_files_is_refused_before_any_run(tmp_path, capsys):
    (tmp_path / "old").mkdir()
    with pytest.raises(SystemExit) as exit_:
        main(["--workdir", str(tmp_path)])
    assert exit_.value.code == 2
    assert "is not empty" in capsys.readouterr().err


def test_a_failing_run_stops_the_report_and_names_its_log(tmp_path):
    with pytest.raises(SystemExit, match=r"seed 0 failed .*output\.log"):
        main(["--workdir", str(tmp_path / "tta"), "--runs", "2", "--", "--trainer.max_epochs", "x"])
    assert not (tmp_path / "tta" / "seed_1").exists()
