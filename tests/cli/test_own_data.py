"""Own COCO-keypoints folders through the ``hgtrain`` command, from an empty directory: image files
stay inside the set, any number of keypoints trains, flips swap the classes that name a side."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from hgtrain.cli.lightning_cli import build_cli
from hgtrain.cli.main import main
from hgtrain.data.loading.coco_format import write_keypoint_set
from hgtrain.data.sample import Sample
from tests.helpers import tiny_backbone

QUAD_CLASSES = ["upper_left", "upper_right", "lower_right", "lower_left"]
PAIRS = "[[upper_left, upper_right], [lower_left, lower_right]]"


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def quads(folder: str, images: int = 4) -> str:
    """A set of 64 x 48 images, each with a rectangle whose four corners are four classes."""
    samples = []
    for i in range(images):
        x0, y0, x1, y1 = 8 + i, 6 + i, 40 + i, 30 + i
        image = np.zeros((3, 48, 64), np.uint8)
        image[:, y0:y1, x0:x1] = 200
        samples.append(
            Sample(
                image=image,
                keypoints=np.array([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], np.float32),
                labels=np.arange(4),
                object_ids=np.zeros(4, np.int64),
                boxes=np.array([(x0, y0, x1, y1)], np.float32),
                kinds=["quad"],
                image_id=i,
            )
        )
    write_keypoint_set(Path(folder), samples, QUAD_CLASSES)
    return folder


def many_points(folder: str, count: int) -> str:
    """One 64 x 64 image with ``count`` keypoints of one class (an annotation of one category)."""
    (Path(folder) / "images").mkdir(parents=True)
    Image.new("RGB", (64, 64), (90, 90, 90)).save(Path(folder) / "images" / "0.png")
    xy = [(0.5 + i % 64, 0.5 + (i // 64) * 6) for i in range(count)]
    document = {
        "images": [{"id": 0, "file_name": "images/0.png", "width": 64, "height": 64}],
        "categories": [{"id": 1, "name": "dots", "keypoints": ["dot"]}],
        "annotations": [
            {
                "id": 0,
                "image_id": 0,
                "category_id": 1,
                "bbox": [0, 0, 64, 64],
                "keypoints": [v for x, y in xy for v in (x, y, 2)],
            }
        ],
    }
    (Path(folder) / "annotations.json").write_text(json.dumps(document))
    return folder


def tiny_fit(train: str, *options: str) -> list[str]:
    """``hgtrain fit`` arguments that train a tiny model for 2 steps on the own set ``train``."""
    config = {
        "model": {"backbone": tiny_backbone("squeeze").to_dict(), "head_dim": 8},
        "data": {"image_size": 64, "batch_size": 1, "num_workers": 0},
        "trainer": {"accelerator": "cpu", "max_steps": 2, "enable_progress_bar": False},
        "test_after_fit": False,
    }
    Path("tiny.yaml").write_text(yaml.safe_dump(config))
    sets = [f"--data.{split}_dir={train}" for split in ("train", "val", "test")]
    return ["fit", "--config", "tiny.yaml", *sets, *options]


def test_an_image_outside_the_set_folder_stops_fit_naming_the_entry(capsys):
    quads("mine/train")
    Path("elsewhere").mkdir()
    Path("mine/train/images/000000.png").rename("elsewhere/private.png")
    path = Path("mine/train/annotations.json")
    document = json.loads(path.read_text())
    document["images"][0]["file_name"] = "../../elsewhere/private.png"
    path.write_text(json.dumps(document))
    with pytest.raises(SystemExit):
        main(tiny_fit("mine/train"))
    error = capsys.readouterr().err
    assert (
        "images[0]: file_name '../../elsewhere/private.png' climbs out of the set's folder" in error
    )
    assert not Path("lightning_logs").exists() and not Path("runs").exists()
    main(tiny_fit("mine/train", "--data.image_roots=[elsewhere]"))
    assert list(Path("runs").rglob("last.ckpt"))


def test_an_image_with_more_keypoints_than_ever_before_trains_and_previews():
    many_points("dots", 600)
    main(tiny_fit("dots"))
    assert list(Path("runs").rglob("last.ckpt"))
    main(["data-preview", "--data_dir", "dots", "--augmented", "true", "--output", "dots.png"])
    assert Image.open("dots.png").size[0] > 0


def test_flip_pairs_swap_the_sided_classes_of_flipped_images():
    quads("quads")
    module = build_cli(
        tiny_fit("quads", f"--data.flip_pairs={PAIRS}", "--data.hflip=1")[1:], run=False
    )
    module.datamodule.setup("fit")
    _, target = module.datamodule.datasets["train"][0]
    by_class = {
        QUAD_CLASSES[int(k)]: p.tolist()
        for k, p in zip(target["labels"], target["keypoints"], strict=True)
    }
    assert by_class["upper_left"][0] < by_class["upper_right"][0]
    assert by_class["lower_left"][0] < by_class["lower_right"][0]
    main(tiny_fit("quads", f"--data.flip_pairs={PAIRS}"))
    main(["data-preview", "--data_dir", "quads", "--augmented", "true", "--hflip", "1",
          "--flip_pairs", PAIRS, "--output", "quads.png"])  # fmt: skip


def test_a_flip_pair_that_names_no_class_is_one_line(capsys):
    quads("quads")
    with pytest.raises(SystemExit):
        main(tiny_fit("quads", "--data.flip_pairs=[[upper_left, upper_lft]]"))
    (line,) = [line for line in capsys.readouterr().err.splitlines() if "flip_pairs" in line]
    assert "'upper_lft' is not a keypoint class of the data ['upper_left'" in line


def test_flipping_sided_classes_without_pairs_warns_naming_them():
    quads("quads")
    with pytest.warns(UserWarning, match=r"the classes \['upper_left', 'upper_right', "):
        main(tiny_fit("quads"))
