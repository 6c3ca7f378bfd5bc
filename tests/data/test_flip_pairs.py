"""Flip pairs: a horizontal flip swaps the classes that name a side, and only those."""

import numpy as np
import pytest
import torch
from torchvision.transforms import v2

from hgtrain.data.loading.transforms import (
    HorizontalFlip,
    KeypointTransform,
    RandomScaleCrop,
    VerticalFlip,
    check_flip_pairs,
)
from hgtrain.data.sample import Sample

CLASSES = ("upper_left", "upper_right", "lower_right", "lower_left", "centre")
PAIRS = [("upper_left", "upper_right"), ("lower_left", "lower_right")]
WIDTH, HEIGHT = 60, 40
QUAD = [(10.0, 5.0), (30.0, 5.0), (30.0, 20.0), (10.0, 20.0), (20.0, 12.5)]


def quad() -> Sample:
    """A rectangle's four corners, each its own class, and its centre."""
    return Sample(
        image=np.zeros((3, HEIGHT, WIDTH), np.uint8),
        keypoints=np.array(QUAD, np.float32),
        labels=np.arange(5),
        object_ids=np.zeros(5, np.int64),
        boxes=np.array([(10.0, 5.0, 30.0, 20.0)], np.float32),
        kinds=["quad"],
        image_id=0,
    )


def labelled(pipeline: v2.Transform, flip_pairs=PAIRS, seed: int = 0) -> dict[str, tuple]:
    """Class name -> (x, y) of each keypoint after ``pipeline``."""
    transform = KeypointTransform(pipeline, CLASSES, flip_pairs=flip_pairs)
    _, target = transform(quad(), np.random.default_rng(seed))
    return {
        CLASSES[label]: tuple(point.tolist())
        for point, label in zip(target["keypoints"], target["labels"], strict=True)
    }


def test_a_horizontal_flip_swaps_the_labels_of_each_pair():
    flipped = labelled(HorizontalFlip(p=1.0))
    assert flipped["upper_left"] == (WIDTH - 30.0, 5.0)  # was the upper right corner
    assert flipped["upper_right"] == (WIDTH - 10.0, 5.0)
    assert flipped["lower_left"] == (WIDTH - 30.0, 20.0)
    assert flipped["lower_right"] == (WIDTH - 10.0, 20.0)
    assert flipped["centre"] == (WIDTH - 20.0, 12.5)  # in no pair: its label stays


def test_without_a_flip_or_without_pairs_labels_stay():
    assert labelled(v2.Identity()) == dict(zip(CLASSES, QUAD, strict=True))
    unpaired = labelled(HorizontalFlip(p=1.0), flip_pairs=())
    assert unpaired["upper_left"] == (WIDTH - 10.0, 5.0)


def test_a_vertical_flip_swaps_no_horizontal_pair():
    flipped = labelled(VerticalFlip(p=1.0))
    assert flipped["upper_left"] == (10.0, HEIGHT - 5.0)


def test_labels_follow_the_sides_through_random_crops_and_flips():
    pipeline = v2.Compose([RandomScaleCrop(48, (0.8, 1.2)), HorizontalFlip(p=0.5)])
    flipped = 0
    for seed in range(12):
        points = labelled(pipeline, seed=seed)
        assert points["upper_left"][0] < points["upper_right"][0]
        assert points["lower_left"][0] < points["lower_right"][0]
        unpaired = labelled(
            pipeline, flip_pairs=(), seed=seed
        )  # the same draw, labels as they were
        flipped += unpaired["upper_left"][0] > unpaired["upper_right"][0]
    assert 0 < flipped < 12


@pytest.mark.parametrize(
    ("pairs", "problem"),
    [
        ([("upper_left", "upper_lft")], "'upper_lft' is not a keypoint class"),
        ([("top_left", "upper_left")], "'top_left' is a box corner"),
        ([("upper_left", "upper_right"), ("upper_left", "lower_left")], "more than one pair"),
        ([("upper_left", "upper_left")], "not a pair of two different"),
        ([("upper_left",)], "not a pair of two different"),
    ],
)
def test_pairs_that_do_not_pair_two_classes_are_refused_naming_the_name(pairs, problem):
    with pytest.raises(ValueError, match=problem):
        check_flip_pairs(pairs, (*CLASSES, "top_left"))


def test_the_flip_pairs_are_checked_when_the_transform_is_built():
    with pytest.raises(ValueError, match="'upper' is not a keypoint class"):
        KeypointTransform(v2.Identity(), CLASSES, flip_pairs=[("upper", "lower")])
    assert torch.equal(
        torch.from_numpy(KeypointTransform(v2.Identity(), CLASSES, flip_pairs=PAIRS).flipped_label),
        torch.tensor([1, 0, 3, 2, 4]),
    )
