"""Files written by hgtrain 0.6.0, before the modules moved into subpackages, still work.

``tests/fixtures/hgtrain-0.6.0`` holds a training checkpoint of a tiny squeeze-style hourglass
(``hgtrain fit --config quickstart.yaml`` with a tiny backbone at 64 px, one epoch), the
``config.yaml`` that run saved, and the backbone that ``hgtrain export`` wrote from it, all made by
hgtrain 0.6.0. The checkpoint and the config name the old module paths of the default callbacks
(``hgtrain.checkpointing.BestCheckpoint``, ...).
"""

import logging
import shutil
from pathlib import Path

import pytest
import torch
import yaml

import hgtrain
from hgtrain.cli.main import main
from hgtrain.training.module import HourglassKeypointModule

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "hgtrain-0.6.0"
CHECKPOINT = FIXTURES / "last.ckpt"
BACKBONE = FIXTURES / "backbone.pt"
CONFIG = FIXTURES / "config.yaml"


@pytest.fixture
def in_empty_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_fixture_is_from_before_the_moves():
    stored = torch.load(CHECKPOINT, weights_only=True, map_location="cpu")["hgtrain"]
    assert stored["version"] == "0.6.0"
    classes = [c["class_path"] for c in stored["config"]["trainer"]["callbacks"]]
    assert "hgtrain.checkpointing.BestCheckpoint" in classes


def test_an_old_checkpoint_loads_as_a_module_and_as_a_backbone():
    module = HourglassKeypointModule.load_from_checkpoint(CHECKPOINT, map_location="cpu")
    backbone = hgtrain.load_backbone(CHECKPOINT)
    exported = hgtrain.load_backbone(BACKBONE)
    for name, weight in exported.state_dict().items():
        assert torch.equal(weight, backbone.state_dict()[name])
        assert torch.equal(weight, module.backbone.state_dict()[name])
    network = hgtrain.load_backbone(CHECKPOINT, with_heads=True, mode="eval")
    (found,) = network.predict(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))
    assert set(found) == {"keypoints", "scores", "labels"}


def test_an_old_checkpoint_validates_and_exports_through_the_command(in_empty_directory, caplog):
    shutil.copy(CHECKPOINT, "old.ckpt")
    with caplog.at_level(logging.INFO):
        main(["validate", "--ckpt_path", "old.ckpt", "--trainer.enable_progress_bar", "false"])
    assert "validation results" in caplog.text
    main(["export", "--ckpt_path", "old.ckpt", "--output", "backbone.pt"])
    again, before = hgtrain.load_backbone("backbone.pt"), hgtrain.load_backbone(BACKBONE)
    assert all(torch.equal(w, again.state_dict()[k]) for k, w in before.state_dict().items())


def test_an_old_saved_config_is_one_line_naming_the_replacements(in_empty_directory):
    shutil.copy(CONFIG, "config.yaml")
    with pytest.raises(SystemExit) as refusal:
        main(["fit", "--config", "config.yaml", "--print_config"])
    assert str(refusal.value) == (
        "hgtrain: config config.yaml names modules of hgtrain 0.6 (hgtrain.callbacks, "
        "hgtrain.checkpointing), which hgtrain 0.7 moved: replace 'hgtrain.callbacks.' by "
        "'hgtrain.training.callbacks.' and 'hgtrain.checkpointing.' by "
        "'hgtrain.training.checkpoints.' in the file"
    )


def test_an_old_saved_config_runs_after_the_named_replacements(in_empty_directory, capsys):
    text = CONFIG.read_text()
    text = text.replace("hgtrain.callbacks.", "hgtrain.training.callbacks.")
    text = text.replace("hgtrain.checkpointing.", "hgtrain.training.checkpoints.")
    Path("config.yaml").write_text(text)
    with pytest.raises(SystemExit) as printed:
        main(["fit", "--config", "config.yaml", "--print_config"])
    assert printed.value.code in (0, None)
    config = yaml.safe_load(capsys.readouterr().out)
    assert config["trainer"]["callbacks"][0]["class_path"] == (
        "hgtrain.training.checkpoints.BestCheckpoint"
    )
