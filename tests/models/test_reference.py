"""hgtrain's backbones compute exactly what a plain re-implementation of the original code computes.

``tests/reference/cornernet_lite.py`` is written from the architecture spec alone, in the original
code's layout. Equal state-dict keys and shapes, and bit-identical outputs and gradients for the
same weights, prove that hgtrain's layer makers, recursion and stack wiring are the original network.
"""

import pytest
import torch

from hgtrain import HourglassConfig, build_backbone
from tests.helpers import tiny_config
from tests.reference import cornernet_lite


def twin_networks(config: HourglassConfig, seed: int = 0):
    """hgtrain's backbone with random weights and random BN statistics, and the reference with a copy."""
    torch.manual_seed(seed)
    ours = build_backbone(config)
    for name, buffer in ours.state_dict().items():
        if name.endswith("running_mean"):
            buffer.normal_(0, 0.1)
        elif name.endswith("running_var"):
            buffer.uniform_(0.5, 2.0)
    reference = cornernet_lite.from_config(config)
    reference.load_state_dict(ours.state_dict(), strict=True)
    return ours, reference


def reference_outputs(config: HourglassConfig, out) -> tuple[list, list]:
    """The reference's ``cnvs`` (and ``atts`` for Saccade) in hgtrain's (features, mergs) form."""
    return out if config.return_mergs else (out, [])


def flatten(features, mergs) -> list[torch.Tensor]:
    return [*features, *(m for stack in mergs for m in stack)]


@pytest.mark.parametrize(
    ("name", "params"),
    [("cornernet", 187_700_352), ("saccade", 89_884_544), ("squeeze", 24_728_448)],
)
def test_full_variants_have_the_reference_keys_and_shapes(name, params):
    # params: the original backbones' counts, measured on the original code (spec section 8).
    with torch.device("meta"):
        ours = build_backbone(name).state_dict()
        reference_net = cornernet_lite.VARIANTS[name]()
    reference = reference_net.state_dict()
    assert sum(p.numel() for p in reference_net.parameters()) == params
    assert list(ours) == list(reference)
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in reference.items()}


@pytest.mark.parametrize("variant", ["cornernet", "saccade", "squeeze"])
@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_tiny_variants_compute_the_reference_function(variant, training):
    config = tiny_config(variant)
    ours, reference = twin_networks(config)
    ours.train(training)
    reference.train(training)
    x = torch.randn(2, 3, 64, 64)
    x_ours, x_ref = x.clone().requires_grad_(), x.clone().requires_grad_()

    got = flatten(*ours(x_ours))
    expected = flatten(*reference_outputs(config, reference(x_ref)))
    assert len(got) == len(expected) == config.stacks * (1 + config.n * config.return_mergs)
    for a, b in zip(got, expected, strict=True):
        assert torch.equal(a, b)

    weights = [torch.randn_like(t) for t in got]
    sum((w * t).sum() for w, t in zip(weights, got, strict=True)).backward()
    sum((w * t).sum() for w, t in zip(weights, expected, strict=True)).backward()
    assert torch.equal(x_ours.grad, x_ref.grad)
    ref_params = dict(reference.named_parameters())
    for key, param in ours.named_parameters():
        assert torch.equal(param.grad, ref_params[key].grad), key
    if training:
        ref_buffers = dict(reference.named_buffers())
        for key, buffer in ours.named_buffers():
            assert torch.equal(buffer, ref_buffers[key]), key


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_full_squeeze_computes_the_reference_function(training):
    ours, reference = twin_networks(build_backbone("squeeze").config)
    ours.train(training)
    reference.train(training)
    x = torch.randn(2, 3, 255, 255)
    with torch.no_grad():
        got = ours(x).features
        expected = reference(x)
    assert [tuple(f.shape) for f in got] == [(2, 256, 32, 32)] * 2
    for a, b in zip(got, expected, strict=True):
        assert torch.equal(a, b)


def test_the_speed_comparison_trains_both_implementations_identically():
    from hgtrain.tools.benchmark import BenchmarkConfig
    from tests.reference.compare import compare

    config = BenchmarkConfig(
        backbone=tiny_config("saccade"), input_size=64, batch_size=2, steps=2, warmup=1
    )
    result = compare(config)
    assert result["identical_losses"]
    assert list(result["step_time_s"]) == ["hgtrain", "reference"]
    assert result["time_ratio"] > 0


def test_the_comparison_command_reads_a_yaml_config_and_names_a_bad_value(tmp_path, capsys):
    from tests.reference.compare import main

    config = tmp_path / "compare.yaml"
    config.write_text("backbone: saccade\ninput_size: 63\nbatch_size: 0\nchannels_last: true\n")
    with pytest.raises(SystemExit) as exit:
        main(["--config", str(config)])
    assert exit.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "python -m tests.reference.compare: --batch_size=0: must be >= 1"
    ]
