"""``hgtrain export --format torch-export | onnx``: graphs of the trained network or its backbone
that give the eager model's outputs at any batch size, checked before they are written."""

import contextlib
import io
import sys

import pytest
import torch

import hgtrain
from hgtrain.models.network import RawOutput
from hgtrain.weights import deploy
from hgtrain.weights.export import main
from tests.checkpoints import fit, tiny_module, train_checkpoint

TOLERANCE = 1e-4
DEPLOY_EXTRA = "ONNX export needs the deploy extra: pip install 'hgtrain[deploy]'"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("run") / "last.ckpt"
    train_checkpoint(path)
    return path


@pytest.fixture(scope="module")
def corner_pool_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("corner_pool") / "last.ckpt"
    module = tiny_module("squeeze", corner_pool=True, class_names=["top_left", "bottom_right"])
    fit(module, steps=1).save_checkpoint(path)
    return path


@pytest.fixture
def onnxruntime():
    for name in ("onnx", "onnxscript"):
        pytest.importorskip(name, reason=DEPLOY_EXTRA)
    return pytest.importorskip("onnxruntime", reason=DEPLOY_EXTRA)


def export(ckpt_path, output, *options):
    main(["--ckpt_path", str(ckpt_path), "--output", str(output), *options])


def eager(ckpt_path, part, images):
    """The outputs of ``part`` of the trained network, run as a plain PyTorch module."""
    network = hgtrain.load_backbone(ckpt_path, with_heads=True, mode="eval")
    with torch.no_grad():
        if part == "network":
            return list(network.raw_outputs(images))
        return network.backbone(images).features


def assert_close(got, expected):
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert g.shape == e.shape
        assert (g - e).abs().max().item() <= TOLERANCE


def reported_difference(line):
    """The max abs difference that the output line reports."""
    assert " inputs checked: max abs difference " in line
    return float(line.split("max abs difference ")[1].split()[0])


@pytest.mark.parametrize(
    ("part", "options", "size"),
    [("network", [], 64), ("backbone", ["--part", "backbone", "--input_size", "96"], 96)],
)
def test_a_torch_export_file_loads_and_gives_the_eager_outputs_at_another_batch_size(
    checkpoint, tmp_path, capsys, part, options, size
):
    output = tmp_path / f"{part}.pt2"
    export(checkpoint, output, "--format", "torch-export", *options)
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith(
        f"hgtrain export: wrote {output} (torch-export, {part} at {size}x{size} px, dynamic batch; "
        "3 inputs checked: max abs difference "
    )
    assert reported_difference(line) <= TOLERANCE
    program = torch.export.load(output)
    images = deploy.check_inputs(part, 5, size, seed=7)
    with torch.no_grad():
        got = list(program.module()(images))
    assert_close(got, eager(checkpoint, part, images))
    if part == "backbone":
        assert [f.shape for f in got] == [torch.Size([5, 8, 24, 24])] * 2
    assert [p.name for p in tmp_path.iterdir()] == [output.name]


@pytest.fixture(scope="module")
def onnx_network(corner_pool_checkpoint, tmp_path_factory):
    """The network of the corner-pool checkpoint as an ONNX file, and the export's output."""
    pytest.importorskip("onnxscript", reason=DEPLOY_EXTRA)
    output = tmp_path_factory.mktemp("onnx") / "net.onnx"
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        export(corner_pool_checkpoint, output, "--format", "onnx")
    return output, printed.getvalue()


@pytest.fixture(scope="module")
def onnx_backbone(checkpoint, tmp_path_factory):
    """The backbone of the checkpoint as an ONNX file, and the export's output."""
    pytest.importorskip("onnxscript", reason=DEPLOY_EXTRA)
    output = tmp_path_factory.mktemp("onnx") / "backbone.onnx"
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        export(checkpoint, output, "--format", "onnx", "--part", "backbone")
    return output, printed.getvalue()


@pytest.mark.parametrize(
    ("exported", "source", "part", "outputs"),
    [
        ("onnx_network", "corner_pool_checkpoint", "network", ["heatmaps", "offsets"]),
        ("onnx_backbone", "checkpoint", "backbone", ["features_0", "features_1"]),
    ],
    ids=["corner-pool-network", "backbone"],
)
def test_an_onnx_file_gives_the_eager_outputs_in_onnxruntime_at_another_batch_size(
    onnxruntime, request, exported, source, part, outputs
):
    output, printed = request.getfixturevalue(exported)
    (line,) = printed.splitlines()  # no exporter chatter
    assert line.startswith(f"hgtrain export: wrote {output} (onnx, {part} at 64x64 px")
    assert reported_difference(line) <= TOLERANCE
    session = onnxruntime.InferenceSession(str(output), providers=["CPUExecutionProvider"])
    (given,) = session.get_inputs()
    assert (given.name, given.shape) == ("images", ["batch", 3, 64, 64])
    assert [out.name for out in session.get_outputs()] == outputs
    images = deploy.check_inputs(part, 5, 64, seed=7)
    got = [torch.from_numpy(out) for out in session.run(None, {"images": images.numpy()})]
    assert_close(got, eager(request.getfixturevalue(source), part, images))


def test_the_onnx_network_outputs_decode_to_the_keypoints_of_predict(
    onnxruntime, onnx_network, corner_pool_checkpoint
):
    network = hgtrain.load_backbone(corner_pool_checkpoint, with_heads=True, mode="eval")
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    session = onnxruntime.InferenceSession(str(onnx_network[0]), providers=["CPUExecutionProvider"])
    heatmaps, offsets = session.run(None, {"images": images.numpy()})
    got = network.decode(RawOutput(torch.from_numpy(heatmaps), torch.from_numpy(offsets)), (64, 64))
    for detections, expected in zip(got, network.predict(images), strict=True):
        assert torch.equal(detections["labels"], expected["labels"])
        torch.testing.assert_close(detections["keypoints"], expected["keypoints"])


def test_an_export_that_differs_from_the_eager_model_writes_nothing(
    checkpoint, tmp_path, monkeypatch
):
    output = tmp_path / "net.pt2"
    output.write_text("someone's file")
    run_file = deploy.run_file
    monkeypatch.setattr(deploy, "run_file", lambda *args: [out + 1e-3 for out in run_file(*args)])
    with pytest.raises(SystemExit, match=r"differs from the eager model by up to 0\.001 on 3"):
        export(checkpoint, output, "--format", "torch-export", "--overwrite", "true")
    assert output.read_text() == "someone's file"
    assert [p.name for p in tmp_path.iterdir()] == ["net.pt2"]


@pytest.mark.parametrize("format", ["torch-export", "onnx"])
def test_an_existing_output_is_kept_unless_overwrite_is_given(checkpoint, tmp_path, format):
    if format == "onnx":
        pytest.importorskip("onnxscript", reason=DEPLOY_EXTRA)
    output = tmp_path / "net.bin"
    output.write_text("someone's file")
    with pytest.raises(SystemExit, match=r"net\.bin exists; pass --overwrite true"):
        export(checkpoint, output, "--format", format)
    assert output.read_text() == "someone's file"


def test_an_input_size_the_hourglass_cannot_take_is_one_line_with_the_sizes_that_work(
    checkpoint, tmp_path
):
    with pytest.raises(SystemExit) as exit:
        export(checkpoint, tmp_path / "net.pt2", "--format", "torch-export", "--input_size", "60")
    message = str(exit.value.code)
    assert "\n" not in message
    assert message.startswith("hgtrain export: --input_size 60: Input height 60 does not fit")
    assert message.endswith("the nearest input sizes that work are 48 or 61.")
    assert not (tmp_path / "net.pt2").exists()


def test_a_file_that_records_no_input_size_needs_input_size(checkpoint, tmp_path):
    weights = tmp_path / "weights.pt"
    state = hgtrain.load_backbone(checkpoint).state_dict()
    torch.save(state, weights)
    with pytest.raises(SystemExit, match=r"weights\.pt records no input size; pass --input_size N"):
        export(weights, tmp_path / "b.pt2", "--format", "torch-export", "--part", "backbone")


def test_the_network_part_needs_a_training_checkpoint(checkpoint, tmp_path):
    backbone = tmp_path / "backbone.pt"
    export(checkpoint, backbone)
    with pytest.raises(SystemExit, match=r"holds no keypoint heads: --part network needs an"):
        export(backbone, tmp_path / "net.pt2", "--format", "torch-export")


def test_onnx_without_the_deploy_extra_says_what_to_install(checkpoint, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # as if not installed
    with pytest.raises(SystemExit) as exit:
        export(checkpoint, tmp_path / "net.onnx", "--format", "onnx")
    assert exit.value.code == (
        "hgtrain export: --format onnx needs the deploy extra: pip install 'hgtrain[deploy]'"
    )
    assert not (tmp_path / "net.onnx").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--part", "network"], "--part network: --format hgtrain holds the backbone only;"),
        (
            ["--format", "cornernet-lite", "--input_size", "128"],
            "--input_size: applies to --format torch-export and onnx only",
        ),
        (["--format", "onnx", "--input_size", "0"], "--input_size=0: must be >= 1"),
        (["--format", "onnx", "--tolerance", "-1"], "--tolerance=-1.0: must be >= 0"),
    ],
)
def test_options_that_do_not_fit_the_format_are_one_line(args, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit:
        export(tmp_path / "last.ckpt", tmp_path / "out", *args)
    assert exit.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"hgtrain export: {message}")


def test_the_help_describes_every_format_and_part(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")  # no line breaks inside names such as cornernet-lite
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for format in ("hgtrain:", "cornernet-lite:", "torch-export:", "onnx:"):
        assert format in text
    for part in ("--part", "network (their default)", "backbone: normalised images"):
        assert part in text
    assert "pip install 'hgtrain[deploy]'" in text
