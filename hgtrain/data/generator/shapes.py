"""Geometry of the synthetic shapes: their painted polygons and exact keypoints.

Each generator draws one shape centred on the origin, its longest side about ``size`` pixels, and
returns ``None`` when the draw breaks a rule that keeps the keypoints unambiguous (SuperPoint's
synthetic-shapes rules, adapted): keypoints of one shape at least ``min_distance`` apart, corners
neither too sharp nor too flat, and no corner whose two edges are both close to the image axes,
which would look like the corner of an axis-aligned box (those carry the ``top_left`` /
``bottom_right`` classes). The caller draws again.

The keypoint shapes are ``box``, ``polygon``, ``star``, ``line``, ``curve`` (a round-capped arc:
keypoints at its ends), ``checkerboard`` and ``cross`` (the kind that only the unseen test set
draws); ``ellipse`` and ``blob`` are clutter with edges but no corners, and so no keypoints.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

__all__ = ["SHAPES", "Shape", "ShapeRules"]

TOP_LEFT, BOTTOM_RIGHT, CORNER = 0, 1, 2
BLOB_ANGLES = np.linspace(0, 2 * np.pi, 72, endpoint=False)
BLOB_CIRCLE = np.stack([np.cos(BLOB_ANGLES), np.sin(BLOB_ANGLES)], axis=1)
CAP_ANGLES = np.linspace(0, np.pi, 9)[1:-1]
"""The inner vertices of a half circle: a curve's round cap."""


@dataclass(frozen=True)
class ShapeRules:
    """Limits a shape must respect, in input pixels and degrees."""

    min_distance: float = 8.0
    line_width: tuple[float, float] = (1.5, 4.0)
    min_angle: float = 30.0
    min_bend: float = 35.0
    axis_clearance: float = 8.0
    round_radius: float = 4.0
    """Smallest radius of curvature (px) of the clutter's outlines: a sharper bend looks like an
    acute corner or a line's end, which clutter must not have."""


@dataclass
class Shape:
    """A shape ready to paint.

    Attributes:
        kind: category name.
        fills: groups of polygons, one colour per group; groups and polygons do not overlap.
        keypoints: float64 [N, 2]; labels: int64 [N] (``top_left``, ``bottom_right`` or ``corner``).
        box: float64 [4], xyxy extent of the painted polygons.
    """

    kind: str
    fills: list[list[np.ndarray]]
    keypoints: np.ndarray
    labels: np.ndarray
    box: np.ndarray

    def moved(self, offset: np.ndarray) -> Shape:
        """The same shape translated by ``offset`` (dx, dy)."""
        return Shape(
            self.kind,
            [[polygon + offset for polygon in fill] for fill in self.fills],
            self.keypoints + offset,
            self.labels,
            self.box + offset[[0, 1, 0, 1]],
        )


def box(rng: np.random.Generator, size: float, rules: ShapeRules) -> Shape | None:
    """An axis-aligned rectangle with ``top_left`` and ``bottom_right`` corners, aspect <= 3."""
    short = rng.uniform(max(size / 3.0, rules.min_distance), size)
    width, height = (size, short) if rng.random() < 0.5 else (short, size)
    x0, y0, x1, y1 = -width / 2, -height / 2, width / 2, height / 2
    rectangle = np.array([(x0, y0), (x1, y0), (x1, y1), (x0, y1)])
    keypoints = np.array([(x0, y0), (x1, y1)])
    return _shape("box", [[rectangle]], keypoints, np.array([TOP_LEFT, BOTTOM_RIGHT]))


def polygon(rng: np.random.Generator, size: float, rules: ShapeRules) -> Shape | None:
    """A star-shaped (possibly concave) polygon of 3 to 6 vertices inside a circle."""
    n = int(rng.integers(3, 7))
    gaps = rng.uniform(0.5, 1.5, n)
    angles = rng.uniform(0, 2 * np.pi) + np.cumsum(gaps) * (2 * np.pi / gaps.sum())
    radii = 0.5 * size * rng.uniform(0.55, 1.0, n)
    vertices = radii[:, None] * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    if not _good_corners(vertices, rules) or not _far_apart(vertices, rules.min_distance):
        return None
    return _shape("polygon", [[vertices]], vertices, np.full(n, CORNER))


def star(rng: np.random.Generator, size: float, rules: ShapeRules) -> Shape | None:
    """3 to 5 thick branches from a centre; keypoints: the centre and the branch tips."""
    n = int(rng.integers(3, 6))
    gaps = rng.uniform(0.6, 1.4, n)
    gaps *= 2 * np.pi / gaps.sum()
    if gaps.min() < np.radians(40) or gaps.max() > np.radians(150):
        return None
    angles = rng.uniform(0, 2 * np.pi) + np.cumsum(gaps)
    lengths = 0.5 * size * rng.uniform(0.6, 1.0, n)
    half_width = 0.5 * rng.uniform(*rules.line_width)
    direction = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    normal = np.stack([-direction[:, 1], direction[:, 0]], axis=1)
    # The notch between branch i and i+1 lies on their bisector, half_width from both branches.
    bisector = direction + _following(direction)
    bisector /= np.linalg.norm(bisector, axis=1, keepdims=True)
    notch = bisector * (half_width / np.sin(0.5 * _following(gaps)))[:, None]
    notch_distance = np.linalg.norm(notch, axis=1)
    reach = np.maximum(notch_distance, _preceding(notch_distance))
    if np.any(lengths < reach + 0.5 * rules.min_distance):
        return None
    tips = lengths[:, None] * direction
    outline = np.stack([tips - half_width * normal, tips + half_width * normal, notch], axis=1)
    keypoints = np.concatenate([np.zeros((1, 2)), tips])
    if not _far_apart(keypoints, rules.min_distance):
        return None
    return _shape("star", [[outline.reshape(-1, 2)]], keypoints, np.full(n + 1, CORNER))


def line(rng: np.random.Generator, size: float, rules: ShapeRules) -> Shape | None:
    """A thick segment, not parallel to an image axis; keypoints: its two end points."""
    angle = rng.uniform(0, np.pi)
    if _near_axis(np.array([angle]), rules.axis_clearance).any():
        return None
    direction = np.array([np.cos(angle), np.sin(angle)])
    normal = np.array([-direction[1], direction[0]])
    half_width = 0.5 * rng.uniform(*rules.line_width)
    ends = np.stack([-0.5 * size * direction, 0.5 * size * direction])
    quad = np.stack([ends[0] - half_width * normal, ends[1] - half_width * normal])
    quad = np.concatenate([quad, quad[::-1] + 2 * half_width * normal])
    return _shape("line", [[quad]], ends, np.full(2, CORNER))


def checkerboard(rng: np.random.Generator, size: float, rules: ShapeRules) -> Shape | None:
    """A 3-5 x 3-5 board warped by an affine map and a mild perspective; keypoints: all vertices."""
    # Cells need room: at least ~1.4 minimum distances across (the warp shrinks some).
    most = min(5, int(size / (1.4 * rules.min_distance)))
    if most < 3:
        return None
    columns, rows = (int(n) for n in rng.integers(3, most + 1, size=2))
    grid = _centred_grid(columns, rows)
    angle = rng.uniform(0, 2 * np.pi)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    stretch = np.array([[rng.uniform(0.7, 1.3), rng.uniform(-0.3, 0.3)], [0.0, 1.0]])
    warped = grid @ (rotation @ stretch).T
    warped /= (1.0 + warped @ rng.uniform(-0.06, 0.06, 2))[:, None]
    warped *= size / np.ptp(warped, axis=0).max()
    warped -= 0.5 * (warped.min(axis=0) + warped.max(axis=0))
    vertices = warped.reshape(rows + 1, columns + 1, 2)
    outer = vertices[[0, 0, -1, -1], [0, -1, -1, 0]]
    if not _good_corners(outer, rules) or not _far_apart(warped, rules.min_distance):
        return None
    cells = [
        [vertices[j, i], vertices[j, i + 1], vertices[j + 1, i + 1], vertices[j + 1, i]]
        for j in range(rows)
        for i in range(columns)
    ]
    parity = [(i + j) % 2 for j in range(rows) for i in range(columns)]
    fills = [[np.array(c) for c, p in zip(cells, parity, strict=True) if p == k] for k in (0, 1)]
    return _shape("checkerboard", fills, warped, np.full(len(warped), CORNER))


def cross(rng: np.random.Generator, size: float, rules: ShapeRules) -> Shape | None:
    """A plus sign with arms of unequal length and width, sheared and turned away from the image
    axes; keypoints: its 12 vertices (8 convex, 4 concave)."""
    gap = rules.min_distance
    size = max(size, 3.5 * gap)  # bars at least one gap wide, arms a gap beyond them
    across, along = np.maximum(rng.uniform(0.12, 0.3, 2) * size, 0.5 * gap)  # half bar widths
    reach = 0.5 * size - gap
    up, down = rng.uniform(along + gap, max(along + gap, reach), 2)
    right, left = rng.uniform(across + gap, max(across + gap, reach), 2)
    outline = np.array(
        [
            (-across, -up), (across, -up), (across, -along), (right, -along),
            (right, along), (across, along), (across, down), (-across, down),
            (-across, along), (-left, along), (-left, -along), (-across, -along),
        ]
    )  # fmt: skip
    angle = rng.uniform(0, 2 * np.pi)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    shear = np.array([[1.0, rng.uniform(-0.25, 0.25)], [0.0, rng.uniform(0.8, 1.25)]])
    vertices = outline @ (rotation @ shear).T
    vertices *= size / np.ptp(vertices, axis=0).max()
    vertices -= 0.5 * (vertices.min(axis=0) + vertices.max(axis=0))
    if not _good_corners(vertices, rules) or not _far_apart(vertices, rules.min_distance):
        return None
    return _shape("cross", [[vertices]], vertices, np.full(12, CORNER))


def ellipse(rng: np.random.Generator, size: float, rules: ShapeRules) -> Shape | None:
    """A rotated ellipse of aspect <= 3 whose ends are round (their radius of curvature, b^2 / a,
    at least ``rules.round_radius``): a negative, with no keypoints."""
    angle = rng.uniform(0, np.pi)
    major = 0.5 * size
    flattest = min(1.0, max(1 / 3, np.sqrt(rules.round_radius / major)))
    radii = major * np.array([1.0, rng.uniform(flattest, 1.0)])
    t = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    points = np.stack([radii[0] * np.cos(t), radii[1] * np.sin(t)], axis=1)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return _shape("ellipse", [[points @ rotation.T]], np.zeros((0, 2)), np.zeros(0, np.int64))


def blob(rng: np.random.Generator, size: float, rules: ShapeRules) -> Shape | None:
    """A smooth closed curve (a circle bent by 2-4 low harmonics), no bend sharper than
    ``rules.round_radius``: clutter, no keypoints."""
    t = BLOB_ANGLES
    radius = np.ones_like(t)
    for harmonic in range(2, 5):
        radius += rng.uniform(0.0, 0.35 / harmonic) * np.cos(harmonic * t + rng.uniform(0, 6.3))
    points = radius[:, None] * BLOB_CIRCLE
    points *= size / np.ptp(points, axis=0).max()
    if _sharpest_bend(points) < rules.round_radius:
        return None
    return _shape("blob", [[points]], np.zeros((0, 2)), np.zeros(0, np.int64))


def curve(rng: np.random.Generator, size: float, rules: ShapeRules) -> Shape | None:
    """A thick circular arc (30-180 degrees) with round caps; keypoints: its two ends, the tips
    of the caps. A stroke's end is a keypoint whatever its cap: a cap a few pixels wide looks
    like a line's end, and an unlabelled one teaches the network to doubt every line end."""
    sweep = np.radians(rng.uniform(30, 180))
    radius = 0.5 * size / max(np.sin(min(sweep, np.pi) / 2), 0.25)
    half_width = 0.5 * rng.uniform(*rules.line_width)
    t = rng.uniform(0, 2 * np.pi) + np.linspace(0, sweep, 24)
    centre_line = radius * np.stack([np.cos(t), np.sin(t)], axis=1)
    normal = centre_line / radius
    caps = [
        end + half_width * np.stack([np.cos(a), np.sin(a)], axis=1)
        for end, a in (
            (centre_line[-1], t[-1] + CAP_ANGLES),
            (centre_line[0], t[0] + np.pi + CAP_ANGLES),
        )
    ]
    outline = np.concatenate(
        [
            centre_line + half_width * normal,
            caps[0],
            (centre_line - half_width * normal)[::-1],
            caps[1],
        ]
    )
    tangents = np.stack([-np.sin(t[[0, -1]]), np.cos(t[[0, -1]])], axis=1)
    tips = centre_line[[0, -1]] + half_width * np.array([[-1.0], [1.0]]) * tangents
    centre = 0.5 * (outline.min(axis=0) + outline.max(axis=0))
    return _shape("curve", [[outline - centre]], tips - centre, np.full(2, CORNER))


SHAPES = {
    "box": box,
    "polygon": polygon,
    "star": star,
    "line": line,
    "checkerboard": checkerboard,
    "cross": cross,
    "ellipse": ellipse,
    "blob": blob,
    "curve": curve,
}
"""Shape generators by category name: ``(rng, size, rules) -> Shape | None``."""


def _shape(kind: str, fills: list[list[np.ndarray]], keypoints, labels) -> Shape:
    points = np.concatenate([p for fill in fills for p in fill])
    box = np.concatenate([points.min(axis=0), points.max(axis=0)])
    return Shape(kind, fills, np.asarray(keypoints, float), np.asarray(labels, np.int64), box)


def _following(values: np.ndarray) -> np.ndarray:
    """The next element of each (cyclically): ``np.roll(values, -1, axis=0)``, cheaper."""
    return np.concatenate((values[1:], values[:1]))


def _preceding(values: np.ndarray) -> np.ndarray:
    """The previous element of each (cyclically): ``np.roll(values, 1, axis=0)``, cheaper."""
    return np.concatenate((values[-1:], values[:-1]))


def _far_apart(points: np.ndarray, min_distance: float) -> bool:
    """Whether every pair of ``points`` is at least ``min_distance`` apart."""
    step = points[:, None] - points[None]
    squared = (step * step).sum(axis=-1)
    np.fill_diagonal(squared, np.inf)
    return bool(squared.min() >= min_distance * min_distance)


@functools.lru_cache(maxsize=16)
def _centred_grid(columns: int, rows: int) -> np.ndarray:
    """The (columns + 1) x (rows + 1) vertices of a board of unit cells centred on the origin,
    [N, 2] row by row (read-only: shared between calls)."""
    u, v = np.meshgrid(np.arange(columns + 1) - columns / 2, np.arange(rows + 1) - rows / 2)
    grid = np.stack([u, v], axis=-1).reshape(-1, 2)
    grid.flags.writeable = False
    return grid


def _near_axis(angles: np.ndarray, clearance: float) -> np.ndarray:
    """Whether each direction (radians) is within ``clearance`` degrees of an image axis."""
    off_axis = np.degrees(angles) % 90.0
    return np.minimum(off_axis, 90.0 - off_axis) < clearance


def _sharpest_bend(outline: np.ndarray) -> float:
    """The smallest radius of curvature of a closed, finely sampled outline [N, 2]: the least
    radius of the circles through each vertex and its two neighbours."""
    before, after = outline - _preceding(outline), _following(outline) - outline
    across = _following(outline) - _preceding(outline)
    cross = np.abs(before[:, 0] * after[:, 1] - before[:, 1] * after[:, 0])
    lengths = np.linalg.norm(before, axis=1) * np.linalg.norm(after, axis=1)
    radii = lengths * np.linalg.norm(across, axis=1) / np.maximum(2.0 * cross, 1e-12)
    return float(radii.min())


def _good_corners(vertices: np.ndarray, rules: ShapeRules) -> bool:
    """Whether every vertex of the polygon is a clear corner that does not mimic a box corner."""
    incoming = vertices - _preceding(vertices)
    outgoing = _following(vertices) - vertices
    turn = np.arctan2(
        incoming[:, 0] * outgoing[:, 1] - incoming[:, 1] * outgoing[:, 0],
        (incoming * outgoing).sum(axis=1),
    )
    if np.sign(turn.sum()) < 0:  # clockwise: measure turns counter-clockwise
        turn = -turn
    interior = 180.0 - np.degrees(turn)  # in (0, 360): > 180 for concave vertices
    sharp = (interior < rules.min_angle) | (interior > 360.0 - rules.min_angle)
    flat = np.abs(interior - 180.0) < rules.min_bend
    edge_angles = np.arctan2(outgoing[:, 1], outgoing[:, 0])
    axis_edge = _near_axis(edge_angles, rules.axis_clearance)
    boxy = axis_edge & _preceding(axis_edge)
    return not (sharp | flat | boxy).any()
