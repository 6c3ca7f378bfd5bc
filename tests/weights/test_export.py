"""``hgtrain export``: train -> export -> load elsewhere gives the same network, in both formats."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import hgtrain
from hgtrain.weights.export import main
from tests.checkpoints import MONITOR, train_checkpoint
from tests.helpers import tiny_backbone
from tests.reference import cornernet_lite

ROOT = Path(__file__).resolve().parents[2]

LOAD_IN_A_FRESH_PROCESS = textwrap.dedent(
    """
    import sys
    import torch
    import hgtrain

    hgtrain_file, lite_file, input_file, threads, output_file = sys.argv[1:]
    torch.set_num_threads(int(threads))
    x = torch.load(input_file, weights_only=True)
    with torch.no_grad():
        features = {
            name: hgtrain.load_backbone(path, mode="eval")(x).features
            for name, path in (("hgtrain", hgtrain_file), ("cornernet-lite", lite_file))
        }
    torch.save(features, output_file)
    """
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    path = tmp_path_factory.mktemp("run") / "last.ckpt"
    return path, train_checkpoint(path).eval()


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    ckpt_path, _ = trained
    folder = tmp_path_factory.mktemp("exported")
    files = {"hgtrain": folder / "backbone.pt", "cornernet-lite": folder / "backbone_lite.pkl"}
    for format, output in files.items():
        main(["--ckpt_path", str(ckpt_path), "--output", str(output), "--format", format])
    return files


def read(path):
    return torch.load(path, weights_only=True)


def test_the_export_holds_weights_architecture_normalisation_and_provenance(trained, exported):
    ckpt_path, module = trained
    content = read(exported["hgtrain"])
    assert content["format"] == "hgtrain-backbone"
    assert content["format_version"] == 1
    state = module.backbone.state_dict()
    assert content["state_dict"].keys() == state.keys()
    assert all(torch.equal(content["state_dict"][k], v) for k, v in state.items())
    assert content["config"] == tiny_backbone("squeeze").to_dict()
    assert content["feature_info"] == module.backbone.feature_info
    assert content["merg_info"] == []
    assert content["input"] == {
        "pixel_mean": pytest.approx([0.485, 0.456, 0.406]),
        "pixel_std": pytest.approx([0.229, 0.224, 0.225]),
        "value_range": "RGB uint8 / 255",
        "input_size": 64,
    }
    provenance = content["provenance"]
    (checkpoint_state,) = read(ckpt_path)["callbacks"].values()
    assert provenance["variant"] == "tiny-squeeze"
    assert provenance["global_step"] == 3
    assert provenance["metrics"] == {MONITOR: checkpoint_state["best_model_score"].item()}
    assert provenance["hgtrain_version"] == hgtrain.__version__
    assert provenance["torch_version"] == torch.__version__
    assert provenance["lightning_version"]
    assert provenance["source_checkpoint"] == str(ckpt_path.resolve())
    assert provenance["created"].startswith("20")


@pytest.fixture(scope="module")
def features_from_a_fresh_process(exported, tmp_path_factory):
    folder = tmp_path_factory.mktemp("fresh")
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    torch.save(x, folder / "x.pt")
    command = [
        sys.executable,
        "-c",
        LOAD_IN_A_FRESH_PROCESS,
        str(exported["hgtrain"]),
        str(exported["cornernet-lite"]),
        str(folder / "x.pt"),
        str(torch.get_num_threads()),
        str(folder / "features.pt"),
    ]
    subprocess.run(command, check=True, cwd=ROOT, timeout=120)
    return x, read(folder / "features.pt")


@pytest.mark.parametrize("format", ["hgtrain", "cornernet-lite"])
def test_an_exported_backbone_gives_identical_features_in_a_fresh_process(
    trained, features_from_a_fresh_process, format
):
    _, module = trained
    x, features = features_from_a_fresh_process
    with torch.no_grad():
        expected = module.backbone(x).features
    assert len(features[format]) == len(expected) == 2
    for loaded, trained_feature in zip(features[format], expected, strict=True):
        assert torch.equal(loaded, trained_feature)


def test_the_original_code_loads_the_cornernet_lite_layout(trained, exported):
    # The original CornerNet-Lite model: heads beside ``hg``, wrapped in a DummyModule (``module.``).
    _, module = trained
    config = module.backbone.config
    original = torch.nn.Module()
    original.module = torch.nn.Module()
    original.module.hg = cornernet_lite.build(
        config.n,
        config.dims,
        config.modules,
        config.stacks,
        fire=True,
        transposed_unpool=True,
        stem_dim=config.stem_channels,
        cnv_dim=config.feature_dim,
    )
    original.module.tl_heats = torch.nn.Conv2d(8, 2, 1)
    original.eval()
    result = original.load_state_dict(read(exported["cornernet-lite"]), strict=False)
    assert result.unexpected_keys == []
    assert set(result.missing_keys) == {"module.tl_heats.weight", "module.tl_heats.bias"}
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected, got = module.backbone(x).features, original.module.hg(x)
    assert all(torch.equal(a, b) for a, b in zip(expected, got, strict=True))


def test_the_cornernet_lite_format_converts_any_readable_weights(exported, tmp_path):
    output = tmp_path / "again.pkl"
    main(
        [
            "--ckpt_path",
            str(exported["hgtrain"]),
            "--output",
            str(output),
            "--format=cornernet-lite",
        ]
    )
    again, first = read(output), read(exported["cornernet-lite"])
    assert again.keys() == first.keys()
    assert all(torch.equal(again[k], v) for k, v in first.items())


def test_an_existing_output_is_kept_unless_overwrite_is_given(trained, tmp_path):
    ckpt_path, _ = trained
    output = tmp_path / "backbone.pt"
    output.write_text("someone's file")
    with pytest.raises(SystemExit, match=r"backbone\.pt exists; pass --overwrite true"):
        main(["--ckpt_path", str(ckpt_path), "--output", str(output)])
    assert output.read_text() == "someone's file"
    main(["--ckpt_path", str(ckpt_path), "--output", str(output), "--overwrite", "true"])
    assert read(output)["format"] == "hgtrain-backbone"
    assert [p.name for p in tmp_path.iterdir()] == ["backbone.pt"]


def test_a_failed_write_leaves_the_existing_output_and_no_temporary_file(
    trained, tmp_path, monkeypatch
):
    ckpt_path, _ = trained
    output = tmp_path / "backbone.pt"
    output.write_text("someone's file")

    def fail_midway(content, file):
        file.write(b"half a file")
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", fail_midway)
    with pytest.raises(SystemExit, match="No space left on device"):
        main(["--ckpt_path", str(ckpt_path), "--output", str(output), "--overwrite", "true"])
    assert output.read_text() == "someone's file"
    assert [p.name for p in tmp_path.iterdir()] == ["backbone.pt"]


def test_the_export_never_writes_over_its_own_checkpoint(trained, tmp_path):
    ckpt_path = tmp_path / "last.ckpt"
    ckpt_path.write_bytes(trained[0].read_bytes())
    with pytest.raises(SystemExit, match="is the checkpoint being exported"):
        main(["--ckpt_path", str(ckpt_path), "--output", str(ckpt_path), "--overwrite", "true"])
    assert ckpt_path.read_bytes() == trained[0].read_bytes()


def test_exporting_weights_without_training_metadata_says_what_to_do(exported, tmp_path):
    with pytest.raises(
        SystemExit, match=r"not an hgtrain training checkpoint.*--format cornernet-lite"
    ):
        main(["--ckpt_path", str(exported["cornernet-lite"]), "--output", str(tmp_path / "b.pt")])


def test_a_truncated_checkpoint_or_export_is_named(trained, exported, tmp_path):
    for source in (trained[0], exported["hgtrain"]):
        cut = tmp_path / f"cut_{source.name}"
        cut.write_bytes(source.read_bytes()[:4000])
        with pytest.raises(SystemExit, match=rf"cut_{source.name} is not a readable PyTorch"):
            main(["--ckpt_path", str(cut), "--output", str(tmp_path / "out.pt")])
        with pytest.raises(ValueError, match=rf"cut_{source.name} is not a readable PyTorch"):
            hgtrain.load_backbone(cut)


def test_python_m_hgtrain_export_reports_errors_on_stderr(tmp_path):
    command = [sys.executable, "-m", "hgtrain.weights.export"]
    command += ["--ckpt_path", str(tmp_path / "missing.ckpt"), "--output", str(tmp_path / "b.pt")]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 1
    assert "hgtrain export: No checkpoint at" in result.stderr
    assert not (tmp_path / "b.pt").exists()


def test_options_can_come_from_a_yaml_config(trained, tmp_path):
    output = tmp_path / "backbone_lite.pkl"
    config = tmp_path / "export.yaml"
    config.write_text(f"ckpt_path: {trained[0]}\noutput: {output}\nformat: cornernet-lite\n")
    main(["--config", str(config)])
    assert all(key.startswith("module.hg.") for key in read(output))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "tflite"], "argument --format: invalid choice: 'tflite'"),
        (["--overwrite", "yes please"], "--overwrite: Expected a <class 'bool'>. Got value: yes"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_option_and_the_value(args, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit:
        main(
            ["--ckpt_path", str(tmp_path / "last.ckpt"), "--output", str(tmp_path / "b.pt"), *args]
        )
    assert exit.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"hgtrain export: {message}")
