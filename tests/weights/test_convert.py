"""Weights move both ways between hgtrain and the original CornerNet code, exactly."""

import dataclasses

import pytest
import torch

from hgtrain import build_backbone, get_config, load_backbone
from hgtrain.weights.convert import (
    ECCV_TO_LITE,
    from_cornernet_lite,
    infer_config,
    load_state_exactly,
    to_cornernet_lite,
)
from tests.helpers import tiny_config

FAKE_HEADS = {
    "module.tl_heats.0.0.conv.weight": torch.zeros(4, 8, 3, 3),
    "module.br_modules.1.p_conv1.weight": torch.zeros(4, 4, 3, 3),
}


def lite_to_eccv(lite_state):
    """The reverse of the ECCV'18 -> CornerNet-Lite renaming, as the ECCV'18 repository saves."""
    renamed = {}
    for key, value in lite_state.items():
        key = key.removeprefix("module.")
        old, new = next(((o, n) for o, n in ECCV_TO_LITE.items() if key.startswith(n)), ("", ""))
        renamed["module." + old + key[len(new) :]] = value
    return renamed


def test_round_trip_through_the_cornernet_lite_layout_is_exact(tiny):
    state = build_backbone(tiny).state_dict()
    lite = to_cornernet_lite(state)
    assert all(k.startswith("module.hg.") for k in lite)
    backbone_state, heads = from_cornernet_lite({**lite, **FAKE_HEADS})
    assert backbone_state.keys() == state.keys()
    assert all(torch.equal(backbone_state[k], v) for k, v in state.items())
    assert set(heads) == {"tl_heats.0.0.conv.weight", "br_modules.1.p_conv1.weight"}


@pytest.mark.parametrize("name", ["cornernet", "saccade", "squeeze"])
def test_the_architecture_is_inferred_from_keys_and_shapes(name):
    with torch.device("meta"):
        state = build_backbone(name).state_dict()
    assert infer_config(state) == get_config(name)
    assert infer_config(state).name == name


def test_custom_architectures_are_inferred_too(tiny):
    # Whether mergs are returned is not in the weights: a custom config comes back without them.
    inferred = infer_config(build_backbone(tiny).state_dict())
    assert inferred == dataclasses.replace(tiny, return_mergs=False)
    assert inferred.name == "custom"


def test_an_original_squeeze_checkpoint_loads_with_identical_outputs(tmp_path):
    torch.manual_seed(0)
    original = build_backbone("squeeze").eval()
    path = tmp_path / "CornerNet_Squeeze_500000.pkl"
    torch.save({**to_cornernet_lite(original.state_dict()), **FAKE_HEADS}, path)
    loaded = load_backbone(path).eval()
    assert loaded.config == get_config("squeeze")
    x = torch.randn(1, 3, 255, 255)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x).features, original(x).features, rtol=0, atol=0)


def test_an_eccv18_cornernet_checkpoint_loads(tmp_path):
    config = tiny_config("cornernet")
    state = build_backbone(config).state_dict()
    eccv = lite_to_eccv({**to_cornernet_lite(state), **FAKE_HEADS})
    assert "module.kps.0.up1.0.conv1.weight" in eccv
    assert "module.br_cnvs.1.p_conv1.weight" in eccv
    torch.save(eccv, tmp_path / "CornerNet_500000.pkl")
    loaded = load_backbone(tmp_path / "CornerNet_500000.pkl")
    assert loaded.config == config
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in state.items())


def test_a_bare_hgtrain_state_dict_loads(tmp_path):
    backbone = build_backbone(tiny_config("saccade"))
    torch.save(backbone.state_dict(), tmp_path / "backbone.pt")
    loaded = load_backbone(tmp_path / "backbone.pt")
    assert loaded.config == dataclasses.replace(backbone.config, return_mergs=False)


def test_weights_of_another_variant_name_the_mismatching_keys():
    squeeze = build_backbone(tiny_config("squeeze"))
    cornernet_state = build_backbone(tiny_config("cornernet")).state_dict()
    with pytest.raises(
        ValueError, match=r"another variant or size.*missing: .*conv_3x3.*unexpected"
    ):
        load_state_exactly(squeeze, cornernet_state, "cornernet.pt")


def test_weights_of_another_size_name_the_shapes():
    small = build_backbone(tiny_config("cornernet"))
    wide_state = build_backbone(tiny_config("cornernet", feature_dim=16)).state_dict()
    with pytest.raises(
        ValueError, match=r"shape mismatch: cnvs.0.conv.weight: \(16, 8, 3, 3\) in wide.pt"
    ):
        load_state_exactly(small, wide_state, "wide.pt")


def test_a_truncated_checkpoint_is_named(tmp_path):
    path = tmp_path / "cut.pkl"
    torch.save(build_backbone(tiny_config()).state_dict(), path)
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(ValueError, match=r"cut\.pkl is not a readable PyTorch checkpoint"):
        load_backbone(path)


def test_a_file_that_is_not_a_checkpoint_is_named(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(ValueError, match=r"notes\.txt is not a readable PyTorch checkpoint"):
        load_backbone(path)


def test_a_state_dict_without_a_backbone_is_rejected(tmp_path):
    torch.save(FAKE_HEADS, tmp_path / "heads.pkl")
    with pytest.raises(ValueError, match="No backbone weights found"):
        load_backbone(tmp_path / "heads.pkl")


def test_a_missing_file_is_reported():
    with pytest.raises(FileNotFoundError, match="No checkpoint at"):
        load_backbone("does/not/exist.pkl")
