"""Keypoint heads: original layout and sizes, corner-pool class mapping, all three variants."""

import dataclasses
from types import SimpleNamespace

import pytest
import torch

from hgtrain.models import HourglassBackbone, get_config
from hgtrain.models.heads import HEATMAP_PRIOR_BIAS, KeypointHeads, prediction_head
from hgtrain.task.decode import decode_keypoints
from hgtrain.task.losses import HeatmapLoss
from hgtrain.task.targets import encode_merg_targets, encode_targets


def _count(module):
    return sum(p.numel() for p in module.parameters())


# Per-stack sizes of the original heads (spec §8), 80 COCO classes.
@pytest.mark.parametrize(
    ("kernel", "out_channels", "expected"),
    [(3, 80, 610_640), (3, 2, 590_594), (1, 80, 86_352), (1, 2, 66_306)],
)
def test_prediction_head_matches_original_parameter_counts(kernel, out_channels, expected):
    assert _count(prediction_head(256, out_channels, kernel)) == expected


def test_state_dict_keys_follow_the_original_head_layout():
    heads = KeypointHeads(16, 3, 2, head_dim=8, merg_channels=(24, 16))
    keys = set(heads.state_dict())
    assert {
        "heats.1.0.conv.weight",
        "heats.1.0.conv.bias",
        "heats.1.1.weight",
        "heats.1.1.bias",
        "offsets.0.0.conv.bias",
        "offsets.0.1.weight",
        "merg_heads.1.0.0.conv.weight",
        "merg_heads.1.1.1.bias",
    } <= keys
    assert not any(".bn." in key for key in keys)  # conv with bias, no BatchNorm


NAMES = ["top_left", "bottom_right", "corner"]


def test_heatmap_and_merg_heads_start_at_the_focal_prior():
    heads = KeypointHeads(
        16, 3, 2, head_dim=8, corner_pool=True, merg_channels=(16,), class_names=NAMES
    )
    final_biases = [heads.heats[1][1].bias, heads.tl_heats[0][1].bias, heads.br_heats[1][1].bias]
    final_biases.append(heads.merg_heads[1][0][1].bias)
    for bias in final_biases:
        assert torch.all(bias == HEATMAP_PRIOR_BIAS)
    assert not torch.all(heads.offsets[0][1].bias == HEATMAP_PRIOR_BIAS)


def test_saccade_merg_heads_match_original_attention_head_sizes():
    heads = KeypointHeads(256, 1, 1, merg_channels=(384, 384, 256))
    assert [_count(head) for head in heads.merg_heads[0]] == [885_249, 885_249, 590_337]


@pytest.mark.parametrize("names", [NAMES, ["corner", "bottom_right", "top_left"]])
def test_corner_pool_maps_classes_to_their_streams_by_name(names):
    heads = KeypointHeads(8, 3, 1, head_dim=8, corner_pool=True, class_names=names).eval()
    features = SimpleNamespace(features=[torch.randn(1, 8, 6, 6)], mergs=[])
    before = heads(features)
    with torch.no_grad():
        for stream, shift in (("tl", 1.0), ("br", 2.0), ("plain", 3.0)):
            prefix = "" if stream == "plain" else f"{stream}_"
            getattr(heads, f"{prefix}heats")[0][1].bias += shift
            getattr(heads, "offsets" if stream == "plain" else f"{stream}_offs")[0][1].bias += shift
    after = heads(features)
    expected = [{"top_left": 1.0, "bottom_right": 2.0, "corner": 3.0}[n] for n in names]
    heat_change = (after.heatmaps[0] - before.heatmaps[0]).mean(dim=(0, 2, 3))
    assert heat_change.tolist() == pytest.approx(expected)
    # One offset head per stream, as CornerNet's tl_offs / br_offs: each class reads its own.
    offset_change = (after.offsets[0] - before.offsets[0]).mean(dim=(0, 2, 3, 4))
    assert offset_change.tolist() == pytest.approx(expected)


def test_corner_pool_with_only_box_corners_has_no_plain_heads():
    heads = KeypointHeads(8, 2, 1, head_dim=8, corner_pool=True, class_names=NAMES[:2])
    assert not hasattr(heads, "heats") and not hasattr(heads, "offsets")
    assert {"tl_offs.0.1.weight", "br_offs.0.1.weight"} <= set(heads.state_dict())
    out = heads(SimpleNamespace(features=[torch.randn(2, 8, 5, 5)], mergs=[]))
    assert out.heatmaps[0].shape == (2, 2, 5, 5) and out.offsets[0].shape == (2, 2, 2, 5, 5)


def test_corner_pool_needs_classes_named_as_box_corners():
    with pytest.raises(ValueError, match="classes named 'top_left' and 'bottom_right'"):
        KeypointHeads(8, 2, 1, corner_pool=True, class_names=["a", "b"])
    with pytest.raises(ValueError, match="unnamed"):
        KeypointHeads(8, 2, 1, corner_pool=True)


def test_wrong_number_of_stacks_or_missing_mergs_are_explained():
    heads = KeypointHeads(8, 2, 2, head_dim=8, merg_channels=(8,))
    one_stack = SimpleNamespace(features=[torch.randn(1, 8, 4, 4)], mergs=[])
    with pytest.raises(ValueError, match="2 stacks"):
        heads(one_stack)
    no_mergs = SimpleNamespace(features=[torch.randn(1, 8, 4, 4)] * 2, mergs=[])
    with pytest.raises(ValueError, match="return_mergs=True"):
        heads(no_mergs)


def test_last_stack_only_returns_the_last_stacks_heads():
    heads = KeypointHeads(8, 2, 2, head_dim=8).eval()
    features = SimpleNamespace(
        features=[torch.randn(1, 8, 4, 4), torch.randn(1, 8, 4, 4)], mergs=[]
    )
    full, last = heads(features), heads(features, last_stack_only=True)
    assert len(last.heatmaps) == 1 and torch.equal(last.heatmaps[0], full.heatmaps[1])


def _tiny(name):
    """The variant's structure (stacks, block, unpool, stem, mergs) with 8-16 channels."""
    config = get_config(name)
    dims = [8 + 8 * (i % 2) for i in range(config.n + 1)]
    return dataclasses.replace(config, dims=dims, stem_channels=8, feature_dim=16)


def _batch(input_side, num_classes=3):
    generator = torch.Generator().manual_seed(0)
    targets = []
    for _ in range(2):
        corners = torch.rand(4, 2, generator=generator) * (input_side - 40)
        sizes = torch.rand(4, 2, generator=generator) * 30 + 8
        boxes = torch.cat([corners, corners + sizes], dim=1)
        targets.append(
            {
                "keypoints": torch.cat([boxes[:, :2], boxes[:, 2:], corners + sizes / 2]),
                "labels": torch.tensor([0] * 4 + [1] * 4 + [2] * 4),
                "sizes": sizes.repeat(3, 1),
                "boxes": boxes,
            }
        )
    return torch.randn(2, 3, input_side, input_side, generator=generator), targets


@pytest.mark.parametrize(
    ("variant", "corner_pool"), [("cornernet", True), ("saccade", False), ("squeeze", False)]
)
def test_heads_and_losses_train_on_every_variant(variant, corner_pool):
    torch.manual_seed(0)
    backbone = HourglassBackbone(_tiny(variant))
    heads = KeypointHeads.for_backbone(
        backbone, 3, head_dim=16, corner_pool=corner_pool, class_names=NAMES
    )
    side = 256
    images, targets = _batch(side)
    features = backbone(images)
    out = heads(features)

    stacks, stride = backbone.config.stacks, backbone.config.output_stride
    map_size = (side // stride, side // stride)
    assert len(out.heatmaps) == len(out.offsets) == stacks
    offset_shape = (2, 3, 2, *map_size) if corner_pool else (2, 2, *map_size)
    assert out.heatmaps[0].shape == (2, 3, *map_size) and out.offsets[-1].shape == offset_shape
    assert heads.heats[0][0].conv.kernel_size == ((1, 1) if variant == "squeeze" else (3, 3))

    encoded = encode_targets(targets, 3, (side, side), map_size, min_radius=1)
    merg_targets = None
    if backbone.merg_info:
        merg_sizes = [tuple(m.shape[-2:]) for m in out.merg_logits[0]]
        assert [s[0] for s in merg_sizes] == [side // i["reduction"] for i in backbone.merg_info]
        merg_targets = encode_merg_targets(targets, (side, side), merg_sizes)
    loss = HeatmapLoss()(out, encoded, merg_targets)
    loss.total.backward()

    assert torch.isfinite(loss.total)
    assert ("merg" in loss.components) == (variant == "saccade")
    assert f"focal/stack{stacks - 1}" in loss.components
    assert all(p.grad is not None for p in heads.parameters())
    detections = decode_keypoints(out.heatmaps[-1].detach(), out.offsets[-1].detach(), (side, side))
    assert len(detections) == 2 and detections[0]["keypoints"].shape[1] == 2
