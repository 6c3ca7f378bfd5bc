"""Heatmap decoding: NMS, top-K over classes, offsets and the pixel convention."""

import pytest
import torch

from hgtrain.task.decode import decode_keypoints

LOW = -10.0


def _logits(batch=1, classes=2, size=8):
    return torch.full((batch, classes, size, size), LOW)


def test_peak_decodes_to_cell_plus_offset_times_stride():
    logits = _logits()
    logits[0, 1, 3, 5] = 2.0
    offsets = torch.zeros(1, 2, 8, 8)
    offsets[0, :, 3, 5] = torch.tensor([0.25, 0.75])
    (found,) = decode_keypoints(logits, offsets, (32, 32), top_k=1)
    assert found["keypoints"].tolist() == [[(5 + 0.25) * 4, (3 + 0.75) * 4]]
    assert found["labels"].tolist() == [1]
    assert found["scores"].item() == pytest.approx(torch.sigmoid(torch.tensor(2.0)).item())


def test_without_offsets_the_cell_centre_is_used():
    logits = _logits()
    logits[0, 0, 0, 7] = 1.0
    (found,) = decode_keypoints(logits, None, (32, 64), top_k=1)
    assert found["keypoints"].tolist() == [[7.5 * 8, 0.5 * 4]]


def test_non_divisible_scale_follows_output_over_input():
    logits = _logits(size=128)
    logits[0, 0, 100, 27] = 1.0
    (found,) = decode_keypoints(logits, None, (511, 511), top_k=1)
    assert found["keypoints"][0].tolist() == pytest.approx([27.5 * 511 / 128, 100.5 * 511 / 128])


def test_nms_keeps_only_local_maxima():
    logits = _logits(classes=1)
    logits[0, 0, 4, 4] = 3.0
    logits[0, 0, 4, 5] = 2.0  # neighbour of a stronger peak: suppressed
    logits[0, 0, 4, 7] = 1.0  # two cells away: kept
    (found,) = decode_keypoints(logits, None, (8, 8), top_k=10, score_threshold=0.01)
    assert found["keypoints"].tolist() == [[4.5, 4.5], [7.5, 4.5]]


def test_top_k_ranks_over_classes_and_cells_in_score_order():
    logits = _logits(classes=3)
    logits[0, 2, 1, 1] = 1.0
    logits[0, 0, 6, 6] = 3.0
    logits[0, 1, 1, 6] = 2.0
    (found,) = decode_keypoints(logits, None, (8, 8), top_k=2)
    assert found["labels"].tolist() == [0, 1]
    assert found["scores"][0] > found["scores"][1]


def test_score_threshold_is_applied_per_image():
    logits = _logits(batch=2, classes=1)
    logits[0, 0, 2, 2] = 1.0
    logits[0, 0, 6, 6] = -1.0
    logits[1, 0, 5, 5] = -2.0
    found = decode_keypoints(logits, None, (8, 8), top_k=5, score_threshold=0.3)
    assert [len(image["scores"]) for image in found] == [1, 0]
    assert found[1]["keypoints"].shape == (0, 2)


def test_top_k_larger_than_the_map_is_capped():
    found = decode_keypoints(torch.zeros(2, 1, 2, 2), None, (8, 8), top_k=100)
    assert [len(image["scores"]) for image in found] == [4, 4]  # a flat map: every cell is a max


@pytest.mark.parametrize("kernel", [0, 2])
def test_even_nms_kernel_is_rejected(kernel):
    with pytest.raises(ValueError, match="odd"):
        decode_keypoints(_logits(), None, (32, 32), nms_kernel=kernel)


def test_offsets_out_of_range_keep_the_keypoint_in_its_cell():
    heatmap = torch.full((1, 1, 4, 4), -10.0)
    heatmap[0, 0, 0, 0] = 5.0
    offsets = torch.full((1, 2, 4, 4), -3.0)
    (result,) = decode_keypoints(heatmap, offsets, (16, 16), top_k=1)
    assert result["keypoints"].tolist() == [[0.0, 0.0]]


def test_per_class_offsets_are_read_at_the_detections_class():
    # Corner pooling gives each class its stream's offsets: [B, C, 2, h, w].
    logits = _logits()
    logits[0, 0, 3, 5] = 2.0
    logits[0, 1, 3, 5] = 1.0
    offsets = torch.zeros(1, 2, 2, 8, 8)
    offsets[0, 0, :, 3, 5] = torch.tensor([0.25, 0.75])
    offsets[0, 1, :, 3, 5] = torch.tensor([0.5, 0.125])
    (found,) = decode_keypoints(logits, offsets, (32, 32), top_k=2)
    assert found["labels"].tolist() == [0, 1]
    assert found["keypoints"].tolist() == [[5.25 * 4, 3.75 * 4], [5.5 * 4, 3.125 * 4]]
