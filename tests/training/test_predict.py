"""``hgtrain predict``: a trained checkpoint on a folder of the user's own images -> one JSON file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hgtrain.cli.main import main
from hgtrain.training.module import HourglassKeypointModule
from tests.cli.test_cli import tiny_config

GOOD = {"a.png": (80, 50), "b.jpg": (64, 120), "street/c.png": (200, 100), "d.jpeg": (30, 30)}
BAD = "e.png"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A tiny squeeze checkpoint trained for two steps by ``hgtrain fit``."""
    root = tmp_path_factory.mktemp("fit")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        main(["fit", "--config", str(tiny_config(root)), "--trainer.max_steps", "2"])
    finally:
        os.chdir(cwd)
    return next(root.rglob("last.ckpt"))


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def photos(tmp_path) -> Path:
    """Four images of mixed sizes and formats (one in a sub-folder) and one corrupt file."""
    folder = tmp_path / "photos"
    generator = np.random.default_rng(0)
    for name, (width, height) in GOOD.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        pixels = generator.integers(0, 256, (height, width, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / name)
    (folder / BAD).write_bytes(b"\x89PNG truncated")
    return folder


def predict(checkpoint: Path, photos: Path, *extra: str) -> None:
    main(
        [
            "predict",
            "--ckpt_path",
            str(checkpoint),
            "--data.predict_dir",
            str(photos),
            "--trainer.logger",
            "false",
            *extra,
        ]
    )


def test_predict_writes_keypoints_of_every_readable_image_in_its_own_pixels(
    checkpoint, photos, tmp_path, capfd
):
    output = tmp_path / "out" / "predictions.json"
    predict(checkpoint, photos, "--prediction.output", str(output))
    results = json.loads(output.read_text())
    assert {r["file_name"] for r in results} == set(GOOD)
    for result in results:
        width, height = GOOD[result["file_name"]]
        x, y, visible = result["keypoints"]
        assert 0 <= x <= width and 0 <= y <= height and visible == 1
        assert result["class_name"] in ("top_left", "bottom_right", "corner")
        assert 0 < result["score"] <= 1
    ids = {r["file_name"]: r["image_id"] for r in results}
    assert ids == {"a.png": 0, "b.jpg": 1, "d.jpeg": 2, "street/c.png": 4}  # sorted file order
    scores = [r["score"] for r in results if r["file_name"] == "a.png"]
    assert scores == sorted(scores, reverse=True)
    printed = capfd.readouterr()
    assert f"skipped {photos / BAD}: cannot read the image" in printed.err
    assert not list(output.parent.glob(".*")), "no part or temporary files are left behind"


def test_a_flat_non_square_image_reaches_the_network_flat(checkpoint, tmp_path, monkeypatch):
    # the letterbox adds no edge, so whatever is found on a flat picture is the network's own doing
    folder = tmp_path / "flat"
    folder.mkdir()
    Image.fromarray(np.full((100, 120, 3), 128, np.uint8)).save(folder / "grey.png")
    seen = []
    predict_step = HourglassKeypointModule.predict_step

    def recording(module, batch, batch_idx):
        seen.append(batch[0].clone())
        return predict_step(module, batch, batch_idx)

    monkeypatch.setattr(HourglassKeypointModule, "predict_step", recording)
    output = tmp_path / "predictions.json"
    predict(checkpoint, folder, "--prediction.output", str(output))
    (images,) = seen
    assert images.shape[0] == 1 and images.eq(128).all()
    for result in json.loads(output.read_text()):
        x, y, _ = result["keypoints"]
        assert 0 <= x <= 120 and 0 <= y <= 100


def test_overlays_draw_each_readable_image_at_its_own_size(checkpoint, photos, tmp_path):
    output = tmp_path / "found.json"
    predict(checkpoint, photos, "--prediction.output", str(output), "--prediction.overlays", "true")
    for name, size in GOOD.items():
        with Image.open(tmp_path / "found_overlays" / Path(name).with_suffix(".png")) as overlay:
            assert overlay.size == size


def test_without_an_output_the_file_goes_to_the_run_folder(checkpoint, photos, tmp_path):
    main(["predict", "--ckpt_path", str(checkpoint), "--data.predict_dir", str(photos)])
    (written,) = (tmp_path / "runs").rglob("predictions.json")
    assert written.parent.name == "version_0"


def test_an_existing_output_is_kept_unless_overwrite_is_given(checkpoint, photos, tmp_path, capsys):
    output = tmp_path / "predictions.json"
    output.write_text("my earlier results")
    with pytest.raises(SystemExit):
        predict(checkpoint, photos, "--prediction.output", str(output))
    assert "exists; pass --prediction.overwrite true to replace it" in capsys.readouterr().err
    assert output.read_text() == "my earlier results"
    predict(
        checkpoint, photos, "--prediction.output", str(output), "--prediction.overwrite", "true"
    )
    assert json.loads(output.read_text())


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ([], "predict needs --ckpt_path"),
        (["--ckpt_path", "CKPT", "--data.predict_dir", "nowhere"], "data.predict_dir='nowhere': "),
    ],
)
def test_a_missing_checkpoint_or_folder_is_one_line(checkpoint, arguments, message, capsys):
    arguments = [str(checkpoint) if a == "CKPT" else a for a in arguments]
    with pytest.raises(SystemExit):
        main(["predict", *arguments])
    assert message in capsys.readouterr().err


@pytest.mark.slow
def test_two_process_cpu_ddp_predict_merges_one_file(checkpoint, photos, tmp_path):
    output = tmp_path / "predictions.json"
    hgtrain = Path(sys.executable).with_name("hgtrain")
    command = [str(hgtrain), "predict", "--ckpt_path", str(checkpoint)]
    command += ["--data.predict_dir", str(photos), "--data.batch_size", "1"]
    command += ["--prediction.output", str(output), "--trainer.logger", "false"]
    command += [
        "--trainer.devices",
        "2",
        "--trainer.strategy",
        "ddp",
        "--trainer.accelerator",
        "cpu",
    ]
    subprocess.run(command, check=True, cwd=tmp_path, timeout=300)
    assert {r["file_name"] for r in json.loads(output.read_text())} == set(GOOD)
    assert not list(tmp_path.glob(".*")), "no part or temporary files are left behind"


def test_the_default_output_is_not_replaced_either(checkpoint, photos, tmp_path):
    predict(checkpoint, photos)  # no logger: predictions.json in the working directory
    written = (tmp_path / "predictions.json").read_text()
    with pytest.raises(SystemExit) as stopped:
        predict(checkpoint, photos)
    assert str(stopped.value.code) == (
        f"hgtrain: prediction.output='{tmp_path / 'predictions.json'}': exists; pass "
        "--prediction.overwrite true to replace it"
    )
    assert (tmp_path / "predictions.json").read_text() == written
