"""``load_backbone`` on hgtrain training checkpoints and wrapped state dicts; errors that name the
problem. (Original CornerNet-Lite files: tests/models/test_convert.py; exports: test_export.py.)"""

import dataclasses
import subprocess
import sys

import pytest
import torch

from hgtrain import build_backbone, load_backbone
from hgtrain.models.network import KeypointNet
from hgtrain.training.module import HourglassKeypointModule
from hgtrain.weights.convert import to_cornernet_lite
from hgtrain.weights.pretrained import input_normalization, load_backbone_weights
from tests.checkpoints import tiny_module, train_checkpoint
from tests.helpers import keypoint_batch, tiny_backbone


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    path = tmp_path_factory.mktemp("run") / "last.ckpt"
    return path, train_checkpoint(path).eval()


def assert_same_state(module: torch.nn.Module, state: dict) -> None:
    expected = module.state_dict()
    assert expected.keys() == state.keys()
    assert all(torch.equal(expected[k], v) for k, v in state.items())


def test_a_training_checkpoint_gives_its_backbone_in_the_recorded_architecture(tmp_path):
    # Saccade's return_mergs is not in the weights: only the hyperparameters can restore it.
    module = train_checkpoint(tmp_path / "saccade.ckpt", "saccade", steps=0)
    backbone = load_backbone(tmp_path / "saccade.ckpt")
    assert backbone.config == tiny_backbone("saccade")
    assert backbone.config.return_mergs
    assert backbone.config.name == "tiny-saccade"
    assert_same_state(backbone, module.backbone.state_dict())


def assert_same_outputs(expected: HourglassKeypointModule, got: torch.nn.Module) -> None:
    images, _ = keypoint_batch()
    with torch.no_grad():
        want, have = expected(images), got(images)
    assert all(torch.equal(a, b) for a, b in zip(want.heatmaps, have.heatmaps, strict=True))
    assert all(torch.equal(a, b) for a, b in zip(want.offsets, have.offsets, strict=True))


def test_with_heads_gives_the_trained_network_with_identical_outputs(trained):
    path, module = trained
    loaded = load_backbone(path, with_heads=True, mode="eval")
    assert isinstance(loaded, KeypointNet)
    assert_same_state(loaded, module.model.state_dict())
    assert loaded.config == module.model.config
    assert_same_outputs(module, loaded)


def test_a_checkpoint_of_the_layout_before_the_network_module_still_loads(trained, tmp_path):
    path, module = trained
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["state_dict"] = {
        k.removeprefix("model."): v for k, v in checkpoint["state_dict"].items()
    }
    torch.save(checkpoint, tmp_path / "old.ckpt")
    assert_same_outputs(module, load_backbone(tmp_path / "old.ckpt", with_heads=True, mode="eval"))
    restored = HourglassKeypointModule.load_from_checkpoint(tmp_path / "old.ckpt").eval()
    assert_same_outputs(module, restored)


def test_the_network_loads_without_lightning(trained):
    script = (
        "import sys, hgtrain; "
        f"hgtrain.load_backbone({str(trained[0])!r}, with_heads=True); "
        "assert 'lightning' not in sys.modules, 'lightning was imported'"
    )
    subprocess.run([sys.executable, "-c", script], check=True)


def test_with_heads_needs_a_training_checkpoint(tmp_path):
    torch.save(build_backbone(tiny_backbone()).state_dict(), tmp_path / "backbone.pt")
    with pytest.raises(ValueError, match=r"backbone\.pt is a state dict, which holds no heads"):
        load_backbone(tmp_path / "backbone.pt", with_heads=True)


@pytest.mark.parametrize(
    "rename",
    [
        lambda key: "module." + key,  # DataParallel / DDP
        lambda key: "model." + key,
        lambda key: "_orig_mod." + key,  # torch.compile(module)
        lambda key: key.replace("backbone.", "backbone._orig_mod.", 1),  # a compiled backbone
        lambda key: "module._orig_mod." + key,
    ],
    ids=["module", "model", "compiled", "compiled-backbone", "ddp-compiled"],
)
def test_wrapper_prefixes_are_dropped(tmp_path, rename):
    module = tiny_module()
    state = {rename(k): v for k, v in module.state_dict().items()}
    torch.save({"state_dict": state}, tmp_path / "wrapped.ckpt")
    backbone = load_backbone(tmp_path / "wrapped.ckpt")
    assert backbone.config == dataclasses.replace(tiny_backbone(), name="custom")
    assert_same_state(backbone, module.backbone.state_dict())


def test_a_compiled_backbone_state_dict_loads(tmp_path):
    backbone = build_backbone(tiny_backbone())
    compiled_state = torch.compile(backbone).state_dict()
    assert next(iter(compiled_state)).startswith("_orig_mod.")
    torch.save(compiled_state, tmp_path / "compiled.pt")
    assert_same_state(load_backbone(tmp_path / "compiled.pt"), backbone.state_dict())


def test_modes_train_eval_and_frozen(trained):
    path, _ = trained
    assert load_backbone(path).training
    evaluating = load_backbone(path, mode="eval")
    assert not evaluating.training
    assert all(p.requires_grad for p in evaluating.parameters())
    frozen = load_backbone(path, mode="frozen")
    assert not any(m.training for m in frozen.modules())
    assert not any(p.requires_grad for p in frozen.parameters())
    with pytest.raises(ValueError, match=r"mode must be one of \('train', 'eval', 'frozen'\)"):
        load_backbone(path, mode="inference")


def test_nothing_in_a_checkpoint_can_run_code(tmp_path):
    marker = tmp_path / "code_ran"

    class Payload:
        def __reduce__(self):
            return (marker.mkdir, ())

    torch.save({"state_dict": Payload()}, tmp_path / "evil.ckpt")
    with pytest.raises(ValueError, match=r"evil\.ckpt is not a readable PyTorch checkpoint"):
        load_backbone(tmp_path / "evil.ckpt")
    assert not marker.exists()


def test_content_without_a_state_dict_is_named(tmp_path):
    torch.save([torch.zeros(3)], tmp_path / "list.pt")
    with pytest.raises(ValueError, match=r"list\.pt holds no state dict of tensors"):
        load_backbone(tmp_path / "list.pt")


def test_an_export_of_a_newer_format_asks_for_an_upgrade(tmp_path):
    torch.save({"format": "hgtrain-backbone", "format_version": 2}, tmp_path / "future.pt")
    with pytest.raises(ValueError, match=r"format version 2.*upgrade hgtrain"):
        load_backbone(tmp_path / "future.pt")


def test_a_damaged_export_is_named(tmp_path):
    torch.save({"format": "hgtrain-backbone", "format_version": 1}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match=r"bad\.pt is a damaged .*: no state_dict, config, input"):
        load_backbone(tmp_path / "bad.pt")


def test_weights_of_another_variant_name_the_architecture_and_the_keys(trained):
    path, _ = trained
    residual = build_backbone(tiny_backbone("cornernet"))
    with pytest.raises(
        ValueError,
        match=r"last\.ckpt holds another architecture than this model: block 'fire' \(the model: "
        r"'residual'\), unpool 'transposed' \(the model: 'nearest'\).*missing: .*unexpected: ",
    ):
        load_backbone_weights(residual, path)


def test_weights_of_another_size_name_the_shapes(trained):
    path, _ = trained
    wide = build_backbone(dataclasses.replace(tiny_backbone(), feature_dim=16))
    with pytest.raises(
        ValueError,
        match=r"feature_dim 8 \(the model: 16\).*shape mismatch: "
        r"cnvs\.0\.conv\.weight: \(8, 8, 3, 3\) in .*last\.ckpt, \(16, 8, 3, 3\) in the model",
    ):
        load_backbone_weights(wide, path)


# Original CornerNet-Lite weights take BGR images / 255 normalised with the original's mean and
# std (core/dbs/coco.py); hgtrain feeds RGB.


@pytest.fixture
def original_file(tmp_path):
    backbone = build_backbone(tiny_backbone("squeeze")).eval()
    path = tmp_path / "CornerNet_Squeeze_500000.pkl"
    torch.save(to_cornernet_lite(backbone.state_dict()), path)
    return path


def test_input_order_rgb_makes_original_weights_take_rgb_images(original_file):
    as_trained = load_backbone(original_file, mode="eval")
    rgb = load_backbone(original_file, mode="eval", input_order="rgb")
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    bgr = images.flip(1)
    torch.testing.assert_close(rgb(images).features[-1], as_trained(bgr).features[-1])


def test_the_original_normalisation_comes_in_the_order_asked_for(original_file):
    bgr = {"pixel_mean": [0.40789654, 0.44719302, 0.47026115],
           "pixel_std": [0.28863828, 0.27408164, 0.27809835]}  # fmt: skip
    assert input_normalization(original_file) == bgr
    rgb = input_normalization(original_file, input_order="rgb")
    assert rgb == {key: values[::-1] for key, values in bgr.items()}


def test_fine_tuning_from_original_weights_needs_no_hand_edits(original_file):
    module = HourglassKeypointModule(
        backbone=tiny_backbone("squeeze"), backbone_weights=str(original_file), input_size=64
    )
    rgb = load_backbone(original_file, input_order="rgb")
    assert_same_state(module.backbone, rgb.state_dict())
    assert module.hparams.pixel_mean == pytest.approx([0.47026115, 0.44719302, 0.40789654])
    assert module.model.pixel_std.flatten().tolist() == pytest.approx(
        [0.27809835, 0.27408164, 0.28863828]
    )


def test_hgtrain_weights_are_rgb_already(trained):
    path, module = trained
    assert_same_state(load_backbone(path, input_order="rgb"), module.backbone.state_dict())
