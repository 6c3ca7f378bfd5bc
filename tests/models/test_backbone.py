"""The three CornerNet-family backbones, exactly as the original code builds them."""

import pytest
import torch

from hgtrain import HourglassConfig, build_backbone, get_config
from hgtrain.models.blocks import Residual
from hgtrain.models.hourglass import Hourglass, LayerMakers, nearest_unpool
from tests.helpers import tiny_config


@pytest.fixture(scope="module")
def full_backbones():
    torch.manual_seed(0)
    return {name: build_backbone(name).eval() for name in ("cornernet", "saccade", "squeeze")}


@pytest.mark.parametrize(
    ("name", "params", "keys"),
    [("cornernet", 187_700_352, 960), ("saccade", 89_884_544, 540), ("squeeze", 24_728_448, 822)],
)
def test_parameter_and_key_counts_equal_the_original(full_backbones, name, params, keys):
    # Keys: the original checkpoints hold 1128 / 828 / 990 keys, of which 168 / 288 / 168 are heads.
    backbone = full_backbones[name]
    assert sum(p.numel() for p in backbone.parameters()) == params
    assert len(backbone.state_dict()) == keys


@pytest.mark.parametrize(
    ("name", "size", "side", "stacks"),
    [("cornernet", 511, 128, 2), ("saccade", 255, 64, 3), ("squeeze", 511, 64, 2)],
)
def test_output_shapes_at_training_size(full_backbones, name, size, side, stacks):
    with torch.no_grad():
        out = full_backbones[name](torch.randn(1, 3, size, size))
    assert [tuple(f.shape) for f in out.features] == [(1, 256, side, side)] * stacks
    if name == "saccade":
        assert [[tuple(m.shape) for m in ms] for ms in out.mergs] == [
            [(1, 384, 16, 16), (1, 384, 32, 32), (1, 256, 64, 64)]
        ] * 3
    else:
        assert out.mergs == []


def test_feature_info_describes_the_outputs(full_backbones):
    assert full_backbones["squeeze"].feature_info == [
        {"num_chs": 256, "reduction": 8, "module": "cnvs.0"},
        {"num_chs": 256, "reduction": 8, "module": "cnvs.1"},
    ]
    assert full_backbones["saccade"].merg_info == [
        {"num_chs": 384, "reduction": 16},
        {"num_chs": 384, "reduction": 8},
        {"num_chs": 256, "reduction": 4},
    ]
    assert full_backbones["cornernet"].merg_info == []


@pytest.mark.parametrize(
    ("key", "shape"),
    [
        (
            "squeeze",
            {
                "hgs.1.low2.low2.low2.low2.3.conv_3x3.weight": (256, 1, 3, 3),
                "hgs.0.low2.up2.weight": (256, 256, 4, 4),
                "pre.2.skip.0.weight": (256, 256, 1, 1),
            },
        ),
        (
            "cornernet",
            {
                "hgs.1.low2.low2.low2.low2.low2.3.conv2.weight": (512, 512, 3, 3),
                "hgs.0.low1.0.skip.0.weight": (256, 256, 1, 1),
                "inters_.0.0.weight": (256, 256, 1, 1),
                "cnvs_.0.1.running_var": (256,),
            },
        ),
        (
            "saccade",
            {
                "hgs.2.low2.low2.low2.0.conv1.weight": (512, 512, 3, 3),
                "inters.1.conv1.weight": (256, 256, 3, 3),
                "cnvs.2.bn.num_batches_tracked": (),
            },
        ),
    ],
)
def test_state_dict_keys_follow_the_cornernet_lite_scheme(full_backbones, key, shape):
    state = full_backbones[key].state_dict()
    assert {k: tuple(state[k].shape) for k in shape} == shape


def test_the_hourglass_returns_every_merge_innermost_first():
    makers = LayerMakers.from_block(Residual, nearest_unpool)
    hourglass = Hourglass(3, [4, 6, 8, 8], [1, 1, 1, 1], makers)
    out, mergs = hourglass(torch.randn(1, 4, 16, 16))
    assert [tuple(m.shape) for m in mergs] == [(1, 8, 4, 4), (1, 6, 8, 8), (1, 4, 16, 16)]
    assert mergs[-1] is out


def test_gradients_reach_the_stem(tiny):
    backbone = build_backbone(tiny)
    out = backbone(torch.randn(2, 3, 64, 64))
    loss = sum(f.square().mean() for f in out.features) + sum(
        m.mean() for ms in out.mergs for m in ms
    )
    loss.backward()
    assert backbone.pre[0].conv.weight.grad.abs().sum() > 0


def test_tiny_custom_configs_run_in_train_mode(tiny):
    out = build_backbone(tiny)(torch.randn(2, 3, 64, 64))
    side = 64 // tiny.output_stride
    assert [tuple(f.shape) for f in out.features] == [(2, 8, side, side)] * tiny.stacks


def test_aliases_name_the_same_architectures():
    assert get_config("hourglass104") == get_config("cornernet")
    assert get_config("Hourglass54") == get_config("saccade")
    assert get_config("hourglass52") == get_config("squeeze")


def test_channels_last_gives_the_same_features():
    torch.manual_seed(0)
    backbone = build_backbone(tiny_config("squeeze")).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = backbone(x).features[-1]
        fast = backbone.to(memory_format=torch.channels_last)(
            x.to(memory_format=torch.channels_last)
        ).features[-1]
    torch.testing.assert_close(fast, ref, rtol=1e-4, atol=1e-5)


def test_bf16_autocast_runs_and_stays_finite(tiny):
    backbone = build_backbone(tiny)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = backbone(torch.randn(2, 3, 64, 64))
    assert out.features[-1].dtype == torch.bfloat16
    assert all(torch.isfinite(f).all() for f in out.features)


def test_torch_compile_traces_the_backbone_in_one_graph():
    torch.manual_seed(0)
    backbone = build_backbone(tiny_config("saccade")).eval()
    x = torch.randn(1, 3, 64, 64)
    explanation = torch._dynamo.explain(backbone)(x)
    assert explanation.graph_break_count == 0
    with torch.no_grad():
        compiled = torch.compile(backbone, backend="aot_eager")(x)
        torch.testing.assert_close(compiled.features[-1], backbone(x).features[-1])


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (dict(dims=[8, 8, 12]), "dims needs n \\+ 1 = 4 entries"),
        (dict(modules=[1, 1]), "modules needs n \\+ 1 = 4 entries"),
        (dict(n=0, dims=[8], modules=[1]), "n must be >= 1"),
        (dict(block="bottleneck"), "block must be one of"),
        (dict(unpool="bilinear"), "unpool must be one of"),
        (dict(block="fire", dims=[8, 8, 12, 15]), "even channel counts"),
        (dict(stacks=0), "stacks and stem_depth must be >= 1"),
    ],
)
def test_inconsistent_configs_are_rejected(changes, message):
    with pytest.raises(ValueError, match=message):
        tiny_config("cornernet", **changes)


def test_unknown_backbone_names_list_the_choices():
    with pytest.raises(ValueError, match=r"Unknown backbone 'resnet50'.*hourglass104"):
        build_backbone("resnet50")


def test_input_sizes_the_hourglass_cannot_take_are_explained():
    config = get_config("squeeze")
    config.check_input_size(511, 512)
    with pytest.raises(ValueError) as err:
        config.check_input_size(511, 500)
    message = str(err.value)
    assert "Input width 500" in message
    assert "gives 63 px" in message and "level 1 of 4" in message
    assert "384 or 505" in message


def test_the_forward_pass_checks_the_input_size():
    backbone = build_backbone(tiny_config("cornernet"))
    with pytest.raises(
        ValueError,
        match=r"Input height 56 .*level 2 of 3 the map is 7 px.*nearest input sizes that work are 32 or 61",
    ):
        backbone(torch.randn(1, 3, 56, 64))


def test_configs_round_trip_through_plain_dicts():
    config = get_config("saccade")
    assert HourglassConfig(**config.to_dict()) == config
