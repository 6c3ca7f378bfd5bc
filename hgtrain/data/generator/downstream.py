"""Downstream tasks of the transfer benchmark: keypoints that pretraining never draws.

The pretraining scenes (:mod:`hgtrain.data.generator.scene`) label the corners of axis-aligned
boxes as ``top_left`` / ``bottom_right`` and every other corner as ``corner``. The tasks here ask
for something else, each on backgrounds of its own:

- ``quads``: rotated rectangles (up to 35 degrees either way) whose four corners are four
  classes, named in the rectangle's own frame: ``upper_left``, ``upper_right``, ``lower_right``,
  ``lower_left``. Two of them are new, and all four turn with the object. Textured backgrounds
  (``noise``, ``stripes`` and the ``marble`` that pretraining holds out).
- ``cubes``: solid cubes in perspective, each visible face in a colour of its own, overlapping
  each other. The class is ``vertex``: every vertex on a visible face (7 per cube; the
  hidden eighth is not labelled) that no nearer cube covers. Their corners meet at 120-ish degree
  Y-junctions and arrows that the 2-D shapes never make, and cubes that cover each other make
  T-junctions that are not vertices. On ``photo`` backgrounds: a domain shift (pretraining never
  draws photographs), so it needs scikit-image (``pip install 'hgtrain[photos]'``).

Both add keypoint-less clutter (ellipses, blobs, arcs) and the photometric noise of pretraining.
Every image is a pure function of its seed, like the pretraining scenes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from hgtrain.data.generator.backgrounds import BackgroundStyle, render_background
from hgtrain.data.generator.paint import overlaps, paint_shape, shapes_to_sample, uncovered
from hgtrain.data.generator.photometric import PhotometricNoise, apply_photometric_noise
from hgtrain.data.generator.raster import box_window
from hgtrain.data.generator.shapes import SHAPES, Shape, ShapeRules
from hgtrain.data.sample import Sample

__all__ = ["DOWNSTREAM_TASKS", "DownstreamTask", "cube", "render_task_image", "rotated_rectangle"]

QUAD_CLASSES = ("upper_left", "upper_right", "lower_right", "lower_left")
CUBE_CLASSES = ("vertex",)
CLUTTER = ("ellipse", "blob", "curve")
TRIES = 10
MAX_ROTATION = 35.0
"""Degrees a rectangle turns at most either way: below 45, each corner keeps its class's look."""
MIN_FACING = 0.25
"""A view of a cube is used only when every face clearly faces the camera or clearly faces away:
the cosine between its normal and the line of sight is at least this far from 0 (no edge-on faces)."""
VIEW_TRIES = 100
MIN_FACE_ANGLE = 20.0


def rotated_rectangle(rng: np.random.Generator, size: float, rules: ShapeRules) -> Shape | None:
    """A rectangle of aspect <= 3, longest side ``size``, turned by up to :data:`MAX_ROTATION`
    degrees, with its four corners as the four classes of :data:`QUAD_CLASSES` in that order."""
    short = rng.uniform(max(size / 3.0, rules.min_distance), max(size, rules.min_distance))
    width, height = (size, short) if rng.random() < 0.5 else (short, size)
    corners = 0.5 * np.array(
        [(-width, -height), (width, -height), (width, height), (-width, height)]
    )
    angle = np.radians(rng.uniform(-MAX_ROTATION, MAX_ROTATION))
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    corners = corners @ rotation.T
    box = np.concatenate([corners.min(axis=0), corners.max(axis=0)])
    return Shape("rectangle", [[corners]], corners, np.arange(4, dtype=np.int64), box)


def _cube_geometry() -> tuple[np.ndarray, list[tuple[int, int, int, int]], np.ndarray]:
    """The unit cube's 8 vertices (index 4x + 2y + z of the 0/1 coordinates), its 6 faces as
    vertex cycles and their outward normals."""
    vertices = np.array([(x, y, z) for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], float)
    faces = [(0, 1, 3, 2), (4, 5, 7, 6), (0, 1, 5, 4), (2, 3, 7, 6), (0, 2, 6, 4), (1, 3, 7, 5)]
    normals = np.array([vertices[list(face)].mean(axis=0) for face in faces])
    return vertices, faces, normals


CUBE_VERTICES, CUBE_FACES, CUBE_NORMALS = _cube_geometry()


def cube(rng: np.random.Generator, size: float, rules: ShapeRules) -> Shape | None:
    """A cube in a random orientation, seen in perspective from 3.5-7 half-sides away, its
    projected extent ``size``: one fill per visible face, its 7 visible vertices as ``vertex``
    keypoints. Views with an edge-on face (:data:`MIN_FACING`) or with fewer than three faces
    towards the camera are drawn again; None for
    a view with a face corner sharper than :data:`MIN_FACE_ANGLE` or two visible vertices closer
    than ``rules.min_distance``."""
    for _ in range(VIEW_TRIES):
        rotation = _random_rotation(rng)
        distance = rng.uniform(3.5, 7.0)
        normals = CUBE_NORMALS @ rotation.T
        centres = normals + np.array([0.0, 0.0, distance])
        facing = -(normals * centres).sum(axis=1) / np.linalg.norm(centres, axis=1)
        if np.abs(facing).min() >= MIN_FACING and (facing > 0).sum() == 3:
            break
    else:
        return None
    points = CUBE_VERTICES @ rotation.T + np.array([0.0, 0.0, distance])
    projected = points[:, :2] / points[:, 2:]
    visible_faces = [face for face, f in zip(CUBE_FACES, facing, strict=True) if f > 0]
    polygons = [projected[list(face)] for face in visible_faces]
    if min(_smallest_angle(polygon) for polygon in polygons) < MIN_FACE_ANGLE:
        return None
    visible = sorted({index for face in visible_faces for index in face})
    outline = np.concatenate(polygons)
    low, high = outline.min(axis=0), outline.max(axis=0)
    scale = size / (high - low).max()
    polygons = [(polygon - 0.5 * (low + high)) * scale for polygon in polygons]
    keypoints = (projected[visible] - 0.5 * (low + high)) * scale
    gaps = np.linalg.norm(keypoints[:, None] - keypoints[None], axis=-1)
    np.fill_diagonal(gaps, np.inf)
    if gaps.min() < rules.min_distance:
        return None
    box = np.concatenate([(low - 0.5 * (low + high)) * scale, (high - 0.5 * (low + high)) * scale])
    return Shape("cube", [[p] for p in polygons], keypoints, np.zeros(len(visible), np.int64), box)


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A rotation matrix drawn uniformly (from a uniformly drawn unit quaternion)."""
    quaternion = rng.normal(size=4)
    w, x, y, z = quaternion / np.linalg.norm(quaternion)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def _smallest_angle(polygon: np.ndarray) -> float:
    """The smallest interior angle (degrees) of a convex polygon [K, 2]."""
    incoming = polygon - np.roll(polygon, 1, axis=0)
    outgoing = np.roll(polygon, -1, axis=0) - polygon
    cosine = -(incoming * outgoing).sum(axis=1) / (
        np.linalg.norm(incoming, axis=1) * np.linalg.norm(outgoing, axis=1)
    )
    return float(np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0))).min())


@dataclass(frozen=True)
class DownstreamTask:
    """What the images of one downstream task hold.

    Attributes:
        name: the task's name (``hgtrain transfer-data --task NAME``).
        summary: one line on what it asks and why pretraining has not seen it.
        class_names: its keypoint classes, in label order.
        make_object: draws one object centred on the origin: ``(rng, size, rules) -> Shape``.
        backgrounds: relative frequency of each background family.
        objects: range (inclusive) of objects attempted per image.
        overlapping: objects may cover each other (later ones are nearer and hide the keypoints
            of earlier ones); otherwise they keep ``min_distance / 2`` apart.
        object_size: range of an object's extent, as a fraction of the image side.
        clutter: range (inclusive) of keypoint-less shapes painted first.
        min_distance: smallest distance (px) between keypoints.
        min_contrast: smallest luma difference (grey levels) of a fill from what it covers and
            from the other fills of its object.
        flip_pairs: the classes that a horizontal flip swaps (training's ``data.flip_pairs``).
    """

    name: str
    summary: str
    class_names: tuple[str, ...]
    make_object: Callable[[np.random.Generator, float, ShapeRules], Shape | None]
    backgrounds: dict[str, float]
    objects: tuple[int, int]
    overlapping: bool
    object_size: tuple[float, float] = (0.15, 0.45)
    clutter: tuple[int, int] = (0, 2)
    min_distance: float = 8.0
    min_contrast: float = 30.0
    noise: PhotometricNoise = field(default_factory=PhotometricNoise)
    flip_pairs: tuple[tuple[str, str], ...] = ()

    def settings(self) -> dict[str, object]:
        """The task's settings as plain values (for a set's manifest)."""
        return {
            "name": self.name,
            "class_names": list(self.class_names),
            "backgrounds": dict(self.backgrounds),
            "objects": list(self.objects),
            "overlapping": self.overlapping,
            "object_size": list(self.object_size),
            "clutter": list(self.clutter),
            "min_distance": self.min_distance,
            "min_contrast": self.min_contrast,
        }


DOWNSTREAM_TASKS: dict[str, DownstreamTask] = {
    "quads": DownstreamTask(
        name="quads",
        summary="the 4 corners of rotated rectangles as 4 classes, on textured backgrounds",
        class_names=QUAD_CLASSES,
        make_object=rotated_rectangle,
        backgrounds={"noise": 1.0, "stripes": 1.0, "marble": 1.0},
        objects=(1, 4),
        overlapping=False,
        flip_pairs=(("upper_left", "upper_right"), ("lower_left", "lower_right")),
    ),
    "cubes": DownstreamTask(
        name="cubes",
        summary="the visible vertices of overlapping solid cubes in perspective, on photographs",
        class_names=CUBE_CLASSES,
        make_object=cube,
        backgrounds={"photo": 1.0},
        objects=(1, 3),
        overlapping=True,
        object_size=(0.25, 0.5),
    ),
}
"""The downstream tasks by name."""


def render_task_image(
    task: DownstreamTask, rng: np.random.Generator, image_size: int, image_id: int = 0
) -> Sample:
    """One image of ``task`` drawn from ``rng``: clutter, then the objects, then the noise; the
    sample's image is uint8 [3, S, S]."""
    families = list(task.backgrounds)
    weights = np.array([task.backgrounds[f] for f in families])
    family = families[int(rng.choice(len(families), p=weights / weights.sum()))]
    image = render_background(rng, family, image_size, image_size, BackgroundStyle())
    rules = ShapeRules(min_distance=task.min_distance)
    for _ in range(int(rng.integers(task.clutter[0], task.clutter[1] + 1))):
        kind = CLUTTER[int(rng.integers(len(CLUTTER)))]
        _place(rng, image, SHAPES[kind], task, rules, avoid=[])
    objects: list[Shape] = []
    for _ in range(int(rng.integers(task.objects[0], task.objects[1] + 1))):
        avoid = [] if task.overlapping else objects
        placed = _place(rng, image, task.make_object, task, rules, avoid)
        if placed is not None:
            shape, coverage = placed
            objects = _hide_behind(objects, shape, coverage, image.shape[1:], task.min_distance)
            objects.append(shape)
    image = apply_photometric_noise(rng, image, task.noise)
    image += 0.5  # round to nearest when truncating to uint8 (the image is within [0, 255])
    return shapes_to_sample(image.astype(np.uint8), objects, image_id)


def _place(
    rng: np.random.Generator,
    image: np.ndarray,
    make: Callable[[np.random.Generator, float, ShapeRules], Shape | None],
    task: DownstreamTask,
    rules: ShapeRules,
    avoid: list[Shape],
) -> tuple[Shape, np.ndarray] | None:
    """Draw, position and paint one object, its box kept ``min_distance`` clear of those of
    ``avoid``; the shape and its coverage, or None if no attempt fits."""
    side = image.shape[1]
    gap = 0.5 * task.min_distance
    grow = np.array([-gap, -gap, gap, gap])
    for _ in range(TRIES):
        shape = make(rng, rng.uniform(*task.object_size) * side, rules)
        if shape is None:
            continue
        first, last = 2.0 - shape.box[:2], side - 2.0 - shape.box[2:]
        if np.any(first > last):
            continue
        moved = shape.moved(rng.uniform(first, last))
        if overlaps((moved.box + grow).tolist(), [(o.box + grow).tolist() for o in avoid]):
            continue
        coverage = paint_shape(rng, image, moved, task.min_contrast)
        if coverage is not None:
            return moved, coverage
    return None


def _hide_behind(
    objects: list[Shape],
    front: Shape,
    coverage: np.ndarray,
    size: tuple[int, int],
    min_distance: float,
) -> list[Shape]:
    """``objects`` without the keypoints that ``front`` (just painted over them) covers or
    comes within ``min_distance`` of with its own keypoints."""
    window = box_window(front.box, *size)
    kept = []
    for other in objects:
        visible = uncovered(other.keypoints, coverage, window, 0.5 * min_distance)
        if len(front.keypoints):
            gaps = np.linalg.norm(other.keypoints[:, None] - front.keypoints[None], axis=-1)
            visible &= gaps.min(axis=1) >= min_distance
        kept.append(
            dataclasses.replace(
                other, keypoints=other.keypoints[visible], labels=other.labels[visible]
            )
        )
    return kept
