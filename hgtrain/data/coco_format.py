"""Keypoint sets on disk: PNG (or any PIL-readable) images plus a COCO-keypoints-style JSON.

A set is a folder with ``annotations.json`` and the images it names (``images/000000.png``...).
The JSON follows COCO's keypoint format:

- ``images``: ``{"id", "file_name", "width", "height"}``, file names relative to the folder;
- ``categories``: ``{"id", "name", "keypoints": [keypoint names], "skeleton": []}``;
- ``annotations``: one per object, ``{"id", "image_id", "category_id", "bbox": [x, y, w, h],
  "area", "iscrowd", "keypoints": [x1, y1, v1, ...], "num_keypoints"}``; keypoints with v > 0 are
  used (COCO: 1 labelled but hidden, 2 visible), v = 0 ones are absent;
- ``info``: free-form, with our ``pixel_convention`` and optionally ``keypoint_classes``.

Two conventions make it fit corner detection:

- **Classes are keypoint names.** The heatmap classes are ``info.keypoint_classes`` if given,
  else every category's keypoint names in order of first appearance. Names ``top_left`` and
  ``bottom_right`` are box corners: they must be the corners of the annotation's ``bbox``.
- **Any number of keypoints for single-name categories.** A category whose ``keypoints`` list has
  one name (e.g. ``["corner"]``) may have any number of keypoints per annotation, all of that class
  (a polygon has as many corners as vertices). Otherwise an annotation has exactly one (x, y, v)
  per name, as in COCO.

Coordinates are continuous pixels, pixel (i, j) covering [i, i+1) x [j, j+1) (COCO's own
convention for boxes). Anything malformed raises :class:`DatasetFormatError` naming the file, the
entry and the problem.
"""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from hgtrain.data.sample import Sample

__all__ = [
    "ANNOTATIONS",
    "PIXEL_CONVENTION",
    "DatasetFormatError",
    "ImageRecord",
    "KeypointSet",
    "load_sample",
    "read_keypoint_set",
    "write_keypoint_set",
]

ANNOTATIONS = "annotations.json"
PIXEL_CONVENTION = (
    "keypoints and boxes are continuous (x, y) pixel coordinates; pixel (i, j) (column i, row j) "
    "covers [i, i+1) x [j, j+1), so its centre is (i + 0.5, j + 0.5)"
)
ENCODING_THREADS = 4
BOX_TOLERANCE = 1e-2  # px: how far a top_left / bottom_right keypoint may be from its bbox corner


class DatasetFormatError(ValueError):
    """A keypoint set on disk is malformed; the message names the file and the problem."""


@dataclass
class ImageRecord:
    """One image of a set and its objects (a :class:`Sample` without the pixels)."""

    path: Path
    image_id: int
    width: int
    height: int
    keypoints: np.ndarray
    labels: np.ndarray
    object_ids: np.ndarray
    boxes: np.ndarray
    kinds: list[str]


@dataclass
class KeypointSet:
    """A parsed set: its class names, image records and the JSON's ``info``."""

    class_names: tuple[str, ...]
    records: list[ImageRecord]
    info: dict[str, Any]


def write_keypoint_set(
    directory: Path,
    samples: Iterable[Sample],
    class_names: Sequence[str],
    info: dict[str, Any] | None = None,
) -> None:
    """Write ``samples`` as ``images/<image_id>.png`` plus ``annotations.json`` into ``directory``.

    PNGs are encoded by a few threads (Pillow releases the GIL while compressing).
    """
    directory = Path(directory)
    (directory / "images").mkdir(parents=True, exist_ok=True)
    images, objects = [], []
    with ThreadPoolExecutor(ENCODING_THREADS) as pool:
        pending: deque[Future] = deque()
        for sample in samples:
            file_name = f"images/{sample.image_id:06d}.png"
            pending.append(pool.submit(_save_png, sample.image, directory / file_name))
            if len(pending) > 2 * ENCODING_THREADS:  # bound the images held in memory
                pending.popleft().result()
            images.append(
                {
                    "id": sample.image_id,
                    "file_name": file_name,
                    "width": sample.width,
                    "height": sample.height,
                }
            )
            objects.extend(_objects(sample, class_names))
        for future in pending:
            future.result()
    categories = _categories(objects)
    category_ids = {c["name"]: c["id"] for c in categories}
    annotations = [
        {
            "id": index,
            "image_id": image_id,
            "category_id": category_ids[kind],
            "bbox": [x0, y0, x1 - x0, y1 - y0],
            "area": (x1 - x0) * (y1 - y0),
            "iscrowd": 0,
            "keypoints": [c for x, y in points for c in (x, y, 2)],
            "num_keypoints": len(points),
        }
        for index, (image_id, kind, (x0, y0, x1, y1), points, _) in enumerate(objects)
    ]
    info = {
        "description": "hgtrain keypoint set",
        "pixel_convention": PIXEL_CONVENTION,
        "keypoint_classes": list(class_names),
        **(info or {}),
    }
    document = {
        "info": info,
        "images": images,
        "categories": categories,
        "annotations": annotations,
    }
    (directory / ANNOTATIONS).write_text(json.dumps(document))


def _save_png(image: np.ndarray, path: Path) -> None:
    Image.fromarray(image.transpose(1, 2, 0)).save(path, compress_level=1)


def _objects(sample: Sample, class_names: Sequence[str]) -> list[tuple]:
    """(image_id, kind, box, [(x, y)...], [class names]) per object, as plain Python values."""
    result = []
    for index, kind in enumerate(sample.kinds):
        mine = sample.object_ids == index
        points = [(float(x), float(y)) for x, y in sample.keypoints[mine]]
        names = [class_names[label] for label in sample.labels[mine]]
        box = tuple(float(v) for v in sample.boxes[index])
        result.append((sample.image_id, kind, box, points, names))
    return result


def _categories(objects: list[tuple]) -> list[dict[str, Any]]:
    """One category per kind: a single keypoint name (any number of points per object) when all
    its points share one class, else the fixed list of names that every object has."""
    names_by_kind: dict[str, list[list[str]]] = {}
    for _, kind, _, _, names in objects:
        names_by_kind.setdefault(kind, []).append(names)
    categories = []
    for index, (kind, lists) in enumerate(names_by_kind.items(), start=1):
        distinct = list(dict.fromkeys(n for names in lists for n in names))
        if len(distinct) <= 1:
            keypoints = distinct
        elif all(names == lists[0] for names in lists):
            keypoints = lists[0]
        else:
            raise ValueError(
                f"objects of kind {kind!r} have differing keypoint classes {lists[:3]}...; "
                "a category needs a fixed list of keypoint names or a single name"
            )
        categories.append({"id": index, "name": kind, "keypoints": keypoints, "skeleton": []})
    return categories


def read_keypoint_set(directory: Path) -> KeypointSet:
    """Parse and validate ``directory/annotations.json``; check that every image file exists."""
    directory = Path(directory)
    path = directory / ANNOTATIONS
    if not path.is_file():
        raise DatasetFormatError(f"{path}: file not found (a keypoint set needs {ANNOTATIONS})")
    try:
        document = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise DatasetFormatError(
            f"{path}: not valid JSON: {error.msg} (line {error.lineno}, column {error.colno})"
        ) from None
    except UnicodeDecodeError as error:
        raise DatasetFormatError(f"{path}: not UTF-8 text ({error.reason})") from None
    return _Parser(path).parse(document)


class _Parser:
    """Validates a COCO-keypoints document, raising errors that name the file and the entry."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, problem: str) -> DatasetFormatError:
        return DatasetFormatError(f"{self.path}: {where}: {problem}")

    def field(self, entry: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
        if not isinstance(entry, dict):
            raise self.fail(where, f"expected an object, got {type(entry).__name__}")
        if key not in entry:
            raise self.fail(where, f"missing field {key!r}")
        value = entry[key]
        if not isinstance(value, kind) or isinstance(value, bool):
            names = (
                kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            )
            raise self.fail(where, f"field {key!r} must be {names}, got {value!r:.60}")
        return value

    def parse(self, document: Any) -> KeypointSet:
        if not isinstance(document, dict):
            raise self.fail(
                "top level", "expected a JSON object with images/categories/annotations"
            )
        info = document.get("info", {})
        if not isinstance(info, dict):
            raise self.fail("info", "must be an object")
        categories = self.categories(self.field(document, "categories", list, "top level"))
        class_names = self.class_names(info, categories)
        images = self.images(self.field(document, "images", list, "top level"))
        annotations = self.field(document, "annotations", list, "top level")
        per_image: dict[int, list] = {image_id: [] for image_id in images}
        for index, entry in enumerate(annotations):
            image_id, kind, box, points, names = self.annotation(entry, index, images, categories)
            per_image[image_id].append((kind, box, points, names))
        class_index = {name: i for i, name in enumerate(class_names)}
        records = [
            _record(
                self.path.parent / images[i][0], i, images[i][1], images[i][2], objects, class_index
            )
            for i, objects in per_image.items()
        ]
        return KeypointSet(tuple(class_names), records, info)

    def categories(self, entries: list) -> dict[int, tuple[str, list[str]]]:
        categories = {}
        for index, entry in enumerate(entries):
            where = f"categories[{index}]"
            category_id = self.field(entry, "id", int, where)
            name = self.field(entry, "name", str, where)
            keypoints = self.field(entry, "keypoints", list, where)
            if not all(isinstance(k, str) for k in keypoints):
                raise self.fail(where, "field 'keypoints' must be a list of keypoint names")
            if category_id in categories:
                raise self.fail(where, f"duplicate category id {category_id}")
            categories[category_id] = (name, keypoints)
        return categories

    def class_names(self, info: dict, categories: dict[int, tuple[str, list[str]]]) -> list[str]:
        used = list(dict.fromkeys(k for _, names in categories.values() for k in names))
        if "keypoint_classes" not in info:
            return used
        declared = info["keypoint_classes"]
        if not isinstance(declared, list) or not all(isinstance(n, str) for n in declared):
            raise self.fail("info.keypoint_classes", "must be a list of keypoint names")
        unknown = [n for n in used if n not in declared]
        if unknown:
            raise self.fail("categories", f"keypoint names {unknown} are not in keypoint_classes")
        return declared

    def images(self, entries: list) -> dict[int, tuple[str, int, int]]:
        images = {}
        for index, entry in enumerate(entries):
            where = f"images[{index}]"
            image_id = self.field(entry, "id", int, where)
            file_name = self.field(entry, "file_name", str, where)
            width = self.field(entry, "width", int, where)
            height = self.field(entry, "height", int, where)
            if width < 1 or height < 1:
                raise self.fail(where, f"width and height must be >= 1, got {width} x {height}")
            if image_id in images:
                raise self.fail(where, f"duplicate image id {image_id}")
            if not (self.path.parent / file_name).is_file():
                raise self.fail(where, f"image file {self.path.parent / file_name} does not exist")
            images[image_id] = (file_name, width, height)
        return images

    def annotation(self, entry: Any, index: int, images: dict, categories: dict) -> tuple:
        where = f"annotations[{index}]"
        image_id = self.field(entry, "image_id", int, where)
        category_id = self.field(entry, "category_id", int, where)
        if image_id not in images:
            raise self.fail(where, f"image_id {image_id} is not in images")
        if category_id not in categories:
            raise self.fail(where, f"category_id {category_id} is not in categories")
        bbox = self.field(entry, "bbox", list, where)
        if len(bbox) != 4 or not all(_finite(v) for v in bbox) or bbox[2] < 0 or bbox[3] < 0:
            raise self.fail(where, f"bbox must be [x, y, w, h] with w, h >= 0, got {bbox!r:.80}")
        kind, names = categories[category_id]
        values = self.field(entry, "keypoints", list, where)
        if len(values) % 3 or not all(_finite(v) for v in values):
            raise self.fail(
                where, f"keypoints must be numbers x, y, v per point, got {len(values)}"
            )
        if len(names) != 1 and len(values) != 3 * len(names):
            raise self.fail(
                where,
                f"category {kind!r} has {len(names)} keypoint names but the annotation "
                f"has {len(values) // 3} keypoints",
            )
        triples = [values[i : i + 3] for i in range(0, len(values), 3)]
        if any(v not in (0, 1, 2) for _, _, v in triples):
            raise self.fail(where, "keypoint visibility v must be 0, 1 or 2")
        point_names = names * len(triples) if len(names) == 1 else names
        x, y, w, h = (float(v) for v in bbox)
        box = (x, y, x + w, y + h)
        points, kept = [], []
        for (px, py, v), name in zip(triples, point_names, strict=True):
            if v > 0:
                points.append((float(px), float(py)))
                kept.append(name)
                corner = {"top_left": box[:2], "bottom_right": box[2:]}.get(name)
                if corner and max(abs(px - corner[0]), abs(py - corner[1])) > BOX_TOLERANCE:
                    raise self.fail(
                        where,
                        f"keypoint {name} ({px}, {py}) is not the bbox corner {corner} "
                        "(top_left / bottom_right keypoints are box corners)",
                    )
        return image_id, kind, box, points, kept


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _record(
    path: Path, image_id: int, width: int, height: int, objects: list, class_index: dict
) -> ImageRecord:
    points = [p for _, _, ps, _ in objects for p in ps]
    return ImageRecord(
        path=path,
        image_id=image_id,
        width=width,
        height=height,
        keypoints=np.array(points, dtype=np.float32).reshape(-1, 2),
        labels=np.array([class_index[n] for *_, ns in objects for n in ns], dtype=np.int64),
        object_ids=np.repeat(np.arange(len(objects)), [len(ps) for _, _, ps, _ in objects]),
        boxes=np.array([b for _, b, _, _ in objects], dtype=np.float32).reshape(-1, 4),
        kinds=[k for k, *_ in objects],
    )


def load_sample(record: ImageRecord) -> Sample:
    """Read the record's image (as RGB) into a :class:`Sample`; errors name the file."""
    try:
        with Image.open(record.path) as image:
            pixels = np.array(image.convert("RGB"))
    except OSError as error:
        raise DatasetFormatError(f"{record.path}: cannot read the image ({error})") from None
    if pixels.shape[:2] != (record.height, record.width):
        raise DatasetFormatError(
            f"{record.path}: image is {pixels.shape[1]} x {pixels.shape[0]} but the annotations "
            f"say {record.width} x {record.height}"
        )
    return Sample(
        image=np.ascontiguousarray(pixels.transpose(2, 0, 1)),
        keypoints=record.keypoints,
        labels=record.labels,
        object_ids=record.object_ids.astype(np.int64),
        boxes=record.boxes,
        kinds=record.kinds,
        image_id=record.image_id,
    )
