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

File names stay inside the set: each resolves (symlinks followed) to a file in the set's folder
or in one of the ``image_roots`` the reader is given, never elsewhere. An absolute name, a ``..``
or a symlink that leads out of them is a :class:`DatasetFormatError` naming the entry, so that a
set from someone else cannot make training read any image file on the machine.

Coordinates are continuous pixels, pixel (i, j) covering [i, i+1) x [j, j+1) (COCO's own
convention for boxes), so an image covers the closed rectangle [0, W] x [0, H]: a keypoint at
x == W lies on its right edge, inside. Anything malformed (a NaN or infinite coordinate
included) raises :class:`DatasetFormatError` naming the file, the entry and the problem.

Keypoints that no image pixel can hold are not used, and reading says so once per file: keypoints
outside the closed image rectangle, and all keypoints of an annotation whose bbox has no area
inside its image (the box is dropped with them). Up to :data:`MAX_IGNORED_FRACTION` of a file's
keypoints are left out with an :class:`IgnoredKeypointsWarning` that gives their number and an
example; more (or any, with ``strict=True``) is a :class:`DatasetFormatError` naming the same facts.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections import deque
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from hgtrain.data.sample import Sample

__all__ = [
    "ANNOTATIONS",
    "MAX_IGNORED_FRACTION",
    "PIXEL_CONVENTION",
    "DatasetFormatError",
    "IgnoredKeypointsWarning",
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
MAX_IGNORED_FRACTION = 0.1
"""Largest share of a file's keypoints (v > 0) that reading leaves out with a warning rather than
an error (outside their image, or of an annotation whose bbox has no area in the image)."""


class DatasetFormatError(ValueError):
    """A keypoint set on disk is malformed; the message names the file and the problem."""


class IgnoredKeypointsWarning(UserWarning):
    """Some keypoints of a set lie where no image pixel is; they are left out of its records."""


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

    @property
    def num_keypoints(self) -> int:
        """Keypoints used (v > 0, inside their image) in all images."""
        return sum(len(record.keypoints) for record in self.records)


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
    by_kind = {c["name"]: c for c in categories}
    annotations = [
        {
            "id": index,
            "image_id": image_id,
            "category_id": by_kind[kind]["id"],
            "bbox": [x0, y0, x1 - x0, y1 - y0],
            "area": (x1 - x0) * (y1 - y0),
            "iscrowd": 0,
            "keypoints": _keypoint_triplets(points, names, by_kind[kind]["keypoints"]),
            "num_keypoints": len(points),
        }
        for index, (image_id, kind, (x0, y0, x1, y1), points, names) in enumerate(objects)
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


def _keypoint_triplets(
    points: list[tuple[float, float]], names: list[str], slots: list[str]
) -> list[float]:
    """COCO's flat ``[x, y, v, ...]``: one visible triplet per point where the category has a
    single name, else one per slot of its name list, ``0, 0, 0`` for a slot the object lacks."""
    if len(slots) <= 1:
        return [c for x, y in points for c in (x, y, 2)]
    triplets: list[float] = []
    given = 0
    for slot in slots:
        if given < len(names) and names[given] == slot:
            triplets.extend((*points[given], 2))
            given += 1
        else:
            triplets.extend((0, 0, 0))
    return triplets


def _is_subsequence(names: list[str], full: list[str]) -> bool:
    remaining = iter(full)
    return all(name in remaining for name in names)


def _categories(objects: list[tuple]) -> list[dict[str, Any]]:
    """One category per kind: a single keypoint name (any number of points per object) when all
    its points share one class, else the fixed list of names of its fullest object, which every
    other object's names follow in order (the ones it lacks, e.g. hidden by an occluder, are
    written as ``v = 0``)."""
    names_by_kind: dict[str, list[list[str]]] = {}
    for _, kind, _, _, names in objects:
        names_by_kind.setdefault(kind, []).append(names)
    categories = []
    for index, (kind, lists) in enumerate(names_by_kind.items(), start=1):
        distinct = list(dict.fromkeys(n for names in lists for n in names))
        if len(distinct) <= 1:
            keypoints = distinct
        elif all(_is_subsequence(names, max(lists, key=len)) for names in lists):
            keypoints = max(lists, key=len)
        else:
            raise ValueError(
                f"objects of kind {kind!r} have differing keypoint classes {lists[:3]}...; "
                "a category needs a fixed list of keypoint names or a single name"
            )
        categories.append({"id": index, "name": kind, "keypoints": keypoints, "skeleton": []})
    return categories


def read_keypoint_set(
    directory: Path, strict: bool = False, image_roots: Sequence[str | os.PathLike[str]] = ()
) -> KeypointSet:
    """Parse and validate ``directory/annotations.json``; check that every image file exists
    inside ``directory`` or one of ``image_roots`` (folders that images may also be in, e.g.
    a shared image folder that a symlink in the set points to).

    Keypoints outside their image (see the module docstring) are left out of the records with an
    :class:`IgnoredKeypointsWarning`; more than :data:`MAX_IGNORED_FRACTION` of them, or any with
    ``strict``, raise :class:`DatasetFormatError`.
    """
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
    return _Parser(path, strict, image_roots).parse(document)


class _Parser:
    """Validates a COCO-keypoints document, raising errors that name the file and the entry."""

    def __init__(
        self, path: Path, strict: bool = False, image_roots: Sequence[str | os.PathLike[str]] = ()
    ) -> None:
        self.path = path
        self.strict = strict
        self.roots = [path.parent.resolve(), *(Path(root).resolve() for root in image_roots)]

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
        ignored = _IgnoredKeypoints()
        for index, entry in enumerate(annotations):
            image_id, kind, box, points, names = self.annotation(entry, index, images, categories)
            _, width, height = images[image_id]
            if ignored.keeps_box(index, box, len(points), width, height):
                points, names = ignored.inside(index, image_id, points, names, width, height)
                per_image[image_id].append((kind, box, points, names))
        ignored.report(self.path, self.strict)
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
            self.check_inside(where, file_name)
            if not (self.path.parent / file_name).is_file():
                raise self.fail(where, f"image file {self.path.parent / file_name} does not exist")
            images[image_id] = (file_name, width, height)
        return images

    def check_inside(self, where: str, file_name: str) -> None:
        """Raise unless ``file_name`` resolves into the set's folder or an image root."""
        path = self.path.parent / file_name
        resolved = path.resolve()
        if any(resolved.is_relative_to(root) for root in self.roots):
            return
        if Path(file_name).is_absolute():
            how = "is an absolute path"
        elif not _lexical(path).is_relative_to(_lexical(self.path.parent)):
            how = "climbs out of the set's folder with '..'"
        else:
            how = f"leads through a symlink to {resolved}"
        roots = " or ".join(str(root) for root in self.roots)
        raise self.fail(
            where,
            f"file_name {file_name!r} {how}, outside {roots}: image file names must stay inside "
            "the set's folder (copy the image in, or name the folder it is in with "
            "data.image_roots)",
        )

    def annotation(self, entry: Any, index: int, images: dict, categories: dict) -> tuple:
        where = f"annotations[{index}]"
        image_id = self.field(entry, "image_id", int, where)
        category_id = self.field(entry, "category_id", int, where)
        if image_id not in images:
            raise self.fail(where, f"image_id {image_id} is not in images")
        if category_id not in categories:
            raise self.fail(where, f"category_id {category_id} is not in categories")
        bbox = self.field(entry, "bbox", list, where)
        if len(bbox) != 4:
            raise self.fail(where, f"bbox must be [x, y, w, h], got {bbox!r:.80}")
        for i, value in enumerate(bbox):
            self.finite(value, where, f"bbox {'xywh'[i]}", f"bbox[{i}]")
        if bbox[2] < 0 or bbox[3] < 0:
            raise self.fail(where, f"bbox must be [x, y, w, h] with w, h >= 0, got {bbox!r:.80}")
        kind, names = categories[category_id]
        values = self.field(entry, "keypoints", list, where)
        if len(values) % 3:
            raise self.fail(
                where,
                f"keypoints must be numbers x, y, v per point, got {len(values)} values "
                "(not a multiple of 3)",
            )
        if len(names) != 1 and len(values) != 3 * len(names):
            raise self.fail(
                where,
                f"category {kind!r} has {len(names)} keypoint names but the annotation "
                f"has {len(values) // 3} keypoints",
            )
        point_names = names * (len(values) // 3) if len(names) == 1 else names
        for i, value in enumerate(values):
            point = f"keypoint {i // 3} ({point_names[i // 3]})"
            self.finite(value, where, f"{point} {'xyv'[i % 3]}", f"keypoints[{i}]")
        triples = [values[i : i + 3] for i in range(0, len(values), 3)]
        if any(v not in (0, 1, 2) for _, _, v in triples):
            raise self.fail(where, "keypoint visibility v must be 0, 1 or 2")
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

    def finite(self, value: Any, where: str, what: str, position: str) -> None:
        """Raise unless ``value`` is a finite number (``keypoint 2 (corner) x is NaN``)."""
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return
        text = json.dumps(value)  # as the file spells it: NaN, Infinity, null, "12"
        kind = "" if isinstance(value, float) else ", not a number"
        raise self.fail(
            where,
            f"{what} is {text:.40}{kind} ({position}); keypoints and bbox must be finite numbers",
        )


@dataclass
class _IgnoredKeypoints:
    """The keypoints (v > 0) of a file that no image pixel holds, for one report after parsing."""

    total: int = 0
    outside: list[tuple[int, int, tuple[float, float], int, int]] = field(default_factory=list)
    """(annotation index, image id, (x, y), width, height) per keypoint outside its image."""
    boxless: list[tuple[int, tuple[float, ...], int, int, int]] = field(default_factory=list)
    """(annotation index, box, width, height, keypoints) per annotation whose bbox has no area
    inside its image."""

    def keeps_box(self, index: int, box: tuple, count: int, width: int, height: int) -> bool:
        """Count the annotation's ``count`` keypoints; whether its box has area inside the image
        (if not, the box and its keypoints are ignored, as the transforms would drop them)."""
        self.total += count
        x0, y0, x1, y1 = box
        if min(x1, width) > max(x0, 0) and min(y1, height) > max(y0, 0):
            return True
        if count:
            self.boxless.append((index, box, width, height, count))
        return False

    def inside(
        self, index: int, image_id: int, points: list, names: list, width: int, height: int
    ) -> tuple[list, list]:
        """The points (and their names) inside the closed image rectangle; notes the others."""
        kept: tuple[list, list] = ([], [])
        for (x, y), name in zip(points, names, strict=True):
            if 0 <= x <= width and 0 <= y <= height:
                kept[0].append((x, y))
                kept[1].append(name)
            else:
                self.outside.append((index, image_id, (x, y), width, height))
        return kept

    def report(self, path: Path, strict: bool) -> None:
        """Warn about the ignored keypoints; raise when there are too many (or any, ``strict``)."""
        count = len(self.outside) + sum(entry[-1] for entry in self.boxless)
        if not count:
            return
        facts = []
        if self.outside:
            index, _, (x, y), width, height = self.outside[0]
            images = len({entry[1] for entry in self.outside})
            lie = "lies outside its image" if len(self.outside) == 1 else "lie outside their image"
            facts.append(
                f"{_count(len(self.outside), 'keypoint')} in {_count(images, 'image')} {lie} "
                f"(e.g. annotations[{index}]: ({x}, {y}) in a {width} x {height} image)"
            )
        if self.boxless:
            index, (x0, y0, x1, y1), width, height, _ = self.boxless[0]
            points = sum(entry[-1] for entry in self.boxless)
            belong = "belongs" if points == 1 else "belong"
            facts.append(
                f"{_count(points, 'keypoint')} {belong} to "
                f"{_count(len(self.boxless), 'annotation')} whose bbox has no area inside the "
                f"image (e.g. annotations[{index}]: bbox {[x0, y0, x1 - x0, y1 - y0]} in a "
                f"{width} x {height} image)"
            )
        message = f"{path}: {'; '.join(facts)}"
        share = f"{count} of {self.total} keypoints, {100 * count / self.total:.3g} %"
        if strict:
            raise DatasetFormatError(f"{message}; strict=True allows none ({share})")
        if count > MAX_IGNORED_FRACTION * self.total:
            raise DatasetFormatError(
                f"{message}; that is {share}, more than the {100 * MAX_IGNORED_FRACTION:g} % that "
                "may be ignored: check the keypoint coordinates and the images' width and height"
            )
        warnings.warn(
            f"{message}; they are ignored ({share})",
            IgnoredKeypointsWarning,
            stacklevel=4,
        )


def _lexical(path: Path) -> Path:
    """``path`` made absolute with ``..`` removed but symlinks not followed."""
    return Path(os.path.normpath(path.absolute()))


def _count(number: int, noun: str) -> str:
    """``1 keypoint``, ``12 keypoints``."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


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
