"""Fine-tuning: a module starts from exactly the exported backbone, frozen or not."""

from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import BackboneFinetuning
from lightning.pytorch.cli import LightningCLI

from hgtrain import load_backbone
from hgtrain.training.module import HourglassKeypointModule
from hgtrain.weights.export import export_backbone
from tests.checkpoints import fit, tiny_module, train_checkpoint

FINETUNE_CONFIG = Path(__file__).resolve().parents[2] / "hgtrain" / "configs" / "finetune.yaml"


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """An exported tiny Squeeze backbone, trained a few steps, and its weights."""
    folder = tmp_path_factory.mktemp("pretrained")
    train_checkpoint(folder / "last.ckpt")
    content = export_backbone(folder / "last.ckpt", folder / "backbone.pt")
    return folder / "backbone.pt", content["state_dict"]


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


def same_state(state: dict, expected: dict) -> bool:
    return state.keys() == expected.keys() and all(
        torch.equal(state[k], expected[k]) for k in state
    )


class Recorder(L.Callback):
    """The backbone's state when training starts and after the first epoch, and its mode at every
    training batch."""

    def __init__(self) -> None:
        self.at_start, self.after_first_epoch, self.backbone_training = None, None, []

    def on_train_start(self, trainer, pl_module):
        self.at_start = snapshot(pl_module.backbone)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.backbone_training.append(any(m.training for m in pl_module.backbone.modules()))

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.current_epoch == 0:
            self.after_first_epoch = snapshot(pl_module.backbone)


def test_a_module_starts_from_exactly_the_exported_weights(pretrained):
    path, weights = pretrained
    module = tiny_module(seed=1, backbone_weights=str(path))
    assert same_state(module.backbone.state_dict(), weights)
    assert not same_state(tiny_module(seed=1).backbone.state_dict(), weights)


def test_training_starts_from_those_weights_and_changes_them(pretrained):
    path, weights = pretrained
    module, recorder = tiny_module(seed=1, backbone_weights=str(path)), Recorder()
    fit(module, steps=2, callbacks=[recorder])
    assert same_state(recorder.at_start, weights)
    assert all(recorder.backbone_training)
    assert not same_state(module.backbone.state_dict(), weights)


def test_a_frozen_backbone_keeps_weights_and_statistics_while_the_heads_learn(pretrained):
    path, weights = pretrained
    module = tiny_module(seed=1, backbone_weights=str(path), freeze_backbone=True)
    heads_before, recorder = snapshot(module.heads), Recorder()
    trainer = fit(module, steps=2, callbacks=[recorder])
    assert same_state(module.backbone.state_dict(), weights)  # BatchNorm buffers included
    assert not same_state(module.heads.state_dict(), heads_before)
    assert recorder.backbone_training == [False, False]
    (optimizer,) = trainer.optimizers
    optimized = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert optimized == {id(p) for p in module.heads.parameters()}
    module.train()
    assert module.heads.training and not module.backbone.training


def test_backbone_finetuning_unfreezes_the_backbone_after_the_first_epoch(pretrained):
    path, weights = pretrained
    module, recorder = tiny_module(seed=1, backbone_weights=str(path)), Recorder()
    callbacks = [BackboneFinetuning(unfreeze_backbone_at_epoch=1), recorder]
    fit(module, steps=2, callbacks=callbacks, max_epochs=2, limit_train_batches=1)
    convs = [k for k, v in weights.items() if v.dim() == 4]
    assert all(torch.equal(recorder.after_first_epoch[k], weights[k]) for k in convs)
    assert not all(torch.equal(module.backbone.state_dict()[k], weights[k]) for k in convs)


def test_weights_of_another_architecture_are_refused_naming_the_differences(pretrained):
    path, _ = pretrained
    with pytest.raises(
        ValueError,
        match=r"backbone\.pt holds another architecture than this model: block 'fire' \(the "
        r"model: 'residual'\).*missing: ",
    ):
        tiny_module("cornernet", backbone_weights=str(path))


def test_backbone_weights_that_are_not_a_checkpoint_are_named(tmp_path):
    (tmp_path / "notes.txt").write_text("not weights")
    with pytest.raises(ValueError, match=r"notes\.txt is not a readable PyTorch checkpoint"):
        tiny_module(backbone_weights=str(tmp_path / "notes.txt"))


def test_another_input_normalisation_than_the_pretrained_one_is_warned_about(pretrained):
    path, _ = pretrained
    with pytest.warns(UserWarning, match=r"trained on inputs normalised with pixel_mean=\[0\.485"):
        tiny_module(backbone_weights=str(path), pixel_mean=(0.5, 0.5, 0.5))


def test_a_finetuned_checkpoint_restores_without_the_pretrained_file(pretrained, tmp_path):
    path, _ = pretrained
    copy = tmp_path / "backbone.pt"
    copy.write_bytes(path.read_bytes())
    module = tiny_module(seed=1, backbone_weights=str(copy))
    trainer = fit(module, steps=1)
    trainer.save_checkpoint(tmp_path / "finetuned.ckpt")
    copy.unlink()
    restored = HourglassKeypointModule.load_from_checkpoint(tmp_path / "finetuned.ckpt")
    assert "backbone_weights" not in restored.hparams
    assert same_state(restored.state_dict(), module.state_dict())
    loaded = load_backbone(tmp_path / "finetuned.ckpt", with_heads=True)
    assert same_state(loaded.state_dict(), module.model.state_dict())


def test_the_finetune_config_builds_a_frozen_module_from_the_pretrained_backbone(
    pretrained, tmp_path
):
    path, weights = pretrained
    (tmp_path / "tiny.yaml").write_text(
        "model:\n"
        "  backbone: {n: 2, dims: [8, 12, 16], modules: [1, 1, 1], stacks: 2, block: fire,\n"
        "             unpool: transposed, stem_channels: 8, feature_dim: 8}\n"
        "  num_classes: 2\n"
        "  input_size: 64\n"
        "  head_dim: 8\n"
    )
    args = ["--config", str(tmp_path / "tiny.yaml"), "--config", str(FINETUNE_CONFIG)]
    args += ["--model.backbone_weights", str(path)]
    cli = LightningCLI(
        HourglassKeypointModule,
        args=args,
        run=False,
        save_config_callback=None,
        trainer_defaults={"logger": False, "enable_progress_bar": False},
    )
    assert same_state(cli.model.backbone.state_dict(), weights)
    assert cli.model.freeze_backbone
    assert not any(p.requires_grad for p in cli.model.backbone.parameters())
