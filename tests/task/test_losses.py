"""Focal, offset and combined heatmap losses."""

from types import SimpleNamespace

import pytest
import torch

from hgtrain.task.losses import HeatmapLoss, focal_loss, offset_loss
from hgtrain.task.targets import KeypointTargets, encode_targets


def _direct_focal(logits, target, alpha=2.0, beta=4.0):
    """The formula as written in CornerNet, on probabilities (float64)."""
    p = torch.sigmoid(logits.double())
    y = target.double()
    positive = y == 1
    pos = ((1 - p) ** alpha * torch.log(p))[positive].sum()
    neg = ((1 - y) ** beta * p**alpha * torch.log(1 - p))[~positive].sum()
    return -(pos + neg) / max(int(positive.sum()), 1)


def _heatmap_targets(batch=2, classes=3, size=16):
    generator = torch.Generator().manual_seed(1)
    targets = []
    for _ in range(batch):
        points = torch.rand(5, 2, generator=generator) * size * 4
        labels = torch.randint(0, classes, (5,), generator=generator)
        targets.append({"keypoints": points, "labels": labels, "sizes": torch.full((5, 2), 24.0)})
    return encode_targets(targets, classes, (size * 4, size * 4), (size, size), min_slots=8)


def test_focal_loss_equals_direct_formula_on_ordinary_logits():
    targets = _heatmap_targets()
    logits = torch.randn(targets.heatmap.shape, generator=torch.Generator().manual_seed(2)) * 3
    expected = _direct_focal(logits, targets.heatmap)
    assert focal_loss(logits, targets.heatmap).item() == pytest.approx(expected.item(), rel=1e-5)


def test_focal_loss_without_positives_is_the_negative_sum():
    logits = torch.randn(1, 1, 4, 4)
    target = torch.full((1, 1, 4, 4), 0.5)
    expected = _direct_focal(logits, target)
    assert focal_loss(logits, target).item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize("saturation", [30.0, -30.0])
def test_focal_loss_and_gradient_stay_finite_for_saturated_logits(saturation):
    targets = _heatmap_targets()
    logits = torch.full(targets.heatmap.shape, saturation, requires_grad=True)
    loss = focal_loss(logits, targets.heatmap)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    # Wrong and confident cells (positives at -30, zero-target cells at +30) get a full gradient of
    # 1 / #positives, where the clamped sigmoid of the original gives 0.
    num_pos = (targets.heatmap == 1).sum().item()
    assert logits.grad.abs().max().item() == pytest.approx(1 / num_pos, rel=1e-4)


def test_focal_loss_in_bf16_autocast_is_finite_float32_and_close_to_float():
    targets = _heatmap_targets()
    conv = torch.nn.Conv2d(3, 3, 1)
    features = torch.randn(targets.heatmap.shape) * 20
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = conv(features)
        assert logits.dtype == torch.bfloat16
        loss = focal_loss(logits, targets.heatmap)
    loss.backward()
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in conv.parameters())
    reference = focal_loss(logits.float(), targets.heatmap)
    assert loss.item() == pytest.approx(reference.item(), rel=1e-6)


def test_focal_loss_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="differ"):
        focal_loss(torch.zeros(1, 2, 4, 4), torch.zeros(1, 3, 4, 4))


def _offset_targets():
    indices = torch.tensor([[5, 10, 0]])
    offsets = torch.tensor([[[0.25, 0.5], [0.75, 0.0], [0.0, 0.0]]])
    mask = torch.tensor([[True, True, False]])
    return KeypointTargets(torch.zeros(1, 1, 4, 4), indices, offsets, mask)


def test_offset_loss_is_zero_when_prediction_matches_at_gt_cells():
    targets = _offset_targets()
    pred = torch.full((1, 2, 4, 4), 9.0)  # garbage away from the GT cells is ignored
    pred.view(1, 2, 16)[0, :, 5] = torch.tensor([0.25, 0.5])
    pred.view(1, 2, 16)[0, :, 10] = torch.tensor([0.75, 0.0])
    assert offset_loss(pred, targets) == 0


@pytest.mark.parametrize(("kind", "expected"), [("l1", 0.4 * 4 / 2), ("smooth_l1", 0.08 * 4 / 2)])
def test_offset_loss_sums_coordinates_and_averages_over_keypoints(kind, expected):
    targets = _offset_targets()
    pred = torch.zeros(1, 2, 16)
    pred[0, :, 5] = torch.tensor([0.25, 0.5]) + 0.4
    pred[0, :, 10] = torch.tensor([0.75, 0.0]) - 0.4
    loss = offset_loss(pred.view(1, 2, 4, 4), targets, kind)
    assert loss.item() == pytest.approx(expected)


def test_offset_loss_without_keypoints_is_zero_not_nan():
    targets = _offset_targets()._replace(mask=torch.zeros(1, 3, dtype=torch.bool))
    assert offset_loss(torch.randn(1, 2, 4, 4), targets) == 0


def _head_output(stacks, targets, merg_shapes=()):
    batch, classes, h, w = targets.heatmap.shape
    return SimpleNamespace(
        heatmaps=[torch.randn(batch, classes, h, w, requires_grad=True) for _ in range(stacks)],
        offsets=[torch.rand(batch, 2, h, w, requires_grad=True) for _ in range(stacks)],
        merg_logits=[
            [torch.randn(batch, 1, *shape, requires_grad=True) for shape in merg_shapes]
            for _ in range(stacks)
        ],
    )


def test_heatmap_loss_averages_every_stack_and_names_components():
    targets = _heatmap_targets()
    outputs = _head_output(2, targets)
    result = HeatmapLoss(focal_weight=1.0, offset_weight=0.5)(outputs, targets)
    assert set(result.components) == {
        "focal/stack0",
        "focal/stack1",
        "offset/stack0",
        "offset/stack1",
        "focal",
        "offset",
    }
    focal = [focal_loss(h, targets.heatmap) for h in outputs.heatmaps]
    offset = [offset_loss(o, targets) for o in outputs.offsets]
    expected = (focal[0] + focal[1]) / 2 + 0.5 * (offset[0] + offset[1]) / 2
    assert result.total.item() == pytest.approx(expected.item(), rel=1e-6)
    assert result.components["focal/stack1"].item() == pytest.approx(focal[1].item())
    result.total.backward()
    assert all(h.grad is not None for h in outputs.heatmaps + outputs.offsets)
    assert not any(value.requires_grad for value in result.components.values())


def test_heatmap_loss_adds_merg_terms_summed_over_scales():
    targets = _heatmap_targets()
    shapes = [(4, 4), (8, 8), (16, 16)]
    merg_targets = [(torch.rand(2, 1, *shape) > 0.9).float() for shape in shapes]
    outputs = _head_output(3, targets, shapes)
    result = HeatmapLoss(merg_weight=0.5)(outputs, targets, merg_targets)
    assert "merg/stack2/scale1" in result.components
    per_stack = [
        sum(focal_loss(x, y) for x, y in zip(scales, merg_targets, strict=True))
        for scales in outputs.merg_logits
    ]
    assert result.components["merg"].item() == pytest.approx(sum(per_stack).item() / 3, rel=1e-6)
    without_merg = result.components["focal"] + result.components["offset"]
    assert result.total.item() == pytest.approx(
        (without_merg + 0.5 * result.components["merg"]).item(), rel=1e-6
    )


def test_heatmap_loss_asks_for_merg_targets_when_heads_predict_them():
    targets = _heatmap_targets()
    with pytest.raises(ValueError, match="merg_targets"):
        HeatmapLoss()(_head_output(1, targets, [(4, 4)]), targets)


def test_heatmap_loss_rejects_unknown_offset_kind():
    with pytest.raises(ValueError, match="offset_kind"):
        HeatmapLoss(offset_kind="l2")


# The original's normalisation (CornerNet-Lite core/models/py_utils/losses.py, CornerNet_Loss and
# CornerNet_Saccade_Loss): the top-left and bottom-right focal losses are each divided by their
# own positives and added; so are their offset losses; the attention loss of each scale is averaged
# over stacks and the total is divided by the stacks again.

LN2 = torch.log(torch.tensor(2.0)).item()


def test_per_class_focal_normalisation_adds_each_class_over_its_own_positives():
    # One image, two classes (top-left, bottom-right), four cells; logits 0 so p = 1/2 everywhere:
    # a positive costs (1/2)^2 ln 2; a negative at y costs (1 - y)^4 (1/2)^2 ln 2.
    target = torch.tensor([[[[1.0, 0.0, 0.5, 0.0]], [[1.0, 1.0, 0.0, 0.0]]]])
    logits = torch.zeros_like(target)
    top_left = (0.25 + 0.25 + 0.0625 * 0.25 + 0.25) * LN2 / 1  # 1 positive
    bottom_right = (0.25 + 0.25 + 0.25 + 0.25) * LN2 / 2  # 2 positives
    per_class = focal_loss(logits, target, normalization="per_class")
    assert per_class.item() == pytest.approx(top_left + bottom_right, rel=1e-6)
    everything = focal_loss(logits, target)
    assert everything.item() == pytest.approx((top_left + 2 * bottom_right) / 3, rel=1e-6)


def test_per_class_offset_normalisation_adds_each_class_over_its_own_keypoints():
    # Two top-left keypoints (errors (0.2, 0) and (0.4, 0.2)) and one bottom-right (0.6, 0):
    # smooth L1 below 1 is d^2 / 2, so the top-left sum is 0.02 + 0.08 + 0.02 = 0.12 over 2
    # keypoints and the bottom-right one 0.18 over 1.
    targets = KeypointTargets(
        heatmap=torch.zeros(1, 2, 4, 4),
        indices=torch.tensor([[0, 1, 2, 0]]),
        offsets=torch.tensor([[[0.2, 0.0], [0.4, 0.2], [0.6, 0.0], [0.0, 0.0]]]),
        mask=torch.tensor([[True, True, True, False]]),
        labels=torch.tensor([[0, 0, 1, 0]]),
    )
    pred = torch.zeros(1, 2, 4, 4)
    per_class = offset_loss(pred, targets, normalization="per_class")
    assert per_class.item() == pytest.approx(0.12 / 2 + 0.18 / 1, rel=1e-6)
    assert offset_loss(pred, targets).item() == pytest.approx(0.30 / 3, rel=1e-6)


def test_per_class_focal_loss_is_the_sum_of_each_class_alone():
    targets = _heatmap_targets(classes=2)  # every class has keypoints
    logits = torch.randn(targets.heatmap.shape, generator=torch.Generator().manual_seed(3))
    by_class = [focal_loss(logits[:, c : c + 1], targets.heatmap[:, c : c + 1]) for c in range(2)]
    expected = sum(by_class)
    per_class = focal_loss(logits, targets.heatmap, normalization="per_class")
    torch.testing.assert_close(per_class, expected)


def test_encoded_targets_label_their_offset_slots():
    targets = _heatmap_targets(batch=2, classes=3)
    assert targets.labels.shape == targets.mask.shape
    assert (targets.labels[~targets.mask] == 0).all()
    assert set(targets.labels[targets.mask].tolist()) <= {0, 1, 2}


def test_a_merg_weight_of_one_over_the_stacks_is_the_original_attention_weight():
    generator = torch.Generator().manual_seed(0)
    stacks, sizes = 3, [(4, 4), (8, 8), (16, 16)]
    targets = _heatmap_targets(batch=2, classes=3)
    merg_targets = [(torch.rand(2, 1, *s, generator=generator) > 0.9).float() for s in sizes]
    outputs = SimpleNamespace(
        heatmaps=[torch.randn(targets.heatmap.shape, generator=generator) for _ in range(stacks)],
        offsets=[torch.randn(2, 2, 16, 16, generator=generator) for _ in range(stacks)],
        merg_logits=[
            [torch.randn(2, 1, *s, generator=generator) for s in sizes] for _ in range(stacks)
        ],
    )
    with_mergs = HeatmapLoss(merg_weight=1 / stacks)(outputs, targets, merg_targets).total
    without = HeatmapLoss(merg_weight=0.0)(outputs, targets, merg_targets).total
    # The original: per scale, the attention focal loss summed over stacks / stacks; the scales
    # added; the whole loss / stacks.
    original = (
        sum(
            sum(_direct_focal(outputs.merg_logits[s][j], merg_targets[j]) for s in range(stacks))
            / stacks
            for j in range(len(sizes))
        )
        / stacks
    )
    assert (with_mergs - without).item() == pytest.approx(original.item(), rel=1e-5)


def test_per_class_offsets_are_read_at_each_keypoints_own_class():
    # Corner pooling's offsets: one map per class ([B, C, 2, h, w]); class 0's slots read class 0.
    targets = KeypointTargets(
        heatmap=torch.zeros(1, 2, 4, 4),
        indices=torch.tensor([[5, 5]]),
        offsets=torch.tensor([[[0.25, 0.5], [0.75, 0.0]]]),
        mask=torch.tensor([[True, True]]),
        labels=torch.tensor([[0, 1]]),
    )
    pred = torch.full((1, 2, 2, 4, 4), 9.0)
    pred.view(1, 2, 2, 16)[0, 0, :, 5] = torch.tensor([0.25, 0.5])
    pred.view(1, 2, 2, 16)[0, 1, :, 5] = torch.tensor([0.75, 0.0])
    assert offset_loss(pred, targets).item() == 0.0
    pred.view(1, 2, 2, 16)[0, 1, 0, 5] = 1.75  # class 1's x off by 1: smooth L1 0.5, over 2
    assert offset_loss(pred, targets).item() == pytest.approx(0.25)


def test_ignored_cells_cost_nothing_but_positives_still_count():
    # The example above with class 0's y = 0.5 negative ignored: (0.25 + 0.25 + 0.25) ln 2 / 1.
    target = torch.tensor([[[[1.0, 0.0, 0.5, 0.0]], [[1.0, 1.0, 0.0, 0.0]]]])
    ignore = torch.zeros_like(target, dtype=torch.bool)
    ignore[0, 0, 0, 2] = True
    ignore[0, 1, 0, 0] = True  # an ignored positive: no loss, still one of the 2 positives
    logits = torch.zeros_like(target)
    loss = focal_loss(logits, target, normalization="per_class", ignore=ignore)
    assert loss.item() == pytest.approx(0.75 * LN2 + 0.75 * LN2 / 2, rel=1e-6)


def test_ignored_keypoints_become_ignore_regions_not_targets():
    keypoints = torch.tensor([[10.0, 10.0], [40.0, 40.0]])
    target = {
        "keypoints": keypoints,
        "labels": torch.tensor([0, 1]),
        "sizes": torch.full((2, 2), 16.0),
        "ignore": torch.tensor([False, True]),
    }
    encoded = encode_targets([target], 2, (64, 64), (16, 16), sigma=1.0)
    assert encoded.heatmap[0, 0, 2, 2] == 1 and encoded.heatmap[0, 1].max() == 0
    assert encoded.mask.sum() == 1 and encoded.labels[0, 0] == 0
    assert encoded.ignore[0, 1, 10, 10] and encoded.ignore[0, 1, 9:12, 9:12].all()
    assert not encoded.ignore[0, 0].any()
    without = encode_targets(
        [{k: v for k, v in target.items() if k != "ignore"}], 2, (64, 64), (16, 16), sigma=1.0
    )
    assert without.ignore is None and without.mask.sum() == 2
