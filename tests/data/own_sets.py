"""Hand-written own keypoint sets (COCO-keypoints folders) for the reading and DataModule tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PIL import Image

from hgtrain.data.sample import CLASS_NAMES

WIDTH, HEIGHT = 40, 30


def points(*xy: tuple[float, float]) -> list[float]:
    """COCO keypoints ``[x1, y1, 2, x2, y2, 2, ...]`` (all visible) of the (x, y) pairs."""
    return [value for x, y in xy for value in (x, y, 2)]


def write_points_set(folder: Path, *annotations: dict[str, Any], images: int = 1) -> Path:
    """A set of ``images`` black 40 x 30 images with the synthetic classes; each annotation (on
    image 0, category "polygon" with any number of ``corner`` keypoints) is ``{"keypoints": [...]}``
    plus optionally its ``bbox`` (default: the whole image)."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    for i in range(images):
        Image.new("RGB", (WIDTH, HEIGHT)).save(folder / "images" / f"{i}.png")
    document = {
        "info": {"keypoint_classes": list(CLASS_NAMES)},
        "images": [
            {"id": i, "file_name": f"images/{i}.png", "width": WIDTH, "height": HEIGHT}
            for i in range(images)
        ],
        "categories": [{"id": 1, "name": "polygon", "keypoints": ["corner"]}],
        "annotations": [
            {"id": i, "image_id": 0, "category_id": 1, "bbox": [0, 0, WIDTH, HEIGHT], **entry}
            for i, entry in enumerate(annotations)
        ],
    }
    (folder / "annotations.json").write_text(json.dumps(document))
    return folder


def inside(count: int) -> dict[str, Any]:
    """An annotation with ``count`` keypoints well inside the image."""
    return {"keypoints": points(*[(1.5 + i % 30, 2.5 + i % 20) for i in range(count)])}
