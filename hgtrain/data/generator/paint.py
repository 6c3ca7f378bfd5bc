"""Painting shapes into an image: contrasting colours, exact coverage, free room, what stays
visible.

Shared by the pretraining scenes (:mod:`hgtrain.data.generator.scene`) and the downstream tasks of
the transfer benchmark (:mod:`hgtrain.data.generator.downstream`).
"""

from __future__ import annotations

import numpy as np

from hgtrain.data.generator.backgrounds import LUMA, tinted
from hgtrain.data.generator.raster import (
    Window,
    box_window,
    polygon_coverage,
    window_coverages,
)
from hgtrain.data.generator.shapes import Shape
from hgtrain.data.sample import Sample

__all__ = [
    "VISIBLE_COVERAGE",
    "contrasting_colours",
    "overlaps",
    "paint_shape",
    "paint_shapes",
    "shape_colours",
    "shapes_to_sample",
    "uncovered",
]

VISIBLE_COVERAGE = 1e-3
"""Coverage from which a painted pixel counts as hiding what lies under it."""


def paint_shape(
    rng: np.random.Generator,
    image: np.ndarray,
    shape: Shape,
    min_contrast: float,
    max_contrast: float = np.inf,
) -> np.ndarray | None:
    """Composite the shape's fills over ``image`` in place and return their total coverage of
    the shape's window; None (nothing painted) if no contrasting colours exist."""
    colours = shape_colours(rng, image, shape, min_contrast, max_contrast)
    if colours is None:
        return None
    window = box_window(shape.box, *image.shape[1:])
    coverages = np.stack([polygon_coverage(fill, window) for fill in shape.fills])
    return _composite(image, window, coverages, colours)


def shape_colours(
    rng: np.random.Generator,
    image: np.ndarray,
    shape: Shape,
    min_contrast: float,
    max_contrast: float = np.inf,
) -> np.ndarray | None:
    """Colours [fills, 3] for the shape's fills whose lumas lie ``min_contrast`` to
    ``max_contrast`` grey levels beyond every pixel of ``image`` under its box (darker than the
    darkest or brighter than the brightest); None if there are none (or the box is off the
    image)."""
    x0, y0, x1, y1 = box_window(shape.box, *image.shape[1:])
    region = image[:, y0:y1, x0:x1]
    if region.size == 0:
        return None
    red, green, blue = region
    luma = LUMA[0] * red + LUMA[1] * green + LUMA[2] * blue
    return contrasting_colours(
        rng, len(shape.fills), luma.min(), luma.max(), min_contrast, max_contrast
    )


def paint_shapes(image: np.ndarray, shapes: list[Shape], colours: list[np.ndarray]) -> None:
    """Composite several shapes, each in its colours (from :func:`shape_colours`), in one
    rasterising pass; their boxes' pixel windows must not overlap."""
    if not shapes:
        return
    windows = [box_window(shape.box, *image.shape[1:]) for shape in shapes]
    polygons, window_of, layer_of = [], [], []
    for index, shape in enumerate(shapes):
        for layer, fill in enumerate(shape.fills):
            polygons += fill
            window_of += [index] * len(fill)
            layer_of += [layer] * len(fill)
    coverages = window_coverages(polygons, np.array(window_of), np.array(layer_of), windows)
    for window, coverage, shape_colour in zip(windows, coverages, colours, strict=True):
        _composite(image, window, coverage[: len(shape_colour)], shape_colour)


def _composite(
    image: np.ndarray, window: Window, coverages: np.ndarray, colours: np.ndarray
) -> np.ndarray:
    """Paint ``colours`` [fills, 3] with ``coverages`` [fills, h, w] over the ``window`` of
    ``image`` in place; returns the total coverage."""
    x0, y0, x1, y1 = window
    region = image[:, y0:y1, x0:x1]
    total = coverages.sum(axis=0) if len(coverages) > 1 else coverages[0]
    region *= 1.0 - total
    for coverage, colour in zip(coverages, colours, strict=True):
        region += coverage * colour[:, None, None]
    return total


def contrasting_colours(
    rng: np.random.Generator,
    count: int,
    low: float,
    high: float,
    min_contrast: float,
    max_contrast: float = np.inf,
) -> np.ndarray | None:
    """``count`` RGB colours whose lumas lie in [low - max_contrast, low - min_contrast] or
    [high + min_contrast, high + max_contrast] (within [0, 255]), drawn uniformly over both, and
    differ by >= ``min_contrast`` pairwise."""
    below_start = max(0.0, low - max_contrast)
    below = max(0.0, low - min_contrast - below_start)
    above = max(0.0, min(255.0, high + max_contrast) - (high + min_contrast))
    if below + above <= 0:
        return None
    for _ in range(10):
        u = rng.uniform(0.0, below + above, count)
        lumas = np.where(u < below, below_start + u, high + min_contrast + (u - below))
        if count == 1 or np.abs(np.diff(np.sort(lumas))).min() >= min_contrast:
            break
    else:
        return None
    tint = rng.uniform(-1.0, 1.0, (count, 3)) * rng.uniform(0.0, 60.0)
    return tinted(lumas, tint).astype(np.float32)


def overlaps(box: list[float], boxes: list[list[float]]) -> bool:
    """Whether xyxy ``box`` intersects any of ``boxes``."""
    x0, y0, x1, y1 = box
    return any(x0 < b[2] and b[0] < x1 and y0 < b[3] and b[1] < y1 for b in boxes)


def uncovered(
    keypoints: np.ndarray, coverage: np.ndarray, window: Window, reach: float
) -> np.ndarray:
    """Which ``keypoints`` [N, 2] no visibly painted pixel of ``coverage`` (over ``window``)
    comes within ``reach`` px of (Chebyshev distance to the pixel's centre, plus half a pixel)."""
    x0, y0 = window[:2]
    rows, columns = np.nonzero(coverage >= VISIBLE_COVERAGE)
    covered = np.stack([columns + x0 + 0.5, rows + y0 + 0.5], axis=1)
    gaps = np.abs(keypoints[:, None, :] - covered[None]).max(axis=-1)
    return ~(gaps <= reach + 0.5).any(axis=1)


def shapes_to_sample(image: np.ndarray, shapes: list[Shape], image_id: int) -> Sample:
    """The :class:`Sample` of ``image`` with the keypoints, labels and boxes of ``shapes``."""
    counts = [len(s.keypoints) for s in shapes]
    return Sample(
        image=image,
        keypoints=np.concatenate([s.keypoints for s in shapes] + [np.zeros((0, 2))]).astype(
            np.float32
        ),
        labels=np.concatenate([s.labels for s in shapes] + [np.zeros(0, np.int64)]),
        object_ids=np.repeat(np.arange(len(shapes)), counts).astype(np.int64),
        boxes=np.array([s.box for s in shapes], dtype=np.float32).reshape(-1, 4),
        kinds=[s.kind for s in shapes],
        image_id=image_id,
    )
