"""Target encoding: CornerNet radius, Gaussian bumps, offsets and the Saccade merg maps."""

import math

import pytest
import torch

from hgtrain.task.decode import decode_keypoints
from hgtrain.task.targets import (
    encode_merg_targets,
    encode_targets,
    gaussian_radius,
    saccade_attention_ranges,
)


def _target(points, labels, sizes=None, boxes=None):
    points = torch.as_tensor(points, dtype=torch.float32).reshape(-1, 2)
    target = {"keypoints": points, "labels": torch.tensor(labels, dtype=torch.long)}
    if sizes is not None:
        target["sizes"] = torch.as_tensor(sizes, dtype=torch.float32).reshape(-1, 2)
    if boxes is not None:
        target["boxes"] = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    return target


# Worked values of the fixed CornerNet-Lite formula for square boxes (output pixels), spec §1.1.
@pytest.mark.parametrize(
    ("side", "overlap", "expected"),
    [
        (8, 0.3, 1.81),
        (8, 0.5, 1.17),
        (8, 0.7, 0.65),
        (16, 0.3, 3.62),
        (16, 0.5, 2.34),
        (32, 0.5, 4.69),
        (32, 0.7, 2.61),
        (64, 0.3, 14.47),
        (64, 0.5, 9.37),
        (64, 0.7, 5.23),
    ],
)
def test_gaussian_radius_matches_worked_values(side, overlap, expected):
    assert gaussian_radius(float(side), float(side), overlap) == pytest.approx(expected, abs=0.005)


def test_gaussian_radius_on_tensors_matches_floats():
    heights = torch.tensor([8.0, 20.0, 50.0])
    widths = torch.tensor([30.0, 20.0, 7.0])
    radii = gaussian_radius(heights, widths, 0.3)
    for h, w, r in zip(heights.tolist(), widths.tolist(), radii.tolist(), strict=True):
        assert r == pytest.approx(gaussian_radius(h, w, 0.3), rel=1e-6)


def test_gaussian_radius_rejects_overlap_outside_unit_interval():
    with pytest.raises(ValueError, match="min_overlap"):
        gaussian_radius(8.0, 8.0, 1.0)


def test_bump_peaks_at_integer_cell_with_cornernet_gaussian():
    # 64x64 box at input 128 -> 32 output: 16x16 cells at 0.3 -> radius int(3.62) = 3.
    encoded = encode_targets(
        [_target([[41.0, 22.6]], [1], sizes=[[64, 64]])], 2, (128, 128), (32, 32)
    )
    heatmap = encoded.heatmap[0, 1]
    assert heatmap[5, 10] == 1.0
    assert torch.count_nonzero(heatmap == 1.0) == 1
    sigma = 7 / 6
    for dy, dx in [(0, 1), (2, -3), (3, 3)]:
        expected = math.exp(-(dx * dx + dy * dy) / (2 * sigma**2))
        assert heatmap[5 + dy, 10 + dx].item() == pytest.approx(expected, rel=1e-5)
    assert heatmap[5, 14] == 0 and heatmap[9, 10] == 0
    assert torch.count_nonzero(heatmap) == 49
    assert torch.count_nonzero(encoded.heatmap[0, 0]) == 0


def test_overlapping_bumps_merge_by_max_not_sum():
    points = [[40.0, 40.0], [48.0, 40.0]]
    encoded = encode_targets(
        [_target(points, [0, 0], sizes=[[64, 64]] * 2)], 1, (128, 128), (32, 32)
    )
    single = encode_targets([_target(points[:1], [0], sizes=[[64, 64]])], 1, (128, 128), (32, 32))
    assert encoded.heatmap.max() == 1.0
    # Between the peaks (cells 10 and 12) both bumps contribute; the max of the two is kept.
    assert encoded.heatmap[0, 0, 10, 11] == single.heatmap[0, 0, 10, 11]


def test_fixed_sigma_ignores_sizes_and_uses_three_sigma_window():
    encoded = encode_targets(
        [_target([[16.0, 16.0]], [0])], 1, (64, 64), (16, 16), sigma=1.0, gaussian_iou=None
    )
    heatmap = encoded.heatmap[0, 0]
    assert heatmap[4, 4] == 1.0
    assert heatmap[4, 5].item() == pytest.approx(math.exp(-0.5))
    assert torch.count_nonzero(heatmap) == 49


def test_sigma_wins_over_default_gaussian_iou():
    target = [_target([[16.0, 16.0]], [0], sizes=[[64, 64]])]
    by_sigma = encode_targets(target, 1, (64, 64), (16, 16), sigma=1.0)
    assert torch.count_nonzero(by_sigma.heatmap) == 49


def test_min_radius_turns_one_cell_targets_into_bumps():
    target = [_target([[16.0, 16.0]], [0], sizes=[[8, 8]])]
    assert torch.count_nonzero(encode_targets(target, 1, (64, 64), (16, 16)).heatmap) == 1
    widened = encode_targets(target, 1, (64, 64), (16, 16), min_radius=1)
    assert torch.count_nonzero(widened.heatmap) == 9


def test_offsets_are_fractional_parts_and_indices_are_flat_cells():
    # Non-divisible scale as CornerNet at 511 -> 128.
    points = [[100.3, 7.9], [510.0, 0.0]]
    encoded = encode_targets(
        [_target(points, [0, 1], sizes=[[20, 20]] * 2)], 2, (511, 511), (128, 128), min_slots=4
    )
    scale = 128 / 511
    for slot, (x, y) in enumerate(points):
        sx, sy = torch.tensor(x) * scale, torch.tensor(y) * scale
        cell_x, cell_y = sx.floor(), sy.floor()
        assert encoded.indices[0, slot] == int(cell_y) * 128 + int(cell_x)
        assert encoded.offsets[0, slot].tolist() == [(sx - cell_x).item(), (sy - cell_y).item()]
    assert encoded.mask[0].tolist() == [True, True, False, False]


def test_an_image_with_more_keypoints_than_slots_gets_a_slot_for_every_one():
    points = [[x + 0.5, y + 0.5] for y in range(0, 64, 4) for x in range(0, 64, 4)]
    encoded = encode_targets(
        [_target(points, [0] * 256), _target([[5.0, 5.0]], [0])],
        1,
        (64, 64),
        (64, 64),
        sigma=1.0,
        min_slots=8,
    )
    assert encoded.indices.shape == (2, 256)
    assert encoded.mask.sum(dim=1).tolist() == [256, 1]
    assert sorted(encoded.indices[0].tolist()) == sorted(int(y) * 64 + int(x) for x, y in points)


def test_keypoints_outside_image_are_dropped_and_far_border_kept():
    target = _target([[-0.5, 10.0], [64.0, 64.0], [30.0, 64.5]], [0, 0, 0], sizes=[[8, 8]] * 3)
    encoded = encode_targets([target], 1, (64, 64), (16, 16), min_slots=3)
    assert encoded.mask[0].tolist() == [True, False, False]
    assert encoded.indices[0, 0] == 15 * 16 + 15
    assert encoded.offsets[0, 0].tolist() == [1.0, 1.0]
    assert torch.count_nonzero(encoded.heatmap) == 1


def test_images_without_keypoints_get_empty_targets():
    empty = _target(torch.zeros(0, 2), [], sizes=torch.zeros(0, 2))
    encoded = encode_targets(
        [empty, _target([[5.0, 5.0]], [0], sizes=[[8, 8]]), empty], 1, (32, 32), (8, 8)
    )
    assert encoded.heatmap.shape == (3, 1, 8, 8)
    assert encoded.mask.sum(dim=1).tolist() == [0, 1, 0]
    assert encoded.heatmap[1, 0, 1, 1] == 1.0


def test_encode_then_decode_recovers_keypoints_within_a_hundredth_of_a_pixel():
    generator = torch.Generator().manual_seed(0)
    grid = torch.stack(torch.meshgrid(torch.arange(4), torch.arange(4), indexing="xy"), -1)
    targets = []
    for _ in range(3):  # cells at least 3 apart so NMS keeps every peak
        cells = grid.reshape(-1, 2)[torch.randperm(16, generator=generator)[:6]] * 3 + 1
        points = (cells + torch.rand(6, 2, generator=generator)) * 4
        labels = torch.randint(0, 3, (6,), generator=generator)
        targets.append({"keypoints": points, "labels": labels, "sizes": torch.full((6, 2), 16.0)})
    encoded = encode_targets(targets, 3, (48, 48), (12, 12))

    offsets_map = torch.zeros(3, 2, 12 * 12)
    for image in range(3):
        index = encoded.indices[image][encoded.mask[image]]
        offsets_map[image][:, index] = encoded.offsets[image][encoded.mask[image]].T
    logits = torch.logit(encoded.heatmap.clamp(1e-4, 1 - 1e-4))
    decoded = decode_keypoints(logits, offsets_map.view(3, 2, 12, 12), (48, 48), top_k=6)

    for target, found in zip(targets, decoded, strict=True):
        distance = torch.cdist(target["keypoints"], found["keypoints"])
        nearest = distance.argmin(dim=1)
        assert distance.min(dim=1).values.max() < 0.01
        assert torch.equal(found["labels"][nearest], target["labels"])


def test_targets_follow_the_device_and_stay_float32():
    encoded = encode_targets([_target([[5.0, 5.0]], [0], sizes=[[8, 8]])], 1, (32, 32), (8, 8))
    assert encoded.heatmap.dtype == torch.float32 and encoded.offsets.dtype == torch.float32
    assert encoded.indices.dtype == torch.int64 and encoded.mask.dtype == torch.bool


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"gaussian_iou": None}, "gaussian_iou .* or sigma"),
        ({"num_classes": 1}, "labels must be in"),
        ({"min_slots": 0}, "min_slots"),
        ({"sigma": 1.0, "min_radius": 2}, "min_radius"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, message):
    arguments = {"num_classes": 2, "input_size": (32, 32), "output_size": (8, 8), **kwargs}
    target = _target([[5.0, 5.0], [9.0, 9.0]], [0, 1], sizes=[[8, 8]] * 2)
    with pytest.raises(ValueError, match=message):
        encode_targets([target], **arguments)


def test_cornernet_radius_without_sizes_says_what_to_add():
    with pytest.raises(ValueError, match="sizes"):
        encode_targets([_target([[5.0, 5.0]], [0])], 1, (32, 32), (8, 8))


def test_merg_keypoint_maps_are_class_agnostic_at_every_scale():
    target = _target([[40.0, 40.0], [80.0, 24.0]], [0, 2], sizes=[[32, 32]] * 2)
    maps = encode_merg_targets([target], (128, 128), [(8, 8), (16, 16), (32, 32)])
    assert [tuple(m.shape) for m in maps] == [(1, 1, 8, 8), (1, 1, 16, 16), (1, 1, 32, 32)]
    assert maps[0][0, 0, 2, 2] == 1.0 and maps[0][0, 0, 1, 5] == 1.0
    assert maps[2][0, 0, 10, 10] == 1.0 and maps[2][0, 0, 6, 20] == 1.0


def test_attention_maps_follow_saccade_size_ranges_with_closed_intervals():
    boxes = [
        [0.0, 0.0, 200.0, 100.0],  # longest 200 -> 1/16 map
        [100.0, 100.0, 150.0, 120.0],  # 50 -> 1/8 map
        [200.0, 40.0, 210.0, 50.0],  # 10 -> 1/4 map
        [10.0, 200.0, 42.0, 210.0],  # exactly 32 -> both 1/8 and 1/4 maps
    ]
    target = _target(torch.zeros(0, 2), [], boxes=boxes)
    maps = encode_merg_targets([target], (255, 255), [(16, 16), (32, 32), (64, 64)], "attention")
    coarse, middle, fine = (m[0, 0] for m in maps)
    assert coarse.nonzero().tolist() == [[3, 6]]  # centre (100, 50) * 16 / 255
    assert sorted(middle.nonzero().tolist()) == [[13, 15], [25, 3]]
    assert sorted(fine.nonzero().tolist()) == [[11, 51], [51, 6]]
    assert coarse.sum() == 1 and middle.sum() == 2 and fine.sum() == 2


def test_attention_ranges_scale_with_the_input_side():
    assert saccade_attention_ranges((510, 255))[1] == (64.0, 192.0)


def test_attention_mode_needs_one_range_per_scale():
    target = _target(torch.zeros(0, 2), [], boxes=[[0, 0, 5, 5]])
    with pytest.raises(ValueError, match="one size range per merg scale"):
        encode_merg_targets([target], (64, 64), [(16, 16)], "attention")
