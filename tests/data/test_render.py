import numpy as np
import pytest

from hgtrain.data.generator.scene import SceneConfig, render_scene
from hgtrain.data.loading.synthetic import SyntheticKeypoints

FLAT_BOXES = SceneConfig(
    kinds={"box": 1.0},
    backgrounds={"smooth": 1.0},
    objects=(3, 3),
    occluders=(0, 0),
    background_spread=0.0,
    background_saturation=0.0,
    background_detail=0.0,
)


def edge_positions(profile: np.ndarray, background: float, colour: float) -> tuple[float, float]:
    """Sub-pixel start and end of a run of ``colour`` on ``background`` from one line of pixels."""
    coverage = np.clip((profile - background) / (colour - background), 0, 1)
    covered = np.flatnonzero(coverage > 1e-3)
    first, last = covered[0], covered[-1]
    return first + 1 - coverage[first], last + coverage[last]


def test_box_corners_match_the_rendered_edges_to_a_fiftieth_of_a_pixel():
    dataset = SyntheticKeypoints("val", 8, 96, scene=FLAT_BOXES)
    errors = []
    for index in range(len(dataset)):
        sample = dataset.sample(index)
        image = sample.image.astype(np.float64)
        background = np.median(image, axis=(1, 2))
        for box_id, (x0, y0, x1, y1) in enumerate(sample.boxes):
            mine = sample.object_ids == box_id
            top_left = sample.keypoints[mine & (sample.labels == 0)][0]
            bottom_right = sample.keypoints[mine & (sample.labels == 1)][0]
            row, column = int((y0 + y1) / 2), int((x0 + x1) / 2)
            channel = np.argmax(np.abs(image[:, row, column] - background))
            colour, flat = image[channel, row, column], background[channel]
            # Lines through the box's centre, 3 px past its edges (other objects are >= 4 px away).
            left, right = max(int(x0) - 3, 0), int(np.ceil(x1)) + 3
            top, bottom = max(int(y0) - 3, 0), int(np.ceil(y1)) + 3
            start_x, end_x = edge_positions(image[channel, row, left:right], flat, colour)
            start_y, end_y = edge_positions(image[channel, top:bottom, column], flat, colour)
            errors += [left + start_x - top_left[0], top + start_y - top_left[1]]
            errors += [left + end_x - bottom_right[0], top + end_y - bottom_right[1]]
    assert len(errors) >= 60
    # uint8 rounding alone allows 0.5 / contrast <= 0.017 px (contrast >= 30 grey levels)
    assert np.abs(errors).max() < 0.05
    assert abs(np.mean(errors)) < 0.005


def test_objects_keep_their_distance_and_stay_inside_the_image():
    config = SceneConfig(objects=(6, 6))
    for index in range(20):
        sample = render_scene(np.random.default_rng(index), 128, 128, config)
        points, owners = sample.keypoints, sample.object_ids
        assert np.all((points >= config.margin) & (points <= 128 - config.margin))
        distance = np.linalg.norm(points[:, None] - points[None], axis=-1)
        different = owners[:, None] != owners[None]
        assert np.all(distance[different] >= config.min_distance)
        same = ~different & ~np.eye(len(points), dtype=bool)
        assert np.all(distance[same] >= config.min_distance)


def test_every_keypoint_lies_in_its_objects_box():
    sample = render_scene(np.random.default_rng(3), 128, 128, SceneConfig(objects=(5, 5)))
    boxes = sample.boxes[sample.object_ids]
    assert np.all(sample.keypoints >= boxes[:, :2] - 1e-4)
    assert np.all(sample.keypoints <= boxes[:, 2:] + 1e-4)
    assert len(sample.kinds) == len(sample.boxes)


def test_box_keypoints_are_the_box_corners():
    config = SceneConfig(kinds={"box": 1.0}, objects=(4, 4), occluders=(0, 0))
    sample = render_scene(np.random.default_rng(5), 128, 128, config)
    top_left = sample.keypoints[sample.labels == 0]
    bottom_right = sample.keypoints[sample.labels == 1]
    np.testing.assert_allclose(top_left, sample.boxes[:, :2], atol=1e-4)
    np.testing.assert_allclose(bottom_right, sample.boxes[:, 2:], atol=1e-4)


def test_bad_scene_settings_are_rejected():
    with pytest.raises(ValueError, match="unknown kinds"):
        SceneConfig(kinds={"triangle": 1.0})
    with pytest.raises(ValueError, match="object_size"):
        SceneConfig(object_size=(0.2, 1.5))
