"""PointAP: matching rules, AP integration against hand-computed values, DDP equivalence."""

import math
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from hgtrain import PointAP
from hgtrain.data.loading.folder import KeypointFolder
from hgtrain.data.loading.transforms import ResizePad
from hgtrain.data.sample import CLASS_NAMES
from tests.data.own_sets import points, write_points_set

CORNER = CLASS_NAMES.index("corner")


def _pred(points, scores, labels):
    return {
        "keypoints": torch.as_tensor(points, dtype=torch.float32).reshape(-1, 2),
        "scores": torch.as_tensor(scores, dtype=torch.float32),
        "labels": torch.as_tensor(labels, dtype=torch.long),
    }


def _gt(points, labels):
    return {
        "keypoints": torch.as_tensor(points, dtype=torch.float32).reshape(-1, 2),
        "labels": torch.as_tensor(labels, dtype=torch.long),
    }


def _compute(preds, targets, **kwargs):
    metric = PointAP(**{"num_classes": 1, **kwargs})
    metric.update(preds, targets)
    return metric.compute()


def test_perfect_detections_give_ap_one_zero_error_full_recall():
    gt = [_gt([[10, 10], [30, 12.5]], [0, 1]), _gt([[5, 40]], [1])]
    preds = [_pred([[10, 10], [30, 12.5]], [0.9, 0.8], [0, 1]), _pred([[5, 40]], [0.7], [1])]
    result = _compute(preds, gt, num_classes=2)
    for key in ("map", "map@1", "map@2", "map@4", "ap@1/class_0", "ap/class_1", "recall@1"):
        assert result[key] == 1.0, key
    assert result["loc_error"] == 0.0


def test_no_detections_give_zero_ap_and_recall():
    result = _compute([_pred(torch.zeros(0, 2), [], [])], [_gt([[10, 10]], [0])])
    assert result["map"] == 0.0 and result["recall@4"] == 0.0
    assert math.isnan(result["loc_error"])


def test_known_precision_recall_curve_ranked_across_images():
    # Ranked by score: TP, FP, TP, FP, TP with 4 ground-truth points. Precision 1, 1/2, 2/3, 2/4,
    # 3/5 at recall 1/4, 1/4, 2/4, 2/4, 3/4; envelope 1, 2/3, 2/3, 3/5, 3/5.
    # AP = 1/4 * 1 + 1/4 * 2/3 + 1/4 * 3/5.
    gt = [_gt([[10, 10], [50, 50]], [0, 0]), _gt([[20, 20], [60, 60]], [0, 0])]
    preds = [
        _pred([[10, 10], [90, 90], [50.5, 50]], [0.9, 0.6, 0.5], [0, 0, 0]),
        _pred([[80, 80], [20, 21]], [0.8, 0.7], [0, 0]),
    ]
    result = _compute(preds, gt)
    assert result["map@4"].item() == pytest.approx(0.25 + 0.25 * 2 / 3 + 0.25 * 3 / 5)
    assert result["recall@4"].item() == pytest.approx(3 / 4)
    assert result["loc_error"].item() == pytest.approx((0 + 1 + 0.5) / 3)


def test_distance_thresholds_are_inclusive_input_pixels():
    result = _compute([_pred([[11.5, 10]], [0.9], [0])], [_gt([[10, 10]], [0])])
    assert result["map@1"] == 0.0 and result["map@2"] == 1.0 and result["map@4"] == 1.0
    exact = _compute([_pred([[12, 10]], [0.9], [0])], [_gt([[10, 10]], [0])], thresholds=(2,))
    assert exact["map@2"] == 1.0


def test_duplicate_detections_of_one_point_are_false_positives():
    result = _compute([_pred([[10, 10], [10.2, 10]], [0.9, 0.8], [0, 0])], [_gt([[10, 10]], [0])])
    assert result["map@4"] == 1.0  # the duplicate ranks below the only true positive
    worse = _compute([_pred([[10, 10], [10.2, 10]], [0.8, 0.9], [0, 0])], [_gt([[10, 10]], [0])])
    assert worse["map@4"] == 1.0  # the best-scored one matches; a single point is still found first
    two_gt = _compute(
        [_pred([[10, 10], [10.2, 10]], [0.9, 0.8], [0, 0])], [_gt([[10, 10], [40, 40]], [0, 0])]
    )
    assert two_gt["map@4"].item() == pytest.approx(0.5)


def test_each_detection_takes_the_nearest_unmatched_point():
    # The first detection is 0.5 from B and 1.0 from A: it takes B. The second is 0.3 from B and
    # 1.8 from A: B is taken, so it takes A (within 2 px). Matching the first GT by index would
    # leave B for the second detection and give the same AP, but a larger localisation error.
    gt = [_gt([[10, 10], [11.5, 10]], [0, 0])]
    preds = [_pred([[11, 10], [11.8, 10]], [0.9, 0.8], [0, 0])]
    result = _compute(preds, gt, thresholds=(2,))
    assert result["map@2"] == 1.0
    assert result["loc_error"].item() == pytest.approx((0.5 + 1.8) / 2)


def test_detections_only_match_points_of_their_class():
    result = _compute([_pred([[10, 10]], [0.9], [1])], [_gt([[10, 10]], [0])], num_classes=2)
    assert result["ap@4/class_0"] == 0.0
    assert result["ap@4/class_1"].isnan()  # no ground truth: undefined, left out of the mean
    assert result["map@4"] == 0.0


def test_map_averages_only_classes_with_ground_truth():
    gt = [_gt([[10, 10], [30, 30]], [0, 2])]
    preds = [_pred([[10, 10], [50, 50], [70, 70]], [0.9, 0.8, 0.7], [0, 1, 1])]
    result = _compute(preds, gt, num_classes=3, class_names=["tl", "br", "corner"])
    assert result["ap@4/tl"] == 1.0 and result["ap@4/corner"] == 0.0 and result["ap/br"].isnan()
    assert result["map@4"] == 0.5


def test_without_any_ground_truth_every_value_is_nan_not_a_score():
    """-1 (torchmetrics' "undefined") would pass for a score, e.g. with ModelCheckpoint."""
    preds = [_pred([[10, 10]], [0.9], [1]), _pred(torch.zeros(0, 2), [], [])]
    result = _compute(preds, [_gt(torch.zeros(0, 2), [])] * 2, num_classes=2)
    assert {"map", "map@4", "recall@4", "ap/class_1", "loc_error"} <= set(result)
    assert all(value.isnan() for value in result.values()), result


def test_recall_counts_only_the_top_detections_of_each_image():
    gt = [_gt([[10, 10], [20, 20], [30, 30]], [0, 0, 0])]
    preds = [_pred([[10, 10], [20, 20], [30, 30]], [0.9, 0.8, 0.7], [0, 0, 0])]
    result = _compute(preds, gt, max_detections=2)
    assert result["recall@4"].item() == pytest.approx(2 / 3)
    assert result["map@4"] == 1.0


def test_thresholds_name_the_keys():
    result = _compute([_pred([[1, 1]], [0.5], [0])], [_gt([[1, 1]], [0])], thresholds=(1.5, 3))
    assert {"map@1.5", "map@3", "recall@1.5", "ap@3/class_0"} <= set(result)


def test_equal_scores_form_one_operating_point_whatever_the_order():
    gt = [_gt([[10, 10]], [0]), _gt([[10, 10]], [0])]
    hit, miss = _pred([[10, 10]], [0.5], [0]), _pred([[90, 90]], [0.5], [0])
    first = _compute([hit, miss], gt)
    second = _compute([miss, hit], gt)
    # One point at precision 1/2, recall 1/2 in both orders.
    assert first["map@4"] == second["map@4"] == 0.25


def test_detections_on_the_padding_of_an_own_letterboxed_image_do_not_count(tmp_path):
    # a 40 x 30 own test image letterboxed to 48 x 48 fills the top 48 x 36; below is padding
    folder = write_points_set(tmp_path / "own", {"keypoints": points((10, 10), (40, 30))})
    _, target = KeypointFolder(folder, ResizePad(48))[0]
    assert target["image_size"].tolist() == [36, 48]
    on_image = [[12.0, 12.0], [48.0, 36.5]]  # the second decoded half a pixel past the edge
    on_padding = [[20.0, 40.0], [47.0, 37.5]]
    preds = [_pred(on_padding + on_image, [0.9, 0.8, 0.7, 0.6], [CORNER] * 4)]
    assert _compute(preds, [target], num_classes=3)["map"] == 1.0
    unfitted = {key: value for key, value in target.items() if key != "image_size"}
    assert _compute(preds, [unfitted], num_classes=3)["map"] < 1.0  # false positives


def test_labels_out_of_range_are_rejected():
    with pytest.raises(ValueError, match="labels must be in"):
        _compute([_pred([[1, 1]], [0.5], [3])], [_gt([[1, 1]], [0])], num_classes=2)


def _random_batches(num_images, seed):
    generator = torch.Generator().manual_seed(seed)
    preds, targets = [], []
    for _ in range(num_images):
        n_gt, n_det = torch.randint(0, 6, (2,), generator=generator).tolist()
        gt_points = torch.rand(n_gt, 2, generator=generator) * 32
        jitter = torch.randn(min(n_det, n_gt), 2, generator=generator) * 2
        det_points = torch.cat(
            [
                gt_points[:n_det] + jitter,
                torch.rand(n_det - len(jitter), 2, generator=generator) * 32,
            ]
        )
        scores = (torch.rand(n_det, generator=generator) * 10).round() / 10  # many ties
        preds.append(_pred(det_points, scores, torch.randint(0, 2, (n_det,), generator=generator)))
        targets.append(_gt(gt_points, torch.randint(0, 2, (n_gt,), generator=generator)))
    return preds, targets


def _ddp_worker(rank, world_size, init_file, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size
    )
    preds, targets = _random_batches(12, seed=3)
    # Interleaved shards: the gathered order differs from the single-process order.
    split = PointAP(num_classes=2)
    mine_preds, mine_targets = preds[rank::world_size], targets[rank::world_size]
    for start in range(0, len(mine_preds), 3):  # several updates per rank
        split.update(mine_preds[start : start + 3], mine_targets[start : start + 3])
    lopsided = PointAP(num_classes=2)
    if rank == 0:
        lopsided.update(preds, targets)
    results = {"split": split.compute(), "lopsided": lopsided.compute()}
    torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    dist.destroy_process_group()


def test_two_process_gloo_run_equals_one_process_also_with_an_idle_rank(tmp_path):
    preds, targets = _random_batches(12, seed=3)
    single = PointAP(num_classes=2)
    single.update(preds, targets)
    expected = single.compute()
    assert 0 < expected["map"] < 1

    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    for rank in range(2):
        results = torch.load(tmp_path / f"rank{rank}.pt")
        for run in ("split", "lopsided"):
            assert results[run].keys() == expected.keys()
            for key, value in expected.items():
                assert torch.allclose(results[run][key], value, atol=1e-6, equal_nan=True), (
                    run,
                    key,
                )
