import json

import pytest
from PIL import Image

from hgtrain.data.loading.synthetic import SyntheticKeypoints
from hgtrain.tools import data_benchmark as benchmark
from hgtrain.tools import data_preview as preview


def test_benchmark_reports_samples_per_second_and_encoding_cost(capsys):
    results = benchmark.main(
        ["--sizes", "32", "--seconds", "0.05", "--runs", "1", "--json", "true"]
    )
    printed = json.loads(capsys.readouterr().out)
    assert printed == results and results[0]["image_size"] == 32
    assert results[0]["samples_per_s"] > 0 and results[0]["encode_ms_per_sample"] > 0


def test_benchmark_table_names_the_sizes(capsys):
    benchmark.main(["--sizes", "32", "--seconds", "0.02", "--runs", "1", "--no_encode", "true"])
    assert "   32 " in capsys.readouterr().out


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
    config.write_text("sizes: [32]\nseconds: 0.02\nruns: 1\nno_encode: true\njson: true\n")
    (result,) = benchmark.main(["--config", str(config)])
    assert json.loads(capsys.readouterr().out) == [result]
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
    ],
)
def test_a_bad_value_is_one_line_naming_the_option_and_the_value(tool, args, message, capsys):
    with pytest.raises(SystemExit) as exit:
        tool.main(args.split())
    assert exit.value.code == 2
    assert capsys.readouterr().err.splitlines() == [message]
