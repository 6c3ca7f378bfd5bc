import numpy as np
import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from hgtrain.data.loading.transforms import (
    HorizontalFlip,
    IgnoreRule,
    KeypointTransform,
    ObjectCrop,
    RandomScaleCrop,
    RandomWindowCrop,
    ResizePad,
    VerticalFlip,
)
from hgtrain.data.sample import CLASS_NAMES, Sample

TOP_LEFT, BOTTOM_RIGHT, CORNER = 0, 1, 2
HEIGHT, WIDTH = 40, 60


def scene() -> Sample:
    """A box (10.25, 5.5)-(30.75, 20) with its two corners, and a triangle with three corners."""
    image = np.zeros((3, HEIGHT, WIDTH), np.uint8)
    image[0, 3, 7] = 255  # a marker pixel: column 7, row 3
    triangle = [(40.5, 30.0), (55.0, 35.25), (45.0, 38.0)]
    return Sample(
        image=image,
        keypoints=np.array([(10.25, 5.5), (30.75, 20.0), *triangle], np.float32),
        labels=np.array([TOP_LEFT, BOTTOM_RIGHT, CORNER, CORNER, CORNER]),
        object_ids=np.array([0, 0, 1, 1, 1]),
        boxes=np.array([(10.25, 5.5, 30.75, 20.0), (40.5, 30.0, 55.0, 38.0)], np.float32),
        kinds=["box", "polygon"],
        image_id=4,
    )


def run(pipeline, sample=None, seed=0):
    transform = KeypointTransform(pipeline, CLASS_NAMES)
    return transform(sample or scene(), np.random.default_rng(seed))


def points_of(target, label):
    return target["keypoints"][target["labels"] == label]


def test_flipped_box_keeps_top_left_label():
    image, target = run(HorizontalFlip(p=1.0))
    # the box spans x in [10.25, 30.75): flipped it spans [60 - 30.75, 60 - 10.25)
    torch.testing.assert_close(points_of(target, TOP_LEFT), torch.tensor([[29.25, 5.5]]))
    torch.testing.assert_close(points_of(target, BOTTOM_RIGHT), torch.tensor([[49.75, 20.0]]))
    torch.testing.assert_close(target["boxes"][0], torch.tensor([29.25, 5.5, 49.75, 20.0]))
    assert image[0, 3, WIDTH - 1 - 7] == 255  # the image flipped the same way


def test_vertically_flipped_box_keeps_its_classes():
    image, target = run(VerticalFlip(p=1.0))
    torch.testing.assert_close(points_of(target, TOP_LEFT), torch.tensor([[10.25, 20.0]]))
    torch.testing.assert_close(points_of(target, BOTTOM_RIGHT), torch.tensor([[30.75, 34.5]]))
    assert image[0, HEIGHT - 1 - 3, 7] == 255


def test_flipped_generic_corners_follow_our_pixel_convention():
    _, target = run(HorizontalFlip(p=1.0))
    expected = torch.tensor([(60 - 40.5, 30.0), (60 - 55.0, 35.25), (60 - 45.0, 38.0)])
    torch.testing.assert_close(points_of(target, CORNER), expected)
    owners = target["object_ids"][target["labels"] == CORNER]
    torch.testing.assert_close(
        target["sizes"][target["labels"] == CORNER][0], torch.tensor([14.5, 8.0])
    )
    assert owners.tolist() == [1, 1, 1]


def test_double_flip_is_the_identity():
    _, once = run(v2.Identity())
    _, twice = run(
        v2.Compose([HorizontalFlip(1.0), VerticalFlip(1.0), HorizontalFlip(1.0), VerticalFlip(1.0)])
    )
    for key in once:
        torch.testing.assert_close(once[key], twice[key])


def test_scaling_maps_keypoints_like_the_image():
    # longer side 60 -> 60 x 2: the image doubles to 80 x 120 and its top-left 60 x 60 is kept
    image, target = run(RandomScaleCrop(60, scale=(2.0, 2.0), random_offset=False))
    assert image.shape == (3, 60, 60)
    # the marker pixel [7, 8) x [3, 4) becomes [14, 16) x [6, 8)
    assert image[0, 6:8, 14:16].min() > 100 and image[0, 5, 14] < 100 and image[0, 6, 13] < 100
    torch.testing.assert_close(points_of(target, TOP_LEFT), torch.tensor([[20.5, 11.0]]))
    assert BOTTOM_RIGHT not in target["labels"].tolist()  # (61.5, 40) is outside


def test_letterbox_fits_the_longer_side_and_pads():
    image, target = run(ResizePad(20))
    assert image.shape == (3, 20, 20)
    assert image[:, 14:].max() == 0  # 40 x 60 -> 13 x 20, padded below
    # each axis scales by its own ratio, like the image: 20 / 60 and 13 / 40
    torch.testing.assert_close(
        points_of(target, TOP_LEFT), torch.tensor([[10.25 * 20 / 60, 5.5 * 13 / 40]])
    )


def test_letterbox_padding_repeats_the_border_so_no_edge_appears():
    flat = tv_tensors.Image(torch.full((3, HEIGHT, WIDTH), 128, dtype=torch.uint8))
    assert ResizePad(20)(flat).eq(128).all()  # a flat image stays flat: nothing to detect
    pixels = torch.randint(0, 256, (3, HEIGHT, WIDTH), dtype=torch.uint8)
    image = ResizePad(20)(tv_tensors.Image(pixels))  # 40 x 60 -> 13 x 20, padded below
    assert torch.equal(image[:, 13:], image[:, 12:13].expand(-1, 7, -1))
    assert ResizePad(20, padding_mode="constant")(flat)[:, 13:].eq(0).all()


def test_random_crop_padding_on_any_side_repeats_the_border():
    flat = scene()
    flat.image[:] = 128
    for seed in range(4):  # 40 x 60 -> 13 x 20 at a random place in the 40 x 40 window
        image, _ = run(RandomScaleCrop(40, scale=(0.5, 0.5)), flat, seed)
        assert image.eq(128).all()


def test_the_padding_mode_changes_pixels_only_never_keypoints_or_boxes():
    for seed in range(4):
        _, edge = run(RandomScaleCrop(40, scale=(0.5, 0.5)), seed=seed)
        _, zeros = run(RandomScaleCrop(40, scale=(0.5, 0.5), padding_mode="constant"), seed=seed)
        for key in edge:
            torch.testing.assert_close(edge[key], zeros[key])


def test_an_unknown_padding_mode_is_named():
    with pytest.raises(ValueError, match='padding_mode must be "edge" or "constant"'):
        ResizePad(32, padding_mode="reflect")


def test_keypoints_that_leave_the_image_are_dropped():
    # factor 1.5 * 30 / 60 = 0.75: the image becomes 30 x 45 and its left 30 columns are kept
    _, target = run(RandomScaleCrop(30, scale=(1.5, 1.5), random_offset=False))
    assert CORNER not in target["labels"].tolist()  # the triangle starts at x = 40.5 * 0.75
    assert target["boxes"].shape == (1, 4)  # and its box is gone with it
    assert torch.all(target["keypoints"] >= 0) and torch.all(target["keypoints"] < 30)


def test_a_corner_on_the_image_border_is_kept():
    on_border = scene()
    on_border.keypoints[1] = (WIDTH, HEIGHT)  # the box reaches the bottom-right corner
    on_border.boxes[0, 2:] = (WIDTH, HEIGHT)
    _, target = run(v2.Identity(), on_border)
    torch.testing.assert_close(
        points_of(target, BOTTOM_RIGHT), torch.tensor([[float(WIDTH), float(HEIGHT)]])
    )


def test_a_partly_cropped_box_keeps_only_its_visible_corner():
    shifted = scene()
    shifted.keypoints[:2, 0] += 25
    shifted.boxes[0, [0, 2]] += 25  # the box now spans x from 35.25 to 55.75
    # factor 1.5 * 40 / 60 = 1: no resize, a 40 x 40 crop at the top-left
    _, target = run(RandomScaleCrop(40, scale=(1.5, 1.5), random_offset=False), shifted)
    torch.testing.assert_close(points_of(target, TOP_LEFT), torch.tensor([[35.25, 5.5]]))
    assert BOTTOM_RIGHT not in target["labels"].tolist()
    torch.testing.assert_close(target["boxes"][0], torch.tensor([35.25, 5.5, 40.0, 20.0]))
    torch.testing.assert_close(target["sizes"][0], torch.tensor([4.75, 14.5]))


def test_scale_range_must_be_positive():
    with pytest.raises(ValueError, match="scale"):
        RandomScaleCrop(32, scale=(0.0, 1.0))


# CornerNet's crop (CornerNet-Lite core/sample/utils.py, random_crop, then _resize_image in
# core/sample/cornernet.py): a window of input_size * s around a random centre, resized to
# input_size, so objects are zoomed by input_size / int(input_size * s), about 1/s.


def test_a_crop_window_of_scale_s_zooms_by_one_over_s():
    # s = 1.5: a 90 px window around a centre at least 16 px inside holds the whole 60 x 40 image,
    # so every keypoint stays and every distance shrinks by 60 / 90.
    for seed in range(5):
        image, target = run(RandomWindowCrop(60, scales=[1.5]), seed=seed)
        assert image.shape == (3, 60, 60)
        corners = points_of(target, TOP_LEFT), points_of(target, BOTTOM_RIGHT)
        torch.testing.assert_close(corners[1] - corners[0], torch.tensor([[20.5, 14.5]]) * 60 / 90)


def test_a_small_crop_window_zooms_in():
    # s = 0.5: a 30 px window resized to 60 px doubles the box wherever both corners are kept.
    kept = 0
    for seed in range(20):
        _, target = run(RandomWindowCrop(60, scales=[0.5], border=0), seed=seed)
        top_left, bottom_right = points_of(target, TOP_LEFT), points_of(target, BOTTOM_RIGHT)
        if len(top_left) and len(bottom_right):
            torch.testing.assert_close(bottom_right - top_left, torch.tensor([[41.0, 29.0]]))
            kept += 1
    assert kept > 0


def test_the_crop_centre_keeps_the_original_border():
    crop = RandomWindowCrop(511, scales=[1.0], border=128)
    centres = [crop._centre(511) for _ in range(300)]
    assert min(centres) >= 128 and max(centres) < 511 - 128
    small = [crop._centre(64) for _ in range(300)]  # 128 halved until it fits: 16
    assert min(small) >= 16 and max(small) < 48


def test_crop_scales_must_be_positive():
    with pytest.raises(ValueError, match="scales"):
        RandomWindowCrop(32, scales=[0.5, 0.0])


# CornerNet-Saccade's valid masks (core/sample/cornernet_saccade.py): objects under min_scale = 16
# px, or with at most half of their box left after the crop (bbox_overlaps > 0.5), are ignored.


def test_objects_under_the_minimum_size_are_ignored():
    _, target = run_with(v2.Identity(), IgnoreRule(min_size=15.0))
    # the box is 20.5 px wide, the triangle's box 14.5 px
    assert target["ignore"][target["labels"] != CORNER].tolist() == [False, False]
    assert target["ignore"][target["labels"] == CORNER].tolist() == [True, True, True]


def test_objects_mostly_cut_off_by_the_crop_are_ignored():
    shifted = scene()
    shifted.keypoints[:2, 0] += 25
    shifted.boxes[0, [0, 2]] += 25  # the box spans x 35.25-55.75: 4.75 of 20.5 px stay in a 40 crop
    crop = RandomScaleCrop(40, scale=(1.5, 1.5), random_offset=False)
    _, target = run_with(crop, IgnoreRule(min_visible=0.5), shifted)
    assert target["labels"].tolist() == [TOP_LEFT] and target["ignore"].tolist() == [True]
    _, kept = run_with(crop, IgnoreRule(min_visible=0.2), shifted)
    assert kept["ignore"].tolist() == [False]


def test_without_a_rule_targets_have_no_ignore_entry():
    _, target = run(v2.Identity())
    assert "ignore" not in target


def run_with(pipeline, rule, sample=None):
    transform = KeypointTransform(pipeline, CLASS_NAMES, rule)
    return transform(sample or scene(), np.random.default_rng(0))


# CornerNet-Saccade's crop (core/sample/cornernet_saccade.py, ref_scale and crop_image_dets).


def one_box(side: int = 300) -> Sample:
    """A 40 x 30 px box at (100, 120) in a side x side image."""
    box = np.array([(100.0, 120.0, 140.0, 150.0)], np.float32)
    return Sample(
        image=np.zeros((3, side, side), np.uint8),
        keypoints=box.reshape(2, 2),
        labels=np.array([TOP_LEFT, BOTTOM_RIGHT]),
        object_ids=np.array([0, 0]),
        boxes=box,
        kinds=["box"],
        image_id=0,
    )


def test_an_object_crop_rescales_the_object_into_its_size_band_and_keeps_it_whole():
    # 40 px is in the 32-96 band at 255 px: the new longest side is drawn from 32 ... 96.
    crop = ObjectCrop(255, scales=[1.0], reference_probability=1.0, centred_probability=0.0)
    sides = []
    for seed in range(20):
        image, target = run(crop, one_box(), seed=seed)
        assert image.shape == (3, 255, 255)
        top_left, bottom_right = points_of(target, TOP_LEFT), points_of(target, BOTTOM_RIGHT)
        assert len(top_left) == len(bottom_right) == 1  # the window holds the object
        sides.append(float((bottom_right - top_left).max()))
    assert min(sides) >= 31.5 and max(sides) <= 97.0 and max(sides) - min(sides) > 5


def test_a_centred_object_crop_puts_the_object_near_the_middle():
    crop = ObjectCrop(255, scales=[1.0], reference_probability=1.0, centred_probability=1.0)
    for seed in range(10):
        _, target = run(crop, one_box(600), seed=seed)
        centre = target["boxes"][0].view(2, 2).mean(dim=0)
        assert (centre - 127).abs().max() <= 16


def test_without_a_reference_the_image_is_scaled_by_one_of_the_scales():
    crop = ObjectCrop(255, scales=[0.5], reference_probability=0.0)
    _, target = run(crop, one_box(), seed=0)
    top_left, bottom_right = points_of(target, TOP_LEFT), points_of(target, BOTTOM_RIGHT)
    torch.testing.assert_close(bottom_right - top_left, torch.tensor([[20.0, 15.0]]))
