"""Exact anti-aliased rasterisation: the area of each pixel covered by polygons.

Pixel (i, j) (column i, row j) covers [i, i+1) x [j, j+1), so the coverage computed here is exact
area, not a supersampled estimate, and ground-truth vertices are exact to float precision.

The method is the signed-area accumulation used by font rasterisers: every polygon edge is cut at
the integer grid lines into pieces that each lie inside one pixel; a piece with vertical extent dy
adds ``dy * (1 - xm)`` to its own pixel (xm: its mean x inside the pixel) and ``dy * xm`` to the
pixel on its right, and a cumulative sum along each row turns these into covered areas. It is
vectorised over all edges, so a checkerboard costs a handful of numpy calls. Axis-aligned
rectangles take a shortcut: their coverage is the product of two 1-D overlaps.
:func:`window_coverages` goes further: the polygons of many windows (every shape of a scene) in
one pass, each window's rows laid end to end.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["Window", "box_window", "polygon_coverage", "polygon_window", "window_coverages"]

Window = tuple[int, int, int, int]
"""A pixel rectangle (x0, y0, x1, y1) of the image: columns x0..x1-1, rows y0..y1-1."""


def polygon_window(polygons: list[np.ndarray], height: int, width: int) -> Window:
    """The smallest pixel rectangle, clipped to the image, that contains all ``polygons``."""
    points = np.concatenate(polygons)
    return box_window((*points.min(axis=0), *points.max(axis=0)), height, width)


def box_window(box: tuple[float, float, float, float], height: int, width: int) -> Window:
    """The smallest pixel rectangle, clipped to the image, that contains the xyxy ``box``."""
    x0, y0, x1, y1 = (float(v) for v in box)
    return (
        max(math.floor(x0), 0),
        max(math.floor(y0), 0),
        min(math.ceil(x1), width),
        min(math.ceil(y1), height),
    )


def polygon_coverage(polygons: list[np.ndarray], window: Window) -> np.ndarray:
    """Covered area in [0, 1] of each pixel of ``window`` by the union of disjoint ``polygons``.

    Args:
        polygons: simple polygons, each an array [K, 2] of (x, y) vertices in image pixels, in
            either orientation. They must not overlap each other (their coverages add up) and must
            lie inside ``window``.
        window: the pixel rectangle (x0, y0, x1, y1) to rasterise.

    Returns:
        float32 array [y1 - y0, x1 - x0].
    """
    x0, y0, x1, y1 = window
    height, width = y1 - y0, x1 - x0
    if len(polygons) == 1 and _is_upright_rectangle(polygons[0]):
        return _rectangle_coverage(polygons[0] - (x0, y0), height, width)
    starts = np.concatenate(polygons).astype(np.float64) - (x0, y0)
    last = np.cumsum([len(p) for p in polygons]) - 1
    following = np.arange(1, len(starts) + 1)
    following[last] = np.concatenate([[0], last[:-1] + 1])
    ends = starts[following]
    edge, t = _grid_crossings(starts, ends)
    points = starts[edge] + t[:, None] * (ends[edge] - starts[edge])
    piece = (edge[:-1] == edge[1:]) & (points[:-1, 1] != points[1:, 1])
    point_a, point_b = points[:-1][piece], points[1:][piece]
    mid = 0.5 * (point_a + point_b)
    cell = np.floor(mid).astype(np.int64)
    x_in_pixel = mid[:, 0] - cell[:, 0]
    dy = point_b[:, 1] - point_a[:, 1]
    # A spare column on the right takes the carry of the last column (and of the last row's).
    size = height * (width + 1) + 1
    flat = cell[:, 1] * (width + 1) + cell[:, 0]
    accumulator = np.bincount(flat, dy * (1.0 - x_in_pixel), minlength=size)
    accumulator[1:] += np.bincount(flat, dy * x_in_pixel, minlength=size)[:-1]
    area = np.cumsum(accumulator[:-1].reshape(height, width + 1)[:, :width], axis=1)
    return np.minimum(np.abs(area), 1.0).astype(np.float32)


def window_coverages(
    polygons: list[np.ndarray], window_of: np.ndarray, layer_of: np.ndarray, windows: list[Window]
) -> list[np.ndarray]:
    """Coverage in [0, 1] of each pixel of each window, one layer per colour, in one pass.

    Args:
        polygons: simple polygons, each an array [K, 2] of (x, y) vertices in image pixels, in
            either orientation; polygons of one layer of one window must not overlap.
        window_of: int [P], the window each polygon lies inside.
        layer_of: int [P], the layer (e.g. the fill colour) each polygon adds its area to; a
            window's layers are 0, 1, ... up to its largest.
        windows: the pixel rectangles (x0, y0, x1, y1).

    Returns:
        for each window, float32 [its layers, y1 - y0, x1 - x0].

    The rows of every layer of every window (one spare column each) are laid end to end in one
    accumulator, so the row-wise cumulative sum of :func:`polygon_coverage` becomes one
    cumulative sum over all of it: a closed polygon adds up to nothing along any row, so nothing
    carries from one row into the next.
    """
    layers = np.zeros(len(windows), np.int64)
    np.maximum.at(layers, window_of, layer_of + 1)
    origins = np.array([w[:2] for w in windows], dtype=np.float64).reshape(-1, 2)
    heights = np.array([w[3] - w[1] for w in windows], dtype=np.int64)
    strides = np.array([w[2] - w[0] + 1 for w in windows], dtype=np.int64)
    block = heights * strides  # one layer of one window
    offsets = np.concatenate([[0], np.cumsum(layers * block)])
    counts = np.array([len(p) for p in polygons])
    polygon = np.repeat(np.arange(len(polygons)), counts)
    starts = np.concatenate(polygons).astype(np.float64) - origins[window_of[polygon]]
    last = np.cumsum(counts) - 1
    following = np.arange(1, len(starts) + 1)
    following[last] = np.concatenate([[0], last[:-1] + 1])
    ends = starts[following]
    # the accumulation gives a polygon of positive shoelace area (x right, y down) a negative
    # coverage: turn the sign of each polygon's pieces so that every area comes out positive
    twice_area = np.bincount(
        polygon, starts[:, 0] * ends[:, 1] - ends[:, 0] * starts[:, 1], minlength=len(polygons)
    )
    edge, t = _grid_crossings(starts, ends)
    points = starts[edge] + t[:, None] * (ends[edge] - starts[edge])
    piece = (edge[:-1] == edge[1:]) & (points[:-1, 1] != points[1:, 1])
    point_a, point_b = points[:-1][piece], points[1:][piece]
    owner = polygon[edge[:-1][piece]]
    mid = 0.5 * (point_a + point_b)
    cell = np.floor(mid).astype(np.int64)
    x_in_pixel = mid[:, 0] - cell[:, 0]
    dy = (point_a[:, 1] - point_b[:, 1]) * np.sign(twice_area)[owner]
    window = window_of[owner]
    flat = (
        offsets[window]
        + layer_of[owner] * block[window]
        + cell[:, 1] * strides[window]
        + cell[:, 0]
    )
    size = int(offsets[-1])
    accumulator = np.bincount(flat, dy * (1.0 - x_in_pixel), minlength=size + 1)
    accumulator[1:] += np.bincount(flat, dy * x_in_pixel, minlength=size + 1)[:-1]
    area = np.cumsum(accumulator[:size]).astype(np.float32)
    np.clip(area, 0.0, 1.0, out=area)
    return [
        area[start:end].reshape(count, height, stride)[:, :, : stride - 1]
        for start, end, count, height, stride in zip(
            offsets[:-1], offsets[1:], layers, heights, strides, strict=True
        )
    ]


def _is_upright_rectangle(polygon: np.ndarray) -> bool:
    """Whether ``polygon`` is an axis-aligned rectangle (4 vertices, edges alternately flat)."""
    if len(polygon) != 4:
        return False
    step = np.concatenate((polygon[1:], polygon[:1])) - polygon
    flat = step == 0
    return bool((flat[::2, 0] & flat[1::2, 1]).all() or (flat[::2, 1] & flat[1::2, 0]).all())


def _rectangle_coverage(rectangle: np.ndarray, height: int, width: int) -> np.ndarray:
    """Exact coverage of an axis-aligned rectangle: the product of two 1-D overlaps."""
    (x0, y0), (x1, y1) = rectangle.min(axis=0), rectangle.max(axis=0)
    columns = np.arange(width, dtype=np.float64)
    rows = np.arange(height, dtype=np.float64)
    cover_x = np.clip(np.minimum(columns + 1, x1) - np.maximum(columns, x0), 0.0, 1.0)
    cover_y = np.clip(np.minimum(rows + 1, y1) - np.maximum(rows, y0), 0.0, 1.0)
    return np.outer(cover_y, cover_x).astype(np.float32)


def _grid_crossings(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edge index and sorted parameters t in [0, 1] of every edge's ends and grid-line crossings."""
    n_edges = len(starts)
    a, b = starts.ravel(), ends.ravel()  # (x, y) of every edge, interleaved
    first = np.floor(np.minimum(a, b)) + 1
    count = np.maximum(np.ceil(np.maximum(a, b)) - first, 0).astype(np.int64)
    which = np.repeat(np.arange(2 * n_edges), count)
    line = first[which] + (np.arange(len(which)) - np.repeat(np.cumsum(count) - count, count))
    edge = np.concatenate([np.arange(n_edges), np.arange(n_edges), which // 2])
    t = np.concatenate([np.zeros(n_edges), np.ones(n_edges), (line - a[which]) / (b - a)[which]])
    order = np.argsort(edge + 0.5 * t, kind="stable")
    return edge[order], t[order]
