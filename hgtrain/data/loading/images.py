"""Plain images to predict on: every picture in a folder, letterboxed to the model's input size.

Each image is read as RGB (PNG, JPEG, BMP, TIFF, WebP, GIF: whatever PIL reads), fitted into the
``size`` x ``size`` input by the same letterbox that evaluation uses (:class:`ResizePad`: longer
side to ``size``, padding at the bottom and right that repeats the image's border pixels, so the
network sees no edge where image and padding meet), and carries what is needed to map predicted
keypoints back to its own pixels and to drop those on the padding. An image that cannot be read
does not stop the run: its item says why, and the batch passes it on for the prediction writer to
report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset
from torchvision import tv_tensors

from hgtrain.data.loading.transforms import ResizePad
from hgtrain.task.decode import on_image

__all__ = ["IMAGE_SUFFIXES", "ImageFolder", "collate_images", "image_files", "to_original_pixels"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif")

ImageInfo = dict[str, Any]
"""``index`` (in the folder's sorted files), ``file`` (relative to the folder), ``path``,
``width``, ``height`` (original pixels), ``scale`` (x, y: input pixels per original pixel) and
``error`` (``None``, or why the image was skipped)."""


def image_files(directory: str | Path) -> list[Path]:
    """Every image file under ``directory``, sub-folders included, sorted by path; a
    ``FileNotFoundError`` naming the folder when it is missing or holds no images."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: no such folder of images")
    files = sorted(p for p in directory.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"{directory} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


class ImageFolder(Dataset):
    """Every image file under ``directory`` (sub-folders included, sorted by path).

    Items are ``(image uint8 [3, size, size] or None, info)`` (see :data:`ImageInfo`).
    """

    def __init__(self, directory: str | Path, size: int) -> None:
        self.directory = Path(directory)
        self.files = image_files(directory)
        self.letterbox = ResizePad(size)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[Tensor | None, ImageInfo]:
        path = self.files[index]
        info: ImageInfo = {
            "index": index,
            "file": path.relative_to(self.directory).as_posix(),
            "path": str(path),
            "width": 0,
            "height": 0,
            "scale": (1.0, 1.0),
            "error": None,
        }
        try:
            with Image.open(path) as picture:
                pixels = np.array(picture.convert("RGB"))
        except (OSError, ValueError, Image.DecompressionBombError) as error:
            info["error"] = f"cannot read the image ({error})"
            return None, info
        height, width = pixels.shape[:2]
        image = tv_tensors.Image(torch.from_numpy(pixels).permute(2, 0, 1).contiguous())
        image = self.letterbox(image)
        fitted_height, fitted_width = self.letterbox.fitted_size(height, width)
        info.update(
            width=width, height=height, scale=(fitted_width / width, fitted_height / height)
        )
        return image.as_subclass(Tensor), info


def collate_images(
    items: list[tuple[Tensor | None, ImageInfo]],
) -> tuple[Tensor, list[ImageInfo]]:
    """``(images uint8 [n, 3, S, S] of the readable images, infos of all of them)``: unreadable
    images are left out of the tensor and kept in the infos (with their ``error``), in order."""
    images = [image for image, _ in items if image is not None]
    infos = [info for _, info in items]
    stacked = torch.stack(images) if images else torch.empty(0, 3, 0, 0, dtype=torch.uint8)
    return stacked, infos


def to_original_pixels(keypoints: Tensor, info: ImageInfo) -> tuple[Tensor, Tensor]:
    """``(keypoints in the image's own pixels, which predictions lie on the image)``: keypoints
    on the letterbox padding are not on the image; its right and bottom edges are, and keypoints
    decoded just past them (:func:`~hgtrain.task.decode.on_image`) are put back on them."""
    scale = keypoints.new_tensor(info["scale"])
    size = keypoints.new_tensor([info["width"], info["height"]])
    inside = on_image(keypoints, size * scale)
    return (keypoints[inside] / scale).minimum(size), inside
