"""The LightningModule: one training step, evaluation and prediction for every variant."""

import lightning as L
import pytest
import torch

from hgtrain.errors import ConfigError
from hgtrain.training.module import HourglassKeypointModule
from tests.checkpoints import tiny_module
from tests.helpers import keypoint_batch, tiny_backbone


@pytest.fixture(params=["cornernet", "saccade", "squeeze"])
def module(request):
    torch.manual_seed(0)
    return HourglassKeypointModule(
        backbone=tiny_backbone(request.param), num_classes=2, input_size=64, head_dim=8
    )


def test_a_training_step_gives_a_finite_loss_with_gradients_everywhere(module):
    module.log = lambda *args, **kwargs: None
    module.log_dict = lambda *args, **kwargs: None
    loss = module.training_step(keypoint_batch(), 0)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in module.parameters() if p.requires_grad)


def test_loss_components_cover_every_stack(module):
    _, losses, _ = module.shared_step(keypoint_batch())
    stacks = module.backbone.config.stacks
    assert {f"focal/stack{i}" for i in range(stacks)} <= set(losses.components)
    assert {f"offset/stack{i}" for i in range(stacks)} <= set(losses.components)
    if module.backbone.config.return_mergs:
        assert any(name.startswith("merg/") for name in losses.components)


def test_predict_returns_keypoints_in_input_pixels(module):
    module.eval()
    images, _ = keypoint_batch(batch_size=3)
    with torch.no_grad():
        predictions = module.predict_step((images, None), 0)
    assert len(predictions) == 3
    for prediction in predictions:
        assert prediction["keypoints"].shape[1] == 2
        assert ((prediction["keypoints"] >= 0) & (prediction["keypoints"] <= 64)).all()
        assert prediction["scores"].shape == prediction["labels"].shape


def test_the_head_kernel_follows_the_variant():
    fire = HourglassKeypointModule(backbone=tiny_backbone("squeeze"), input_size=64, head_dim=8)
    residual = HourglassKeypointModule(
        backbone=tiny_backbone("cornernet"), input_size=64, head_dim=8
    )
    first_conv = lambda m: next(c for c in m.heads.modules() if isinstance(c, torch.nn.Conv2d))  # noqa: E731
    assert first_conv(fire).kernel_size == (1, 1)
    assert first_conv(residual).kernel_size == (3, 3)


def test_an_input_size_the_hourglass_cannot_take_is_rejected_at_construction():
    with pytest.raises(ValueError, match="Input height 60"):
        HourglassKeypointModule(backbone=tiny_backbone("cornernet"), input_size=60)


def test_hyperparameters_store_a_custom_backbone_as_plain_data():
    module = HourglassKeypointModule(backbone=tiny_backbone("squeeze"), input_size=64, head_dim=8)
    assert isinstance(module.hparams["backbone"], dict)
    again = HourglassKeypointModule(**module.hparams)
    assert again.backbone.config == module.backbone.config


@pytest.mark.parametrize("mode", ["stacks", "blocks"])
def test_activation_checkpointing_gives_the_same_loss_and_gradients(mode):
    torch.manual_seed(0)
    plain = HourglassKeypointModule(backbone=tiny_backbone("saccade"), input_size=64, head_dim=8)
    torch.manual_seed(0)
    checkpointed = HourglassKeypointModule(
        backbone=tiny_backbone("saccade"), input_size=64, head_dim=8, activation_checkpointing=mode
    )
    assert checkpointed.backbone.activation_checkpointing == mode
    assert not any(getattr(m, "checkpointed", False) for m in checkpointed.heads.modules())
    losses = []
    for module in (plain, checkpointed):
        _, loss, _ = module.shared_step(keypoint_batch())
        loss.total.backward()
        losses.append(loss.total)
    torch.testing.assert_close(losses[0], losses[1])
    torch.testing.assert_close(
        plain.backbone.pre[0].conv.weight.grad, checkpointed.backbone.pre[0].conv.weight.grad
    )


def test_an_unknown_checkpointing_mode_names_the_argument():
    with pytest.raises(ConfigError, match="activation_checkpointing='layers': must be one of none"):
        HourglassKeypointModule(
            backbone=tiny_backbone("squeeze"), input_size=64, activation_checkpointing="layers"
        )


def test_a_checkpoint_saved_with_the_former_checkpoint_stacks_argument_loads(tmp_path):
    module = tiny_module()
    hparams = {k: v for k, v in module.hparams.items() if k != "activation_checkpointing"}
    checkpoint = {
        "state_dict": module.state_dict(),
        "hyper_parameters": {**hparams, "checkpoint_stacks": False},
        "pytorch-lightning_version": L.__version__,
    }
    torch.save(checkpoint, tmp_path / "old.ckpt")
    restored = HourglassKeypointModule.load_from_checkpoint(tmp_path / "old.ckpt")
    assert restored.backbone.activation_checkpointing == "none"
    assert restored.backbone.config == module.backbone.config
