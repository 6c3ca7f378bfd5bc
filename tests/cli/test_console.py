"""The console of the training subcommands: known noise filtered at its source, results as one
table with the sets as columns."""

import logging
import math
import warnings

from hgtrain.cli.console import quiet_known_noise, results_table

METRICS = {
    "test_noisy/map@1": 0.81,
    "test_noisy/map@2": 0.953,
    "test_noisy/map@4": 0.97,
    "test_noisy/map": 0.911,
    "test_noisy/ap@2/top_left": 0.99,
    "test_noisy/ap@2/corner": 0.93,
    "test_noisy/recall@2": 0.96,
    "test_noisy/loc_error": 0.71,
    "test_clean/map@2": 0.979,
    "test_clean/loc_error": math.nan,
    "test_noisy/ap@1/top_left": 0.5,
}


def test_results_table_has_a_column_per_set_and_a_row_per_headline_metric():
    table = results_table(METRICS, ["test_noisy", "test_clean"], ["top_left", "corner"])
    header, rule, *rows = table.splitlines()
    assert header.split() == ["metric", "noisy", "clean"]
    assert set(rule) == {"-"}
    labels = [row[: header.index("noisy") - 2].strip() for row in rows]
    assert labels == [
        "AP@1",
        "AP@2",
        "AP@4",
        "AP (mean over 1/2/4 px)",
        "AP@2 top_left",
        "AP@2 corner",
        "recall@2",
        "localisation error (px)",
    ]
    assert rows[1].split()[-2:] == ["0.9530", "0.9790"]


def test_results_table_marks_undefined_values_and_leaves_out_unlogged_rows():
    table = results_table(METRICS, ["test_noisy", "test_clean"], ["top_left", "corner"])
    (error_row,) = [row for row in table.splitlines() if row.startswith("localisation")]
    assert error_row.split()[-2:] == ["0.7100", "n/a"]
    assert "loss" not in table  # no set logged one
    assert "AP@1 top_left" not in table  # per-class rows are AP@2 only


def test_results_table_of_the_validation_set():
    table = results_table({"val/map@2": 0.5, "val/loss": 1.25}, ["val"])
    assert table.splitlines()[0].split() == ["metric", "val"]
    assert [row.split()[-1] for row in table.splitlines()[2:]] == ["0.5000", "1.2500"]


def test_known_warnings_are_filtered_and_others_are_not():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_known_noise()
        warnings.warn(
            "`isinstance(treespec, LeafSpec)` is deprecated, use ...", FutureWarning, stacklevel=2
        )
        warnings.warn(
            "Precision bf16-mixed is not supported by the model summary.", UserWarning, stacklevel=2
        )
        warnings.warn(
            "The number of training batches (2) is smaller than ...", UserWarning, stacklevel=2
        )
    assert [str(w.message) for w in caught] == [
        "The number of training batches (2) is smaller than ..."
    ]


class Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_lightning_tips_are_dropped_and_its_other_lines_kept():
    quiet_known_noise()
    quiet_known_noise()  # idempotent: one filter
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    assert len(logger.filters) == 1
    recorder, level = Recorder(), logger.level
    logger.addHandler(recorder)
    logger.setLevel(logging.INFO)
    try:
        logger.info("💡 Tip: For seamless cloud logging, try installing [litlogger] ...")
        logger.info("GPU available: False, used: False")
    finally:
        logger.removeHandler(recorder)
        logger.setLevel(level)
    assert recorder.lines == ["GPU available: False, used: False"]


def test_fit_and_test_print_one_table_and_verbose_adds_lightnings(tmp_path, capsys, caplog):
    from hgtrain.cli.main import main
    from tests.cli.test_cli import tiny_config

    config = str(tiny_config(tmp_path))
    with caplog.at_level(logging.INFO):
        main(["fit", "--config", config, "--trainer.logger", "false", "--test_after_fit", "true"])
    assert "test results (no logger: --verbose true on test or validate prints" in caplog.text
    checkpoint = str(next(tmp_path.rglob("last.ckpt")))
    for verbose in ("false", "true"):
        caplog.clear()
        with caplog.at_level(logging.INFO):
            main(["test", "--ckpt_path", checkpoint, "--verbose", verbose])
        (table,) = [r.getMessage() for r in caplog.records if "test results" in r.getMessage()]
        assert table.splitlines()[1].split() == ["metric", "noisy", "clean", "unseen"]
        assert ("Test metric" in capsys.readouterr().out) == (verbose == "true")


def test_a_fast_dev_run_which_logs_nothing_does_not_point_at_the_logger(tmp_path, caplog):
    from hgtrain.cli.main import main
    from tests.cli.test_cli import tiny_config

    with caplog.at_level(logging.INFO):
        main(["fit", "--config", str(tiny_config(tmp_path)), "--config", "debug.yaml",
              "--test_after_fit", "true"])  # fmt: skip
    assert "test results (no logger: --verbose true on test or validate prints" in caplog.text
