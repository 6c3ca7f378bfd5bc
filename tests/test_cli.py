"""The ``hgtrain`` command: configs, fit / validate / resume, TensorBoard output and DDP."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from hgtrain.cli import main
from hgtrain.lightning_cli import build_cli, find_config

from .helpers import tiny_backbone

SHIPPED = sorted(p.name for p in (resources.files("hgtrain") / "configs").iterdir())
MODEL_CONFIGS = ["cornernet.yaml", "saccade.yaml", "squeeze.yaml", "quickstart.yaml"]
PRESETS = ["cpu.yaml", "ddp.yaml", "debug.yaml"]


def tiny_config(path: Path, variant: str = "squeeze", **trainer) -> Path:
    """A config that trains a tiny hourglass on 64 px images in a few seconds."""
    config = {
        "model": {
            "backbone": tiny_backbone(variant).to_dict(),
            "head_dim": 8,
        },
        "data": {
            "root": str(path / "data"),
            "image_size": 64,
            "batch_size": 4,
            "num_workers": 0,
            "train_length": 16,
            "val_size": 8,
            "test_size": 8,
        },
        "trainer": {
            "accelerator": "cpu",
            "max_epochs": 1,
            "log_every_n_steps": 1,
            "enable_progress_bar": False,
            "default_root_dir": str(path),
            **trainer,
        },
    }
    file = path / f"tiny-{variant}.yaml"
    file.write_text(yaml.safe_dump(config))
    return file


def run_dir(root: Path) -> Path:
    (events,) = (root / "runs").rglob("events.out.tfevents.*")
    return events.parent


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize("name", MODEL_CONFIGS)
def test_every_model_config_instantiates(name):
    with torch.device("meta"):
        cli = build_cli(["--config", name, "--config", "cpu.yaml"], run=False)
    assert cli.model.input_size == cli.datamodule.image_size
    assert cli.model.hparams.num_classes == cli.datamodule.num_classes


def test_every_shipped_config_is_instantiated_by_a_test():
    # finetune.yaml needs a pretrained file; tests/test_finetune.py instantiates it.
    assert sorted([*MODEL_CONFIGS, *PRESETS, "finetune.yaml"]) == SHIPPED


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_instantiates_on_top_of_a_model_config(preset):
    stack = ["--config", "quickstart.yaml", "--config", preset]
    if preset == "ddp.yaml":
        stack += ["--config", "cpu.yaml"]
    cli = build_cli(stack, run=False)
    assert cli.trainer is not None


def test_configs_are_found_in_the_package_from_any_directory(tmp_path):
    assert Path(find_config("squeeze.yaml")).is_file()
    (tmp_path / "squeeze.yaml").write_text("model: {}\n")
    assert find_config("squeeze.yaml") == "squeeze.yaml"
    with pytest.raises(SystemExit, match=r"config 'nope.yaml' not found.*quickstart.yaml"):
        find_config("nope.yaml")


@pytest.mark.parametrize("variant", ["cornernet", "saccade", "squeeze"])
def test_fast_dev_run_fits_every_variant(tmp_path, variant):
    main(["fit", "--config", str(tiny_config(tmp_path, variant)), "--config", "debug.yaml"])


def test_fit_writes_scalars_images_and_checkpoints_that_carry_their_config(tmp_path):
    # 11 batches: Lightning's throughput is an average over the last 10.
    main(["fit", "--config", str(tiny_config(tmp_path, "saccade")), "--data.train_length", "44"])
    events = EventAccumulator(str(run_dir(tmp_path)), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    expected = {
        "train/loss",
        "train/focal/stack0",
        "train/offset/stack2",
        "train/merg/stack1/scale0",
        "val/map@1",
        "val/map@2",
        "val/map@4",
        "val/loc_error",
        "lr-Adam",
        "params/backbone",
        "run/effective_batch_size",
    }
    assert expected <= scalars, expected - scalars
    assert any("samples_per_sec" in tag for tag in scalars)
    assert {"val/keypoints", "val/heatmaps_per_stack", "val/merg_maps_per_stack_and_scale"} <= set(
        events.Tags()["images"]
    )
    checkpoints = sorted(p.name for p in run_dir(tmp_path).glob("checkpoints/*.ckpt"))
    assert "last.ckpt" in checkpoints and any(n.startswith("best-") for n in checkpoints)
    stored = torch.load(run_dir(tmp_path) / "checkpoints" / "last.ckpt", weights_only=True)
    assert stored["hgtrain"]["config"]["data"]["image_size"] == 64
    assert stored["hgtrain"]["config"]["model"]["backbone"]["stacks"] == 3


def test_validate_needs_nothing_but_the_checkpoint(tmp_path):
    main(["fit", "--config", str(tiny_config(tmp_path, "squeeze"))])
    checkpoint = run_dir(tmp_path) / "checkpoints" / "last.ckpt"
    cli = build_cli(["validate", "--ckpt_path", str(checkpoint), "--trainer.logger", "false"])
    assert cli.datamodule.image_size == 64
    assert "val/map" in cli.trainer.callback_metrics


def last_weights(root: Path) -> dict[str, torch.Tensor]:
    checkpoint = max((root / "runs").rglob("last*.ckpt"), key=os.path.getmtime)
    return torch.load(checkpoint, weights_only=True)["state_dict"]


class InterruptAfterFirstEpoch(L.Callback):
    """Stops training after its first epoch, as a killed job would after its epoch checkpoint."""

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        trainer.should_stop = True


def test_resuming_continues_exactly_like_an_uninterrupted_run(tmp_path):
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    straight.mkdir()
    interrupted.mkdir()
    os.chdir(straight)
    main(["fit", "--config", str(tiny_config(straight, max_epochs=2))])
    os.chdir(interrupted)
    config = str(tiny_config(interrupted, max_epochs=2))
    main(["fit", "--config", config, f"--trainer.callbacks+={__name__}.InterruptAfterFirstEpoch"])
    first = next((interrupted / "runs").rglob("last.ckpt"))
    assert torch.load(first, weights_only=True)["global_step"] == 4
    resumed_from = first.with_name("interrupted.ckpt")
    shutil.copy(first, resumed_from)
    main(["fit", "--config", config, "--ckpt_path", str(resumed_from)])
    expected, resumed = last_weights(straight), last_weights(interrupted)
    assert expected.keys() == resumed.keys()
    for key in expected:
        torch.testing.assert_close(resumed[key], expected[key], rtol=0, atol=0, msg=key)


@pytest.mark.slow
def test_two_process_cpu_ddp_fit_syncs_its_metrics(tmp_path):
    config = tiny_config(tmp_path, "squeeze", devices=2, strategy="ddp", sync_batchnorm=False)
    hgtrain = Path(sys.executable).with_name("hgtrain")
    subprocess.run(
        [str(hgtrain), "fit", "--config", str(config)], check=True, cwd=tmp_path, timeout=300
    )
    events = EventAccumulator(str(run_dir(tmp_path)))
    events.Reload()
    logged = events.Scalars("val/map")[-1].value
    assert events.Scalars("run/world_size")[-1].value == 2
    checkpoint = run_dir(tmp_path) / "checkpoints" / "last.ckpt"
    cli = build_cli(["validate", "--ckpt_path", str(checkpoint), "--trainer.logger", "false"])
    assert cli.trainer.callback_metrics["val/map"].item() == pytest.approx(logged, abs=1e-6)
