"""The downstream tasks of the transfer benchmark: what their images hold, and their sets on disk."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hgtrain.data.generator import downstream
from hgtrain.data.generator.downstream import (
    DOWNSTREAM_TASKS,
    MAX_ROTATION,
    cube,
    render_task_image,
    rotated_rectangle,
)
from hgtrain.data.generator.shapes import ShapeRules
from hgtrain.data.loading.coco_format import read_keypoint_set
from hgtrain.data.loading.datamodule import KeypointDataModule
from hgtrain.errors import ConfigError
from hgtrain.tools.transfer import sets as task_sets
from hgtrain.tools.transfer.sets import prepare_task_sets

RULES = ShapeRules()


def renders(task: str, count: int, size: int = 96):
    return [
        render_task_image(DOWNSTREAM_TASKS[task], np.random.default_rng([3, i]), size, i)
        for i in range(count)
    ]


@pytest.mark.parametrize("task", list(DOWNSTREAM_TASKS))
def test_an_image_is_a_pure_function_of_its_seed(task):
    first, again = renders(task, 2), renders(task, 2)
    for a, b in zip(first, again, strict=True):
        assert np.array_equal(a.image, b.image) and np.array_equal(a.keypoints, b.keypoints)
    assert not np.array_equal(first[0].image, first[1].image)


def test_a_rotated_rectangle_names_its_corners_in_its_own_frame():
    rng = np.random.default_rng(0)
    for _ in range(200):
        shape = rotated_rectangle(rng, 40.0, RULES)
        upper_left, upper_right, lower_right, lower_left = shape.keypoints[np.argsort(shape.labels)]
        top_edge = upper_right - upper_left
        angle = np.degrees(np.arctan2(top_edge[1], top_edge[0]))
        assert abs(angle) <= MAX_ROTATION + 1e-6
        turn = np.radians(-angle)
        back = np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
        centre = shape.keypoints.mean(axis=0)
        signs = np.sign(
            (np.stack([upper_left, upper_right, lower_right, lower_left]) - centre) @ back.T
        )
        assert signs.tolist() == [[-1, -1], [1, -1], [1, 1], [-1, 1]]
        assert np.isclose(np.dot(top_edge, lower_left - upper_left), 0.0, atol=1e-6)


def test_quads_hold_whole_separate_rectangles_with_far_apart_corners():
    for sample in renders("quads", 40):
        rectangles = [i for i, kind in enumerate(sample.kinds) if kind == "rectangle"]
        for index in rectangles:
            assert sorted(sample.labels[sample.object_ids == index].tolist()) == [0, 1, 2, 3]
        gaps = np.linalg.norm(sample.keypoints[:, None] - sample.keypoints[None], axis=-1)
        np.fill_diagonal(gaps, np.inf)
        assert gaps.min() >= DOWNSTREAM_TASKS["quads"].min_distance


def test_a_cube_shows_three_faces_and_their_seven_vertices():
    rng = np.random.default_rng(1)
    shapes = [s for s in (cube(rng, 60.0, RULES) for _ in range(100)) if s is not None]
    assert len(shapes) > 50
    for shape in shapes:
        assert len(shape.fills) == 3 and len(shape.keypoints) == 7
        corners = np.concatenate([fill[0] for fill in shape.fills])
        for point in shape.keypoints:  # every keypoint is a corner of a painted face
            assert np.linalg.norm(corners - point, axis=1).min() < 1e-9
        extent = shape.box[2:] - shape.box[:2]
        assert np.isclose(extent.max(), 60.0)


def test_cubes_in_front_hide_the_vertices_behind_them(monkeypatch):
    samples = renders("cubes", 60)
    counts = [
        int((sample.object_ids == i).sum())
        for sample in samples
        for i, kind in enumerate(sample.kinds)
        if kind == "cube"
    ]
    assert max(counts) == 7 and min(counts) < 7  # some cubes are partly covered
    for sample in samples:
        gaps = np.linalg.norm(sample.keypoints[:, None] - sample.keypoints[None], axis=-1)
        np.fill_diagonal(gaps, np.inf)
        assert len(sample.keypoints) < 2 or gaps.min() >= DOWNSTREAM_TASKS["cubes"].min_distance


def test_a_cube_vertex_under_a_nearer_cube_is_not_labelled():
    task = DOWNSTREAM_TASKS["cubes"]
    back = cube(np.random.default_rng(5), 40.0, RULES).moved(np.array([40.0, 40.0]))
    front = cube(np.random.default_rng(6), 40.0, RULES).moved(np.array([45.0, 45.0]))
    image = np.full((3, 96, 96), 128.0, np.float32)
    coverage = downstream.paint_shape(np.random.default_rng(0), image, front, task.min_contrast)
    kept = downstream._hide_behind([back], front, coverage, (96, 96), task.min_distance)[0]
    inside = [
        p
        for p in back.keypoints
        if front.box[0] < p[0] < front.box[2] and front.box[1] < p[1] < front.box[3]
    ]
    assert inside and len(kept.keypoints) < len(back.keypoints)
    for point in kept.keypoints:
        assert np.linalg.norm(front.keypoints - point, axis=1).min() >= task.min_distance


@pytest.mark.parametrize("task", list(DOWNSTREAM_TASKS))
def test_task_sets_are_coco_folders_that_read_back_as_rendered(task, tmp_path):
    sets = prepare_task_sets(task, tmp_path, train_size=6, test_size=3, image_size=64, seed=4)
    train, test = read_keypoint_set(sets.train), read_keypoint_set(sets.test)
    assert train.class_names == test.class_names == DOWNSTREAM_TASKS[task].class_names
    assert (len(train.records), len(test.records)) == (6, 3)
    rendered = list(task_sets.render_split(DOWNSTREAM_TASKS[task], "train", 6, 64, 4))
    for record, sample in zip(train.records, rendered, strict=True):
        assert np.allclose(np.sort(record.keypoints, axis=0), np.sort(sample.keypoints, axis=0))
    assert (
        json.loads((sets.train / "annotations.json").read_text())["info"]["downstream"]["task"][
            "name"
        ]
        == task
    )


def test_task_sets_are_reused_rewritten_when_damaged_and_never_replace_a_foreign_folder(tmp_path):
    sets = prepare_task_sets("quads", tmp_path, train_size=4, test_size=2, image_size=64)
    stamp = (sets.train / "annotations.json").stat().st_mtime_ns
    prepare_task_sets("quads", tmp_path, train_size=4, test_size=2, image_size=64)
    assert (sets.train / "annotations.json").stat().st_mtime_ns == stamp
    (sets.test / "images" / "000001.png").write_bytes(b"broken")
    prepare_task_sets("quads", tmp_path, train_size=4, test_size=2, image_size=64)
    assert (
        read_keypoint_set(sets.test).records
        and (sets.test / "images" / "000001.png").stat().st_size > 6
    )
    mine = tmp_path / "mine"
    (mine / "quads" / "train").mkdir(parents=True)
    (mine / "quads" / "train" / "notes.txt").write_text("my own data")
    with pytest.raises(ValueError, match="was not written by hgtrain"):
        prepare_task_sets("quads", mine, train_size=4, test_size=2, image_size=64)
    assert (mine / "quads" / "train" / "notes.txt").read_text() == "my own data"


def test_the_photo_task_without_scikit_image_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setattr(task_sets, "photos_available", lambda: False)
    with pytest.raises(ValueError, match=r"hgtrain\[photos\]"):
        prepare_task_sets("cubes", tmp_path, train_size=2, test_size=2, image_size=64)
    with pytest.raises(ValueError, match="unknown task 'wires'; choose from quads, cubes"):
        prepare_task_sets("wires", tmp_path)


def test_train_subset_takes_the_first_images_of_the_training_folder(tmp_path):
    sets = prepare_task_sets("quads", tmp_path, train_size=6, test_size=2, image_size=64)
    folders = {"train_dir": str(sets.train), "val_dir": str(sets.test), "test_dir": str(sets.test)}
    data = KeypointDataModule(image_size=64, train_subset=4, hflip=0.0, **folders)
    data.setup("fit")
    assert len(data.datasets["train"]) == 4
    first = [record.path for record in read_keypoint_set(sets.train).records[:4]]
    assert [record.path for record in data.datasets["train"].records] == first
    with pytest.raises(ConfigError, match="train_subset=9: is more than the 6 images"):
        KeypointDataModule(image_size=64, train_subset=9, **folders).setup("fit")
    with pytest.raises(ConfigError, match=r"train_subset=4: takes images of data\.train_dir"):
        KeypointDataModule(image_size=64, train_subset=4)


def test_an_own_training_set_smaller_than_a_batch_is_a_config_error(tmp_path):
    sets = prepare_task_sets("quads", tmp_path, train_size=6, test_size=2, image_size=64)
    data = KeypointDataModule(
        image_size=64,
        batch_size=8,
        num_workers=0,
        train_dir=str(sets.train),
        val_dir=str(sets.test),
    )
    data.setup("fit")
    with pytest.raises(
        ConfigError, match=r"^data\.batch_size=8: is more than the 6 training images"
    ):
        data.train_dataloader()
