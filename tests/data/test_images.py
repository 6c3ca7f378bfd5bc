"""Images to predict on: any folder of pictures, letterboxed, with the way back to their pixels."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hgtrain.data.loading.images import ImageFolder, collate_images, image_files, to_original_pixels


def picture(path: Path, width: int, height: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((height, width, 3), 128, np.uint8)).save(path)
    return path


def test_every_image_under_the_folder_is_found_in_sorted_order(tmp_path):
    picture(tmp_path / "b.png", 10, 10)
    picture(tmp_path / "a.jpg", 10, 10)
    picture(tmp_path / "street" / "c.JPEG", 10, 10)
    (tmp_path / "notes.txt").write_text("not an image")
    names = [p.relative_to(tmp_path).as_posix() for p in image_files(tmp_path)]
    assert names == ["a.jpg", "b.png", "street/c.JPEG"]


@pytest.mark.parametrize("make", ["missing", "empty"])
def test_a_missing_or_empty_folder_is_named(tmp_path, make):
    folder = tmp_path / "photos"
    if make == "empty":
        folder.mkdir()
    with pytest.raises(FileNotFoundError, match="photos"):
        ImageFolder(folder, 64)


def test_images_are_letterboxed_and_keypoints_map_back_to_their_own_pixels(tmp_path):
    picture(tmp_path / "wide.png", 200, 100)
    image, info = ImageFolder(tmp_path, 64)[0]
    assert image.shape == (3, 64, 64) and image.dtype == torch.uint8
    assert image.eq(128).all()  # the padding below the 64 x 32 picture repeats its bottom row
    assert (info["width"], info["height"], info["file"]) == (200, 100, "wide.png")
    on_image = torch.tensor([[32.0, 16.0], [64.0, 32.0], [0.0, 0.0]])
    on_padding = torch.tensor([[10.0, 40.0]])
    original, inside = to_original_pixels(torch.cat([on_image, on_padding]), info)
    assert inside.tolist() == [True, True, True, False]
    torch.testing.assert_close(original, torch.tensor([[100.0, 50.0], [200.0, 100.0], [0.0, 0.0]]))


@pytest.mark.parametrize(
    ("width", "height", "fitted"), [(120, 100, (64, 53)), (300, 80, (64, 17)), (64, 64, (64, 64))]
)
def test_a_flat_image_of_any_shape_stays_flat_and_its_edge_maps_back_exactly(
    tmp_path, width, height, fitted
):
    picture(tmp_path / "flat.png", width, height)
    image, info = ImageFolder(tmp_path, 64)[0]
    assert image.eq(128).all()  # no edge where the image meets its padding
    x, y = fitted
    corner, just_past, on_padding = [x, y], [x + 0.5, y + 0.5], [0.0, y + 1.5]
    original, inside = to_original_pixels(torch.tensor([corner, just_past, on_padding]), info)
    assert inside.tolist() == [True, True, False]
    torch.testing.assert_close(original, torch.tensor([[width, height]] * 2, dtype=torch.float32))


def test_an_unreadable_image_is_reported_and_left_out_of_the_batch(tmp_path):
    picture(tmp_path / "a.png", 30, 20)
    (tmp_path / "b.jpg").write_bytes(b"\xff\xd8\xff not really a JPEG")
    folder = ImageFolder(tmp_path, 32)
    images, infos = collate_images([folder[0], folder[1]])
    assert images.shape == (1, 3, 32, 32)
    assert [info["error"] is None for info in infos] == [True, False]
    assert "cannot read the image" in infos[1]["error"]


def test_a_batch_of_only_unreadable_images_is_empty(tmp_path):
    (tmp_path / "b.png").write_bytes(b"")
    images, infos = collate_images([ImageFolder(tmp_path, 32)[0]])
    assert images.shape[0] == 0 and len(infos) == 1
