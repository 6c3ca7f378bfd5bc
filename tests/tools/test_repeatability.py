"""``hgtrain repeatability``: the measure, the pairs it is measured on, and the command."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hgtrain.cli.main import main
from hgtrain.tools.repeatability.detectors import MISSING_OPENCV, best_points, classical_detector
from hgtrain.tools.repeatability.evaluation import OUTPUTS, score_detector
from hgtrain.tools.repeatability.pairs import (
    Pair,
    make_pairs,
    project,
    random_homography,
    warp,
)
from hgtrain.tools.repeatability.score import pair_repeatability
from tests.checkpoints import train_checkpoint

pytest.importorskip("skimage", reason="the photographs are scikit-image's")

SIZE = 64
TRANSLATION = np.array([[1.0, 0.0, 5.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
"""Moves every point 5 px to the right."""


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny squeeze network trained a few steps at 64 px."""
    path = tmp_path_factory.mktemp("repeatability") / "tiny.ckpt"
    train_checkpoint(path)
    return path


def test_every_point_is_repeated_under_the_identity():
    points = np.random.default_rng(0).uniform(0, SIZE, (50, 2))
    score = pair_repeatability(points, points, np.eye(3), (SIZE, SIZE), (SIZE, SIZE))
    assert (score.visible_a, score.repeated_a, score.repeated_b) == (50, 50, 50)
    assert score.repeatability == 1.0


def test_a_detector_on_an_unchanged_image_repeats_itself():
    pytest.importorskip("cv2")
    image = make_pairs(["camera"], SIZE, 1, seed=0)[0].image_a
    pair = Pair("camera", "illumination", 0, image, image.copy(), np.eye(3))
    (score,) = score_detector(classical_detector("harris"), [pair], 40, 2, 4, 3.0)
    assert score["points_a"] == 40 and score["repeatability"] == 1.0


def test_a_hand_built_pair_scores_exactly():
    """A 5 px translation: of A's points one lands on a B point, one 1.5 px off (repeated), one
    5 px off (not); B's last point maps to x = -3, outside A, and counts nowhere."""
    points_a = np.array([[10.0, 10.0], [20.0, 20.0], [30.0, 30.0]])
    points_b = np.array([[15.0, 10.0], [26.5, 20.0], [40.0, 30.0], [2.0, 50.0]])
    score = pair_repeatability(points_a, points_b, TRANSLATION, (SIZE, SIZE), (SIZE, SIZE), 3.0)
    assert (score.visible_a, score.visible_b) == (3, 3)
    assert (score.repeated_a, score.repeated_b) == (2, 2)
    assert score.repeatability == pytest.approx(4 / 6)


def test_only_points_that_map_inside_the_other_image_count():
    """Under the translation, A's points right of x = 59 leave B and B's points left of x = 5
    leave A: they are neither visible nor misses. With a border of 2 px, a point mapped into the
    last 2 px of the other image counts as outside too."""
    points_a = np.array([[30.0, 30.0], [58.0, 30.0], [61.0, 30.0], [62.0, 10.0]])
    points_b = np.array([[35.0, 30.0], [63.0, 30.0], [3.0, 40.0], [1.0, 20.0]])
    score = pair_repeatability(points_a, points_b, TRANSLATION, (SIZE, SIZE), (SIZE, SIZE))
    assert (score.visible_a, score.visible_b, score.repeated_a, score.repeated_b) == (2, 2, 2, 2)
    assert score.repeatability == 1.0
    bordered = pair_repeatability(
        points_a, points_b, TRANSLATION, (SIZE, SIZE), (SIZE, SIZE), border=2
    )
    assert (bordered.visible_a, bordered.visible_b) == (1, 2)


def test_the_warp_moves_a_dot_to_where_the_homography_maps_it():
    """A bright Gaussian dot at a sub-pixel place in A appears in B at ``H`` of that place."""
    size, dot = 128, np.array([50.3, 71.8])
    ys, xs = np.mgrid[0:size, 0:size] + 0.5
    blob = 255 * np.exp(-((xs - dot[0]) ** 2 + (ys - dot[1]) ** 2) / (2 * 2.0**2))
    image = np.repeat(blob.round().astype(np.uint8)[:, :, None], 3, axis=2)
    for seed in range(5):
        homography = random_homography(np.random.default_rng(seed), size)
        weights = warp(image, homography)[:, :, 0].astype(np.float64)
        weights[weights < 20] = 0
        found = [(xs * weights).sum() / weights.sum(), (ys * weights).sum() / weights.sum()]
        np.testing.assert_allclose(found, project(dot, homography)[0], atol=0.3)


def test_viewpoint_changes_show_only_the_photo_and_are_seeded():
    """B's corners map inside A (no empty borders); the same seed gives the same pairs, whichever
    other photographs are chosen."""
    pairs = make_pairs(["camera", "coins"], SIZE, 2, seed=3)
    assert [(p.photo, p.change) for p in pairs] == [
        ("camera", "viewpoint"), ("camera", "viewpoint"),
        ("camera", "illumination"), ("camera", "illumination"),
        ("coins", "viewpoint"), ("coins", "viewpoint"),
        ("coins", "illumination"), ("coins", "illumination"),
    ]  # fmt: skip
    frame = np.array([[0, 0], [SIZE, 0], [SIZE, SIZE], [0, SIZE]], dtype=np.float64)
    for pair in pairs[:2]:
        corners = project(frame, np.linalg.inv(pair.homography))
        assert corners.min() >= -1e-9 and corners.max() <= SIZE + 1e-9
        assert not np.allclose(pair.homography, np.eye(3))
    again = make_pairs(["coins"], SIZE, 2, seed=3)
    for first, second in zip(pairs[4:], again, strict=True):
        np.testing.assert_array_equal(first.image_b, second.image_b)
        np.testing.assert_array_equal(first.homography, second.homography)
    assert np.array_equal(pairs[2].homography, np.eye(3))
    assert not np.array_equal(pairs[2].image_a, pairs[2].image_b)


def test_best_points_keeps_the_strongest_apart_and_off_the_border():
    points = np.array([[10.2, 10.0], [11.0, 11.0], [30.0, 30.0], [2.0, 30.0], [40.0, 40.0]])
    scores = np.array([0.9, 1.0, 0.5, 2.0, 0.1])
    kept = best_points((points, scores), (SIZE, SIZE), count=2, radius=2, border=4)
    np.testing.assert_array_equal(kept, [[11.0, 11.0], [30.0, 30.0]])


def test_the_command_writes_the_table_the_json_and_the_plot(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    pytest.importorskip("cv2")
    output = tmp_path / "out"
    command = ["repeatability", "--ckpt_path", str(checkpoint), "--photos", "camera", "coins"]
    command += ["--pairs", "1", "--size", "64", "--points", "40", "--output", str(output)]
    main(command)
    printed = capsys.readouterr().out
    assert "| network |" in printed and "| fast |" in printed
    results = json.loads((output / "repeatability.json").read_text())
    assert results["settings"]["points"] == 40 and results["settings"]["photos"] == [
        "camera",
        "coins",
    ]
    assert len(results["pairs"]) == 4
    rows = {(r["detector"], r["change"]): r for r in results["summary"]}
    assert len(rows) == 4 * 2
    assert all(
        0 <= r["repeatability"] <= 1 and 0 < r["points_per_image"] <= 40 for r in rows.values()
    )
    pair = results["pairs"][0]
    assert set(pair["scores"]) == {"network", "harris", "shi-tomasi", "fast"}
    assert len(pair["homography"]) == 3
    assert (output / "repeatability.md").read_text() in printed
    assert Image.open(output / "repeatability.png").size == (640, 400)
    with pytest.raises(SystemExit) as refused:
        main(command)
    assert refused.value.code == 2
    assert "exists; pass --overwrite true" in capsys.readouterr().err
    main([*command, "--overwrite", "true", "--detectors", "harris"])
    assert set(json.loads((output / "repeatability.json").read_text())["pairs"][0]["scores"]) == {
        "harris"
    }
    assert sorted(p.name for p in output.iterdir()) == sorted(OUTPUTS)


def test_a_size_the_hourglass_cannot_take_is_one_line(checkpoint: Path, tmp_path: Path):
    with pytest.raises(SystemExit) as error:
        main(["repeatability", "--ckpt_path", str(checkpoint), "--detectors", "network",
              "--size", "72", "--output", str(tmp_path)])  # fmt: skip
    message = str(error.value)
    assert message.startswith("hgtrain repeatability: Input height 72") and "\n" not in message


def test_without_opencv_the_classical_detectors_name_the_extra(
    checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setitem(sys.modules, "cv2", None)  # import cv2 fails
    with pytest.raises(SystemExit) as error:
        main(["repeatability", "--ckpt_path", str(checkpoint), "--output", str(tmp_path)])
    assert str(error.value) == f"hgtrain repeatability: {MISSING_OPENCV}"
    assert 'pip install "hgtrain[classical]"' in str(error.value) and "\n" not in str(error.value)
    assert not list(tmp_path.iterdir())
    main(["repeatability", "--ckpt_path", str(checkpoint), "--detectors", "network",
          "--photos", "coins", "--pairs", "1", "--size", "64", "--output", str(tmp_path)])  # fmt: skip
    assert (tmp_path / "repeatability.json").is_file()
