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
    return encode_targets(targets, classes, (size * 4, size * 4), (size, size), max_keypoints=8)


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
