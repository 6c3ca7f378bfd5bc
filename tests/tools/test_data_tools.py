import json
import math
from importlib import resources

import pytest
import yaml
from PIL import Image

from hgtrain.data.loading.synthetic import SyntheticKeypoints
from hgtrain.models.flops import training_flops
from hgtrain.tools import data_benchmark as benchmark
from hgtrain.tools import data_preview as preview

QUICK = ["--seconds", "0.05", "--runs", "1"]


def test_benchmark_reports_samples_per_second_and_encoding_cost(capsys):
    results = benchmark.main(["--sizes", "32", *QUICK, "--json", "true", "--budget", "false"])
    printed = json.loads(capsys.readouterr().out)
    assert printed == results and list(results) == ["sizes"]
    (result,) = results["sizes"]
    assert result["image_size"] == 32
    assert result["samples_per_s"] > 0 and result["encode_ms_per_sample"] > 0


def test_benchmark_table_names_the_sizes(capsys):
    args = ["--sizes", "32", "--seconds", "0.02", "--runs", "1", "--no_encode", "true"]
    benchmark.main([*args, "--budget", "false"])
    assert "   32 " in capsys.readouterr().out


def shipped(name: str) -> dict:
    """A config shipped in the package, read here independently of the tool."""
    return yaml.safe_load((resources.files("hgtrain") / "configs" / f"{name}.yaml").read_text())


@pytest.fixture
def measured(monkeypatch) -> list[int]:
    """No rendering: each size "measures" 100 samples/s by CPU time (120 by the wall clock); the
    sizes asked for, in order."""
    sizes = []

    def fake(image_size: int, seconds: float, runs: int, encode: bool = True) -> dict:
        sizes.append(image_size)
        return {"image_size": image_size, "samples_per_s": 120.0, "samples_per_s_cpu": 100.0}

    monkeypatch.setattr(benchmark, "benchmark_size", fake)
    return sizes


@pytest.fixture
def counted(monkeypatch) -> list[tuple]:
    """No FLOP counting: 0.8 TFLOP per image (so 500 images/s at 400 TFLOP/s); the calls."""
    calls = []

    def fake(config, batch_size: int, input_size: int) -> int:
        calls.append((config, batch_size, input_size))
        return int(0.8e12) * batch_size

    monkeypatch.setattr(benchmark, "training_flops", fake)
    return calls


def test_budget_has_a_row_per_original_config_with_its_yaml_values(measured, counted, capsys):
    results = benchmark.main(["--sizes", "511", *QUICK, "--json", "true"])
    assert json.loads(capsys.readouterr().out) == results
    rows = results["budget"]
    assert [r["config"] for r in rows] == ["cornernet", "saccade", "squeeze"]
    for row, (network, batch, size) in zip(rows, counted, strict=True):
        config = shipped(row["config"])
        data = config["data"]
        assert row["backbone"] == config["model"]["backbone"] == network.backbone.name
        assert row["image_size"] == data["image_size"] == size == network.input_size
        assert row["workers"] == data["num_workers"]
        assert row["gpus"] == config["trainer"]["devices"]
        assert row["batch_per_gpu"] == data["batch_size"] == batch
        assert network.corner_pool == config["model"]["corner_pool"]
        assert row["samples_per_s_per_worker_cpu_time"] == 100.0
        assert row["samples_per_s_with_workers"] == 100.0 * data["num_workers"]
    # 511 (cornernet, squeeze) was measured for --sizes and is reused; 255 (saccade) once
    assert measured == [511, 255]


def test_the_gpu_estimate_is_gpu_tflops_over_the_counted_training_flops(measured, capsys):
    rows = benchmark.main(["--sizes", "64", *QUICK, "--json", "true"])["budget"]
    saccade = shipped("saccade")
    batch, size = saccade["data"]["batch_size"], saccade["data"]["image_size"]
    flops = training_flops(benchmark.network_config(saccade), batch, size) / batch
    row = rows[1]
    assert row["config"] == "saccade" and row["training_flops_per_image"] == flops
    assert row["gpu_images_per_s_estimate"] == pytest.approx(400e12 / flops)
    for r in rows:
        assert r["gpu_tflops"] == 400
        assert r["gpu_images_per_s_estimate"] == pytest.approx(
            400e12 / r["training_flops_per_image"]
        )
        assert r["workers_needed"] == math.ceil(r["gpu_images_per_s_estimate"] / 100.0)


def test_doubling_gpu_tflops_doubles_the_gpu_images_per_s_and_the_workers_needed(
    measured, counted, capsys
):
    def budget(tflops: str) -> list[dict]:
        args = ["--sizes", "64", *QUICK, "--json", "true", "--gpu_tflops", tflops]
        return benchmark.main(args)["budget"]

    for base, doubled in zip(budget("400"), budget("800"), strict=True):
        assert base["gpu_images_per_s_estimate"] == pytest.approx(500.0)  # 400e12 / 0.8e12
        assert doubled["gpu_images_per_s_estimate"] == pytest.approx(1000.0)
        # one worker renders 100 samples/s: 5 workers keep up with 500 images/s, 10 with 1000
        assert (base["workers_needed"], doubled["workers_needed"]) == (5, 10)
        workers = shipped(base["config"])["data"]["num_workers"]
        assert base["data_to_gpu_ratio"] == pytest.approx(100 * workers / 500)
        assert doubled["data_to_gpu_ratio"] == pytest.approx(100 * workers / 1000)
        assert base["limits_training"] == (workers < 5)
        assert doubled["limits_training"] == (workers < 10)


def test_the_budget_table_is_printed_after_the_sizes_as_an_estimate(measured, counted, capsys):
    benchmark.main(["--sizes", "64", *QUICK])
    sizes, budget = capsys.readouterr().out.split("\n\n")
    assert sizes.splitlines()[-1].startswith("   64 ")
    title, header, *rows = budget.splitlines()
    assert "ESTIMATE" in title and "400 TFLOP/s" in title
    assert header.split()[:6] == ["config", "backbone", "size", "workers", "GPUs", "batch"]
    assert "keeps up" in header and "GPU img/s (est.)" in header
    for row, name in zip(rows, ["cornernet", "saccade", "squeeze"], strict=False):
        config = shipped(name)
        data, workers = config["data"], config["data"]["num_workers"]
        assert row.split() == [
            *(name, config["model"]["backbone"], str(data["image_size"]), str(workers)),
            *(str(config["trainer"]["devices"]), str(data["batch_size"])),
            *("100", str(100 * workers), "800", "500", "5"),  # 0.8 TFLOP: 800 GFLOP/img
            f"{100 * workers / 500:.2f}",
            "yes" if workers >= 5 else "no",
        ]
    footnote = " ".join(rows[3:])
    assert "estimate, not a measurement" in footnote.lower() and "H100" in footnote


def test_budget_false_prints_no_budget_table(measured, monkeypatch, capsys):
    monkeypatch.setattr(benchmark, "training_flops", None)  # would fail if called
    results = benchmark.main(["--sizes", "64", *QUICK, "--budget", "false"])
    out = capsys.readouterr().out
    assert "budget" not in results and "estimate" not in out.lower() and "\n\n" not in out
    assert measured == [64]


def test_preview_writes_a_grid_with_a_legend(tmp_path):
    path = preview.main(
        ["--output", str(tmp_path / "docs" / "p.png"), "--image_size", "64", "--count", "2"]
    )
    with Image.open(path) as picture:
        # two samples of two 256 px tiles (64 px scaled x4) side by side, plus padding and legend
        assert picture.width > 4 * 256 and picture.height > 256


def test_preview_of_a_dataset(tmp_path):
    dataset = SyntheticKeypoints("val", 2, 48)
    path = preview.render_preview(dataset, tmp_path / "d.png", count=2, columns=1)
    assert path.is_file()


def test_benchmark_options_can_come_from_a_yaml_config(tmp_path, capsys):
    config = tmp_path / "data_benchmark.yaml"
    config.write_text(
        "sizes: [32]\nseconds: 0.02\nruns: 1\nno_encode: true\njson: true\nbudget: false\n"
    )
    results = benchmark.main(["--config", str(config)])
    assert json.loads(capsys.readouterr().out) == results
    (result,) = results["sizes"]
    assert result["image_size"] == 32 and "encode_ms_per_sample" not in result


def test_preview_options_can_come_from_a_yaml_config(tmp_path):
    config = tmp_path / "preview.yaml"
    output = tmp_path / "p.png"
    config.write_text(f"output: {output}\nimage_size: 32\ncount: 1\ncolumns: 1\nclean: true\n")
    assert preview.main(["--config", str(config)]) == output
    assert output.is_file()


@pytest.mark.parametrize(
    ("tool", "args", "message"),
    [
        (preview, "--image_size 8", "hgtrain data-preview: --image_size=8: must be >= 16"),
        (preview, "--count 0", "hgtrain data-preview: --count=0: must be >= 1"),
        (
            preview,
            "--clean maybe",
            "hgtrain data-preview: --clean: Expected a <class 'bool'>. Got value: maybe",
        ),
        (benchmark, "--sizes 32 8", "hgtrain data-benchmark: --sizes=8: must be >= 16"),
        (benchmark, "--runs 0", "hgtrain data-benchmark: --runs=0: must be >= 1"),
        (benchmark, "--seconds 0", "hgtrain data-benchmark: --seconds=0.0: must be > 0"),
        (benchmark, "--gpu_tflops 0", "hgtrain data-benchmark: --gpu_tflops=0.0: must be > 0"),
        (
            benchmark,
            "--budget maybe",
            "hgtrain data-benchmark: --budget: Expected a <class 'bool'>. Got value: maybe",
        ),
    ],
)
def test_a_bad_value_is_one_line_naming_the_option_and_the_value(tool, args, message, capsys):
    with pytest.raises(SystemExit) as exit:
        tool.main(args.split())
    assert exit.value.code == 2
    assert capsys.readouterr().err.splitlines() == [message]
