import json
import math
import re
import warnings

import numpy as np
import pytest

from hgtrain.data.generator.photometric import PhotometricNoise
from hgtrain.data.loading.coco_format import (
    MAX_IGNORED_FRACTION,
    DatasetFormatError,
    IgnoredKeypointsWarning,
    load_sample,
    read_keypoint_set,
    write_keypoint_set,
)
from hgtrain.data.loading.folder import KeypointFolder
from hgtrain.data.loading.synthetic import SyntheticKeypoints
from hgtrain.data.loading.transforms import ResizePad
from hgtrain.data.sample import CLASS_NAMES

from .own_sets import inside, points, write_points_set


@pytest.fixture
def written(tmp_path):
    dataset = SyntheticKeypoints("val", 5, 48, noise=PhotometricNoise())
    samples = [dataset.sample(i) for i in range(len(dataset))]
    write_keypoint_set(tmp_path, samples, CLASS_NAMES)
    return tmp_path, samples


def corrupt(folder, edit):
    path = folder / "annotations.json"
    document = json.loads(path.read_text())
    edit(document)
    path.write_text(json.dumps(document))
    return path


def test_round_trip_is_exact(written):
    folder, samples = written
    keypoint_set = read_keypoint_set(folder)
    assert keypoint_set.class_names == CLASS_NAMES
    assert "pixel_convention" in keypoint_set.info
    for record, sample in zip(keypoint_set.records, samples, strict=True):
        loaded = load_sample(record)
        np.testing.assert_array_equal(loaded.image, sample.image)
        np.testing.assert_array_equal(loaded.keypoints, sample.keypoints)
        np.testing.assert_array_equal(loaded.labels, sample.labels)
        np.testing.assert_array_equal(loaded.object_ids, sample.object_ids)
        np.testing.assert_array_equal(loaded.boxes, sample.boxes)
        assert loaded.kinds == sample.kinds and loaded.image_id == sample.image_id


def test_box_categories_are_standard_coco_and_shapes_take_any_count(written):
    folder, _ = written
    document = json.loads((folder / "annotations.json").read_text())
    keypoints = {c["name"]: c["keypoints"] for c in document["categories"]}
    assert keypoints.get("box", ["top_left", "bottom_right"]) == ["top_left", "bottom_right"]
    assert all(names in (["corner"], []) for kind, names in keypoints.items() if kind != "box")


def test_folder_dataset_serves_the_written_images(written):
    folder, samples = written
    image, target = KeypointFolder(folder, ResizePad(48))[2]
    assert np.array_equal(image.numpy(), samples[2].image)
    assert len(target["keypoints"]) == len(samples[2].keypoints)


def test_invalid_json_is_reported_with_the_file_name(written):
    folder, _ = written
    (folder / "annotations.json").write_text('{"images": [}')
    with pytest.raises(DatasetFormatError, match=r"annotations\.json: not valid JSON.*line 1"):
        read_keypoint_set(folder)


def test_missing_image_is_reported_with_both_names(written):
    folder, _ = written
    (folder / "images" / "000003.png").unlink()
    with pytest.raises(DatasetFormatError, match=r"annotations\.json: images\[3\].*000003\.png"):
        read_keypoint_set(folder)


def test_missing_annotation_file_is_reported(tmp_path):
    with pytest.raises(DatasetFormatError, match=r"annotations\.json: file not found"):
        read_keypoint_set(tmp_path)


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda d: d.pop("annotations"), "top level: missing field 'annotations'"),
        (lambda d: d["images"][0].pop("width"), r"images\[0\]: missing field 'width'"),
        (lambda d: d["annotations"][0].update(bbox=[1, 2, 3]), r"annotations\[0\]: bbox"),
        (
            lambda d: d["annotations"][0].update(keypoints=[1.0, 2.0]),
            r"annotations\[0\]: keypoints must be numbers x, y, v",
        ),
        (lambda d: d["annotations"][0].update(image_id=999), "image_id 999 is not in images"),
        (lambda d: d["categories"][0].update(keypoints="corner"), "must be list"),
        (lambda d: d["images"][1].update(id="two"), r"field 'id' must be int"),
    ],
)
def test_wrong_fields_are_rejected_with_the_file_and_entry(written, edit, problem):
    folder, _ = written
    corrupt(folder, edit)
    with pytest.raises(DatasetFormatError, match=problem) as error:
        read_keypoint_set(folder)
    assert str(folder / "annotations.json") in str(error.value)


def test_box_corner_keypoints_must_sit_on_the_bbox(tmp_path):
    image = np.zeros((3, 20, 20), np.uint8)
    from hgtrain.data.sample import Sample

    sample = Sample(
        image,
        np.array([(2.0, 3.0), (10.0, 12.0)], np.float32),
        np.array([0, 1]),
        np.array([0, 0]),
        np.array([(2.0, 3.0, 10.0, 12.0)], np.float32),
        ["box"],
        0,
    )
    write_keypoint_set(tmp_path, [sample], CLASS_NAMES)
    corrupt(tmp_path, lambda d: d["annotations"][0]["keypoints"].__setitem__(0, 5.0))
    with pytest.raises(DatasetFormatError, match="not the bbox corner"):
        read_keypoint_set(tmp_path)


def test_unreadable_image_is_reported_with_its_name(written):
    folder, _ = written
    (folder / "images" / "000001.png").write_bytes(b"not a png")
    record = read_keypoint_set(folder).records[1]
    with pytest.raises(DatasetFormatError, match=r"000001\.png: cannot read the image"):
        load_sample(record)


def test_own_data_with_standard_coco_keypoints_is_read(tmp_path):
    """A user's set: JPEG image, a category with named keypoints, hidden and absent points."""
    from PIL import Image

    (tmp_path / "photos").mkdir()
    Image.new("RGB", (30, 20), (9, 9, 9)).save(tmp_path / "photos" / "a.jpg")
    document = {
        "images": [{"id": 7, "file_name": "photos/a.jpg", "width": 30, "height": 20}],
        "categories": [{"id": 1, "name": "kite", "keypoints": ["nose", "tail"]}],
        "annotations": [
            {
                "id": 1,
                "image_id": 7,
                "category_id": 1,
                "bbox": [1, 2, 20, 10],
                "keypoints": [3.5, 4.5, 2, 0, 0, 0],
            },
            {
                "id": 2,
                "image_id": 7,
                "category_id": 1,
                "bbox": [5, 5, 4, 4],
                "keypoints": [6, 6, 1, 8.25, 7, 2],
            },
        ],
    }
    (tmp_path / "annotations.json").write_text(json.dumps(document))
    keypoint_set = read_keypoint_set(tmp_path)
    assert keypoint_set.class_names == ("nose", "tail")
    record = keypoint_set.records[0]
    np.testing.assert_array_equal(record.keypoints, [(3.5, 4.5), (6, 6), (8.25, 7)])
    np.testing.assert_array_equal(record.labels, [0, 0, 1])
    np.testing.assert_array_equal(record.object_ids, [0, 1, 1])
    assert load_sample(record).image.shape == (3, 20, 30)


def test_keypoints_outside_their_image_are_left_out_with_one_warning(tmp_path):
    write_points_set(tmp_path, inside(19), {"keypoints": points((5, 5), (60, 10.5))})
    with pytest.warns(IgnoredKeypointsWarning) as caught:
        keypoint_set = read_keypoint_set(tmp_path)
    assert [str(w.message) for w in caught] == [
        f"{tmp_path / 'annotations.json'}: 1 keypoint in 1 image lies outside its image "
        "(e.g. annotations[1]: (60.0, 10.5) in a 40 x 30 image); they are ignored "
        "(1 of 21 keypoints, 4.76 %)"
    ]
    assert keypoint_set.num_keypoints == 20
    assert [60.0, 10.5] not in keypoint_set.records[0].keypoints.tolist()


def test_keypoints_on_the_image_edges_are_inside(tmp_path):
    """Pixel i covers [i, i+1): the image is [0, W] x [0, H], its far edges included."""
    write_points_set(tmp_path, {"keypoints": points((0, 0), (40, 30), (40, 0), (0, 30))})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_keypoint_set(tmp_path).num_keypoints == 4


def test_keypoints_of_a_box_outside_the_image_are_left_out_with_it(tmp_path):
    boxless = {"bbox": [45, 5, 0, 0], "keypoints": points((45, 5))}
    write_points_set(tmp_path, inside(19), boxless)
    with pytest.warns(
        IgnoredKeypointsWarning,
        match=r"1 keypoint belongs to 1 annotation whose "
        r"bbox has no area inside the image \(e\.g\. annotations\[1\]: bbox "
        r"\[45\.0, 5\.0, 0\.0, 0\.0\] in a 40 x 30 image\); they are ignored",
    ):
        record = read_keypoint_set(tmp_path).records[0]
    assert len(record.boxes) == 1 and len(record.keypoints) == 19


def test_more_than_a_tenth_of_the_keypoints_outside_is_an_error(tmp_path):
    outside = [{"keypoints": points((-3, 4))}, {"keypoints": points((5, 31)), "image_id": 1}]
    write_points_set(tmp_path, inside(8), *outside, images=2)
    with pytest.raises(DatasetFormatError) as error:
        read_keypoint_set(tmp_path)
    assert str(error.value) == (
        f"{tmp_path / 'annotations.json'}: 2 keypoints in 2 images lie outside their image "
        "(e.g. annotations[1]: (-3.0, 4.0) in a 40 x 30 image); that is 2 of 10 keypoints, 20 %, "
        "more than the 10 % that may be ignored: check the keypoint coordinates and the images' "
        "width and height"
    )
    assert MAX_IGNORED_FRACTION == 0.1


def test_strict_reading_allows_no_keypoint_outside(tmp_path):
    write_points_set(tmp_path, inside(99), {"keypoints": points((41, 4))})
    with pytest.raises(
        DatasetFormatError, match=r"image\); strict=True allows none \(1 of 100 keypoints, 1 %\)"
    ):
        read_keypoint_set(tmp_path, strict=True)


@pytest.mark.parametrize(
    ("annotation", "problem"),
    [
        (
            {"keypoints": [1, 2, 2, math.nan, 3, 2]},
            r"annotations\[0\]: keypoint 1 \(corner\) x is NaN \(keypoints\[3\]\)",
        ),
        (
            {"keypoints": [1, -math.inf, 2]},
            r"annotations\[0\]: keypoint 0 \(corner\) y is -Infinity \(keypoints\[1\]\)",
        ),
        (
            {"keypoints": [1, 2, None]},
            r"annotations\[0\]: keypoint 0 \(corner\) v is null, not a number \(keypoints\[2\]\)",
        ),
        (
            {"keypoints": [], "bbox": [0, 0, math.inf, 3]},
            r"annotations\[0\]: bbox w is Infinity \(bbox\[2\]\)",
        ),
        (
            {"keypoints": [], "bbox": [0, "1", 3, 3]},
            r"annotations\[0\]: bbox y is \"1\", not a number \(bbox\[1\]\)",
        ),
    ],
)
def test_values_that_are_no_finite_numbers_are_named(tmp_path, annotation, problem):
    write_points_set(tmp_path, annotation)  # json writes NaN and Infinity as JavaScript does
    with pytest.raises(DatasetFormatError, match=problem + "; keypoints and bbox must be finite"):
        read_keypoint_set(tmp_path)


def point_image_at(folder, file_name: str) -> None:
    """Make the set's only image entry name ``file_name``."""
    corrupt(folder, lambda d: d["images"][0].update(file_name=file_name))


@pytest.mark.parametrize(
    ("file_name", "how"),
    [
        ("../elsewhere/private.png", "climbs out of the set's folder with '..'"),
        ("images/../../elsewhere/private.png", "climbs out of the set's folder with '..'"),
        ("{elsewhere}/private.png", "is an absolute path"),
        ("linked/private.png", "leads through a symlink to {elsewhere}/private.png"),
    ],
)
def test_an_image_outside_the_set_folder_is_refused_naming_the_entry(tmp_path, file_name, how):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    image = tmp_path / "set" / "images" / "0.png"
    write_points_set(tmp_path / "set", inside(3))
    image.rename(elsewhere / "private.png")
    (tmp_path / "set" / "linked").symlink_to(elsewhere)
    point_image_at(tmp_path / "set", file_name.format(elsewhere=elsewhere))
    expected = f"images[0]: file_name '{file_name}' {how}".format(elsewhere=elsewhere)
    with pytest.raises(DatasetFormatError, match=re.escape(expected)) as error:
        read_keypoint_set(tmp_path / "set")
    assert "data.image_roots" in str(error.value)
    assert len(read_keypoint_set(tmp_path / "set", image_roots=[elsewhere]).records) == 1


def test_symlinks_and_dots_that_stay_inside_the_folder_are_fine(tmp_path):
    folder = write_points_set(tmp_path / "set", inside(3))
    (folder / "same").symlink_to(folder / "images")
    point_image_at(folder, "same/../images/./0.png")
    assert read_keypoint_set(folder).records[0].path.name == "0.png"
    point_image_at(folder, "same/0.png")
    assert read_keypoint_set(folder).num_keypoints == 3
