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
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

from hgtrain.cli.lightning_cli import build_cli, claim_version_directory, find_config
from hgtrain.cli.main import main
from hgtrain.data.loading.transforms import ObjectCrop
from hgtrain.models import HourglassConfig
from tests.helpers import tiny_backbone

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
    # finetune.yaml and transfer.yaml need a pretrained file: tests/test_finetune.py and
    # tests/test_transfer.py instantiate them.
    assert sorted([*MODEL_CONFIGS, *PRESETS, "finetune.yaml", "transfer.yaml"]) == SHIPPED


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
    shutil.rmtree(tmp_path / "data")
    cli = build_cli(["validate", "--ckpt_path", str(checkpoint), "--trainer.logger", "false"])
    assert cli.datamodule.image_size == 64
    assert "val/map" in cli.trainer.callback_metrics
    written = [p.name.split("-")[0] for p in (tmp_path / "data" / "synthetic").iterdir()]
    assert written == ["val"]  # no test set


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


def test_print_config_lists_the_default_logger_and_callbacks(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["fit", "--config", "quickstart.yaml", "--print_config"])
    assert exit_.value.code in (0, None)
    trainer = yaml.safe_load(capsys.readouterr().out)["trainer"]
    assert trainer["logger"]["class_path"].endswith("TensorBoardLogger")
    classes = [c["class_path"].rsplit(".", 1)[-1] for c in trainer["callbacks"]]
    assert classes == [
        "BestCheckpoint",
        "ModelCheckpoint",
        "LearningRateMonitor",
        "ThroughputMonitor",
        "KeypointImageLogger",
        "RunFactsLogger",
    ]
    assert trainer["callbacks"][0]["init_args"]["monitor"] == "val/map"


def test_a_config_replaces_the_default_callbacks(tmp_path):
    replaced = tmp_path / "callbacks.yaml"
    replaced.write_text(
        "trainer:\n  callbacks:\n  - class_path: hgtrain.training.callbacks.RunFactsLogger\n"
    )
    cli = build_cli(["--config", str(tiny_config(tmp_path)), "--config", str(replaced)], run=False)
    own = [
        c
        for c in cli.trainer.callbacks
        if type(c).__module__.startswith("hgtrain.training.callbacks")
    ]
    assert [type(c).__name__ for c in own] == ["RunFactsLogger"]
    assert not any(isinstance(c, ModelCheckpoint) and c.monitor for c in cli.trainer.callbacks)


def test_only_the_model_sets_the_optimizer():
    with pytest.raises(SystemExit):
        build_cli(["--config", "quickstart.yaml", "--optimizer", "torch.optim.SGD"], run=False)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--data.batch_size", "-4", "data.batch_size=-4: must be >= 1"),
        ("--data.hflip", "1.5", "data.hflip=1.5: must be a probability in [0, 1]"),
        ("--data.test_sets", "[foggy]", "data.test_sets=['foggy']: must be a non-empty subset"),
        ("--model.top_k", "0", "model.top_k=0: must be >= 1"),
        ("--model.backbone", "hourglass99", "model.backbone='hourglass99': "),
        ("--data.image_size", "100", "model.input_size=100: Input height 100 does not fit"),
        ("--data.scene.backgrounds", '{"wood": 1}', "data.scene: unknown backgrounds ['wood']; "),
        (
            "--data.noise_config.gamma",
            "[2, 1]",
            "data.noise_config: gamma must be a range (low, high) with low <= high",
        ),
    ],
)
def test_a_bad_argument_is_named_with_its_value(tmp_path, capsys, option, value, message):
    with pytest.raises(SystemExit) as exit_:
        build_cli(["--config", str(tiny_config(tmp_path)), option, value], run=False)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_a_gpu_config_without_a_gpu_names_the_cpu_preset(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit, match=r"no GPU is available here: add --config cpu.yaml"):
        main(["fit", "--config", "squeeze.yaml"])


def test_hgtrain_version_and_help_answer_without_importing_torch():
    code = (
        "import sys; from hgtrain.cli.main import main; main(['--version']); main(['--help']); "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.startswith("hgtrain ")
    for command in ["fit", "validate", "test", "predict", "export", "benchmark", "data-preview"]:
        assert f"\n  {command} " in out


@pytest.mark.parametrize(
    "extra",
    [
        ["--config", "debug.yaml"],
        ["--trainer.max_steps", "2"],
        ["--trainer.max_steps", "2", "--trainer.logger", "false"],
    ],
    ids=["fast_dev_run", "stopped-before-validation", "no-logger"],
)
def test_fit_with_test_after_fit_finishes_cleanly_however_short(tmp_path, caplog, extra):
    config = str(tiny_config(tmp_path, max_epochs=3))
    main(["fit", "--config", config, "--test_after_fit", "true", *extra])
    assert "so the test runs on the last weights" in caplog.text
    if extra[0] == "--trainer.max_steps":
        (last,) = tmp_path.rglob("last.ckpt")
        assert torch.load(last, weights_only=True)["global_step"] == 2


def test_with_csv_logger_images_are_png_files_and_facts_are_metrics(tmp_path):
    main(["fit", "--config", str(tiny_config(tmp_path)), "--trainer.logger", "CSVLogger"])
    (folder,) = (tmp_path / "runs" / "hgtrain").iterdir()
    assert (folder / "images" / "val" / "keypoints" / "step_4.png").is_file()
    assert (folder / "images" / "val" / "heatmaps_per_stack" / "step_4.png").is_file()
    metrics = (folder / "metrics.csv").read_text()
    assert "params/backbone" in metrics and "val/map" in metrics
    hparams = yaml.safe_load((folder / "hparams.yaml").read_text())
    assert hparams["image_size"] == 64 and "head_dim" in hparams  # data and model arguments


def test_tensorboard_hparams_hold_model_and_data_arguments(tmp_path):
    main(["fit", "--config", str(tiny_config(tmp_path)), "--trainer.max_steps", "1"])
    logged = set()
    for record in EventFileLoader(str(next(run_dir(tmp_path).glob("events.*")))).Load():
        for value in record.summary.value:
            if value.tag == "_hparams_/session_start_info":
                info = HParamsPluginData.FromString(value.metadata.plugin_data.content)
                logged |= set(info.session_start_info.hparams)
    assert {"head_dim", "sigma", "image_size", "batch_size"} <= logged, logged


def test_run_folders_are_claimed_atomically(tmp_path, monkeypatch):
    logger = TensorBoardLogger(tmp_path, name="hgtrain")
    (tmp_path / "hgtrain" / "version_0").mkdir(parents=True)
    # Another run created version_0 after this one listed the folders: it must move on.
    monkeypatch.setattr(logger, "_get_next_version", lambda: 0)
    claim_version_directory(logger)
    assert logger.version == 1 and (tmp_path / "hgtrain" / "version_1").is_dir()
    pinned = TensorBoardLogger(tmp_path, name="hgtrain", version="mine")
    claim_version_directory(pinned)
    assert pinned.version == "mine"


@pytest.mark.slow
def test_two_fits_started_together_in_one_directory_keep_their_own_folders(tmp_path):
    config = str(tiny_config(tmp_path))
    hgtrain = Path(sys.executable).with_name("hgtrain")
    runs = [
        subprocess.Popen(
            [str(hgtrain), "fit", "--config", config, "--data.seed", str(seed)],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in (1, 2)
    ]
    for run in runs:
        assert run.wait(timeout=300) == 0, run.stderr.read()
    folders = sorted((tmp_path / "runs" / "hgtrain").iterdir())
    assert [f.name for f in folders] == ["version_0", "version_1"]
    seeds = set()
    for folder in folders:
        saved = yaml.safe_load((folder / "config.yaml").read_text())["data"]["seed"]
        stored = torch.load(folder / "checkpoints" / "last.ckpt", weights_only=True)
        assert stored["hgtrain"]["config"]["data"]["seed"] == saved
        seeds.add(saved)
    assert seeds == {1, 2}


def test_test_with_a_checkpoint_keeps_its_data_config_and_changes_only_what_is_given(tmp_path):
    main(["fit", "--config", str(tiny_config(tmp_path)), "--data.noise", "false"])
    checkpoint = run_dir(tmp_path) / "checkpoints" / "last.ckpt"
    shutil.rmtree(tmp_path / "data")
    cli = build_cli(["test", "--ckpt_path", str(checkpoint), "--data.seed", "7"])
    data = cli.datamodule
    assert (data.image_size, data.seed, data.noise, data.test_size) == (64, 7, False, 8)
    written = sorted(p.name for p in (tmp_path / "data" / "synthetic").iterdir())
    assert [name.split("-")[:3] for name in written] == [
        ["test", "clean", "64px"],
        ["test", "noisy", "64px"],
        ["test", "unseen", "64px"],
    ]
    assert "test_noisy/map" in cli.trainer.callback_metrics


def test_a_checkpoint_runs_at_another_size_only_when_asked_and_says_so(tmp_path, caplog):
    main(["fit", "--config", str(tiny_config(tmp_path)), "--trainer.max_steps", "1"])
    checkpoint = str(run_dir(tmp_path) / "checkpoints" / "last.ckpt")
    cli = build_cli(["validate", "--ckpt_path", checkpoint, "--data.image_size", "96"])
    assert cli.datamodule.image_size == 96
    assert "trained at 64 px and runs at data.image_size=96 px" in caplog.text


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("model: {\n  head_dim: 3\n", r"config bad.yaml is not valid YAML \(line 3, column 1\)"),
        ("- a list\n", r"config bad.yaml must be a mapping"),
    ],
)
def test_a_broken_config_file_is_named(tmp_path, content, message):
    (tmp_path / "bad.yaml").write_text(content)
    with pytest.raises(SystemExit, match=message):
        main(["fit", "--config", "bad.yaml"])


def test_a_missing_checkpoint_is_named(capsys):
    with pytest.raises(SystemExit):
        main(["test", "--ckpt_path", "runs/none.ckpt"])
    assert "ckpt_path=runs/none.ckpt: no such file" in capsys.readouterr().err


def test_the_original_configs_use_the_original_loss_and_crop_rules(capsys):
    for name in ["cornernet.yaml", "saccade.yaml", "squeeze.yaml"]:
        with pytest.raises(SystemExit):
            main(["fit", "--config", name, "--print_config"])
        config = yaml.safe_load(capsys.readouterr().out)
        assert config["model"]["loss_normalization"] == "per_class", name
        assert config["model"]["corner_pool"] is True, name
        if name != "saccade.yaml":  # CornerNet's crop scales 0.6, 0.7, ..., 1.3 (zoom 1/s)
            assert config["data"]["crop_scales"] == pytest.approx([0.6 + 0.1 * i for i in range(8)])
            assert config["data"]["scale"] == [1.0, 1.0]
    saccade = build_cli(["--config", "saccade.yaml", "--config", "cpu.yaml"], run=False).model
    assert saccade.hparams.merg_targets == "attention"
    data = build_cli(["--config", "saccade.yaml", "--config", "cpu.yaml"], run=False).datamodule
    assert (data.ignore.min_size, data.ignore.min_visible) == (16, 0.5)
    (crop,) = [t for t in data.train_pipeline.transforms if isinstance(t, ObjectCrop)]
    assert crop.scales == pytest.approx([0.5 + 0.1 * i for i in range(6)])
    assert saccade.hparams.merg_weight == pytest.approx(1 / saccade.backbone.config.stacks)


def test_the_saccade_recipe_trains_a_tiny_saccade(tmp_path):
    # Three merg scales, as the original's attention maps need (n = 3, like Hourglass-54).
    three_levels = HourglassConfig(
        n=3, dims=[8, 12, 16, 16], modules=[1] * 4, stacks=3, return_mergs=True,
        stem_channels=8, feature_dim=8, name="tiny-saccade-3",
    )  # fmt: skip
    backbone = tmp_path / "backbone.yaml"
    backbone.write_text(yaml.safe_dump({"model": {"backbone": three_levels.to_dict()}}))
    recipe = ["--config", "saccade.yaml", "--config", "cpu.yaml", "--trainer.strategy", "auto"]
    tiny = ["--config", str(tiny_config(tmp_path, "saccade")), "--config", str(backbone)]
    main(["fit", *recipe, *tiny, "--config", "debug.yaml"])


def test_a_parse_error_shows_a_one_line_usage_not_every_option(capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--config", "quickstart.yaml", "--data.batch_size", "abc"])
    err = capsys.readouterr().err
    assert err.startswith("usage: hgtrain fit [--config FILE] [--option value ...]\n")
    assert 'Parser key "data.batch_size"' in err and len(err.splitlines()) < 8
