import json

from PIL import Image

from hgtrain.data import benchmark, preview
from hgtrain.data.synthetic import SyntheticKeypoints


def test_benchmark_reports_samples_per_second_and_encoding_cost(capsys):
    results = benchmark.main(["--sizes", "32", "--seconds", "0.05", "--runs", "1", "--json"])
    printed = json.loads(capsys.readouterr().out)
    assert printed == results and results[0]["image_size"] == 32
    assert results[0]["samples_per_s"] > 0 and results[0]["encode_ms_per_sample"] > 0


def test_benchmark_table_names_the_sizes(capsys):
    benchmark.main(["--sizes", "32", "--seconds", "0.02", "--runs", "1", "--no-encode"])
    assert "   32 " in capsys.readouterr().out


def test_preview_writes_a_grid_with_a_legend(tmp_path):
    path = preview.main(
        ["--output", str(tmp_path / "docs" / "p.png"), "--image-size", "64", "--count", "2"]
    )
    with Image.open(path) as picture:
        # two samples of two 256 px tiles (64 px scaled x4) side by side, plus padding and legend
        assert picture.width > 4 * 256 and picture.height > 256


def test_preview_of_a_dataset(tmp_path):
    dataset = SyntheticKeypoints("val", 2, 48)
    path = preview.render_preview(dataset, tmp_path / "d.png", count=2, columns=1)
    assert path.is_file()
