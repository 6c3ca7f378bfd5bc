"""``hgtrain data-preview`` of own COCO-keypoints folders: stride, letterbox, augmentation, errors."""

import inspect
import math
import shutil

import pytest
from PIL import Image

from hgtrain.data.loading.coco_format import write_keypoint_set
from hgtrain.data.loading.datamodule import KeypointDataModule
from hgtrain.data.loading.folder import KeypointFolder
from hgtrain.data.loading.synthetic import SyntheticKeypoints
from hgtrain.data.loading.transforms import ResizePad
from hgtrain.data.sample import CLASS_NAMES
from hgtrain.tools import data_preview as preview
from hgtrain.training.module import HourglassKeypointModule


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A COCO-keypoints folder of three 48 px synthetic images."""
    path = tmp_path_factory.mktemp("own") / "train"
    dataset = SyntheticKeypoints("val", 3, 48, seed=1)
    write_keypoint_set(path, [dataset.sample(i) for i in range(3)], CLASS_NAMES)
    return path


@pytest.fixture
def encodings(monkeypatch):
    """The TargetEncoding of every render_preview call of ``main``."""
    seen = []
    render = preview.render_preview

    def spy(*args, **kwargs):
        seen.append(kwargs["encoding"])
        return render(*args, **kwargs)

    monkeypatch.setattr(preview, "render_preview", spy)
    return seen


def test_preview_of_a_folder_is_a_grid_of_its_letterboxed_images(folder, tmp_path, encodings):
    output = tmp_path / "p.png"
    args = ["--data_dir", str(folder), "--image_size", "64", "--count", "2", "--columns", "2"]
    assert preview.main([*args, "--output", str(output)]) == output
    with Image.open(output) as picture:
        # 2 samples x 2 tiles of 256 px (64 px enlarged x4), 6 px padding, an 18 px legend
        assert picture.size == (4 * 256 + 5 * 6, 256 + 2 * 6 + 18)
    assert encodings == [preview.TargetEncoding(stride=4)]


@pytest.mark.parametrize(
    ("args", "stride"),
    [([], 4), (["--backbone", "squeeze"], 8), (["--backbone", "squeeze", "--stride", "2"], 2)],
)
def test_the_stride_is_the_backbones_unless_given(folder, tmp_path, encodings, args, stride):
    output = str(tmp_path / "p.png")
    preview.main(
        ["--data_dir", str(folder), "--image_size", "64", "--count", "1", *args, "--output", output]
    )
    assert [e.stride for e in encodings] == [stride]


@pytest.mark.parametrize("stride", [4, 8])
def test_heatmaps_have_one_cell_per_stride_of_the_model_input(folder, stride):
    image, target = KeypointFolder(folder, ResizePad(100))[0]
    targets = preview.TargetEncoding(stride=stride).encode(image, target, len(CLASS_NAMES))
    assert image.shape[-2:] == (100, 100)
    assert targets.heatmap.shape == (1, 3, math.ceil(100 / stride), math.ceil(100 / stride))
    assert targets.heatmap.max() == 1.0 and targets.ignore is None


def test_encoding_defaults_are_the_models():
    parameters = inspect.signature(HourglassKeypointModule).parameters
    encoding = preview.TargetEncoding()
    for name in ("gaussian_iou", "sigma", "min_radius"):
        assert getattr(encoding, name) == parameters[name].default


def test_augmented_preview_uses_the_training_pipeline_with_its_ignore_regions(folder, tmp_path):
    # every object is under min_object_size: no targets, only ignore regions, as training sees it
    module = KeypointDataModule(
        image_size=64, train_dir=str(folder), min_object_size=1000, num_workers=0
    )
    image, target = module.make_train_dataset()[0]
    targets = preview.TargetEncoding().encode(image, target, len(CLASS_NAMES))
    assert targets.heatmap.max() == 0 and targets.ignore.shape == (1, 3, 16, 16)
    assert targets.ignore.any()
    config = tmp_path / "preview.yaml"
    output = tmp_path / "augmented.png"
    config.write_text(
        f"data_dir: {folder}\nimage_size: 64\naugmented: true\ncrop_scales: [0.8, 1.2]\n"
        f"min_object_size: 1000\nfirst: 1\ncount: 6\noutput: {output}\n"
    )
    assert preview.main(["--config", str(config)]) == output
    with Image.open(output) as picture:
        assert picture.width == 4 * 256 + 5 * 6  # the two samples from --first 1 to the end


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ("--data_dir {tmp}/missing", "--data_dir={tmp}/missing: no such folder"),
        (
            "--data_dir {tmp}",
            "{tmp}/annotations.json: file not found (a keypoint set needs annotations.json)",
        ),
        (
            "--data_dir {folder} --first 3",
            "--first=3: {folder} has 3 samples, so --first must be at most 2",
        ),
        ("--data_dir {folder} --first -1", "--first=-1: must be >= 0"),
        ("--data_dir {folder} --stride 0", "--stride=0: must be >= 1"),
        ("--data_dir {folder} --hflip 2", "--hflip=2.0: must be a probability in [0, 1]"),
        (
            "--data_dir {folder} --backbone resnet",
            "--backbone=resnet: must be one of ['cornernet', 'hourglass104', 'hourglass52', "
            "'hourglass54', 'saccade', 'squeeze']",
        ),
        (
            "--augmented true",
            "--augmented: needs --data_dir (the synthetic stream is always augmented)",
        ),
        (
            "--data_dir {folder} --clean true",
            "--clean, --scene and --background apply to the synthetic data only",
        ),
        ("--scene fancy", "--scene=fancy: must be one of ['wide', 'classic', 'unseen']"),
        (
            "--background wood",
            "--background=wood: must be one of ['smooth', 'noise', 'stripes', 'marble', 'photo']",
        ),
        ("--sigma 0", "--sigma=0.0: must be > 0 (heatmap cells)"),
    ],
)
def test_a_bad_option_or_folder_is_one_line(folder, tmp_path, capsys, args, message):
    args = args.format(tmp=tmp_path, folder=folder).split()
    with pytest.raises(SystemExit) as exit:
        preview.main([*args, "--output", str(tmp_path / "p.png")])
    assert exit.value.code == 2
    expected = "hgtrain data-preview: " + message.format(tmp=tmp_path, folder=folder)
    assert capsys.readouterr().err.splitlines() == [expected]


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (
            "annotations.json",
            "annotations.json: not valid JSON: Expecting value (line 1, column 1)",
        ),
        ("images/000001.png", "images/000001.png: cannot read the image (cannot identify image"),
    ],
)
def test_a_damaged_folder_is_one_line_naming_the_file(folder, tmp_path, capsys, damage, problem):
    damaged = tmp_path / "damaged"
    shutil.copytree(folder, damaged)
    (damaged / damage).write_bytes(b"not it")
    with pytest.raises(SystemExit) as exit:
        preview.main(["--data_dir", str(damaged), "--output", str(tmp_path / "p.png")])
    assert exit.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"hgtrain data-preview: {damaged}/{problem}")
