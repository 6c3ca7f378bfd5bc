"""Smooth textured backgrounds: grey blobs with a finer texture, under a smooth colour cast.

The grey layer is a coarse random grid upsampled to a finer grid, plus texture noise there, then
brought to full size by separable cubic (Catmull-Rom) interpolation: four gathered taps per axis,
plain element-wise numpy, so the result is bit-identical in every process. SuperPoint blurs
thresholded noise with a huge kernel instead; the result has the same character (smooth,
cornerless clutter that the shapes must stand out from) at a fraction of the cost. The colour is a
sum of smooth waves along x and along y per channel, so it costs two broadcast additions.
"""

from __future__ import annotations

import functools

import numpy as np

__all__ = ["textured_background"]


def textured_background(
    rng: np.random.Generator,
    height: int,
    width: int,
    cells: tuple[int, int] = (2, 6),
    detail_cells: tuple[int, int] = (8, 24),
    spread: float = 50.0,
    detail: float = 12.0,
    saturation: float = 40.0,
) -> np.ndarray:
    """A float32 [3, height, width] background in [0, 255].

    Args:
        rng: the sample's random generator.
        height, width: image size in pixels.
        cells: range of the number of grey blobs along the longer side.
        detail_cells: range of the number of texture cells along the longer side.
        spread: largest deviation (grey levels) of a blob from the image's base grey level.
        detail: amplitude (grey levels) of the fine texture.
        saturation: largest colour deviation (levels) of a channel from the grey level.
    """
    coarse = _grid_shape(int(rng.integers(cells[0], cells[1] + 1)), height, width)
    fine = _grid_shape(int(rng.integers(detail_cells[0], detail_cells[1] + 1)), height, width)
    blobs = rng.uniform(0.0, 255.0) + rng.uniform(-spread, spread, coarse)
    grey = _upsample(blobs, fine) + rng.uniform(-detail, detail, fine).astype(np.float32)
    grey = _upsample(grey, (height, width))
    image = grey[None] + _waves(rng, height, saturation)[:, :, None]
    image += _waves(rng, width, saturation)[:, None, :]
    return np.clip(image, 0.0, 255.0, out=image)


def _upsample(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Cubic interpolation of a 2-D array to ``size`` (h, w), float32, pixel centres aligned."""
    rows, row_weights = _cubic_taps(values.shape[0], size[0])
    columns, column_weights = _cubic_taps(values.shape[1], size[1])
    values = values.astype(np.float32)
    # Columns first, on the small array (a column gather gives a transposed memory layout, which
    # is cheap to fix there), then row gathers build the big array in C order.
    wide = sum(w * values[:, c] for c, w in zip(columns, column_weights, strict=True))
    wide = np.ascontiguousarray(wide)
    return sum(w[:, None] * wide[r] for r, w in zip(rows, row_weights, strict=True))


@functools.lru_cache(maxsize=256)
def _cubic_taps(source: int, target: int) -> tuple[np.ndarray, np.ndarray]:
    """Source indices [4, target] (clamped at the borders) and Catmull-Rom weights [4, target]."""
    position = (np.arange(target) + 0.5) * (source / target) - 0.5
    start = np.floor(position)
    t = position - start
    weights = np.stack(
        [
            ((-0.5 * t + 1.0) * t - 0.5) * t,
            (1.5 * t - 2.5) * t * t + 1.0,
            ((-1.5 * t + 2.0) * t + 0.5) * t,
            (0.5 * t - 0.5) * t * t,
        ]
    )
    indices = np.clip(start.astype(np.int64) + np.arange(-1, 3)[:, None], 0, source - 1)
    return indices, weights.astype(np.float32)


def _waves(rng: np.random.Generator, length: int, amplitude: float) -> np.ndarray:
    """Per channel, a smooth random profile of ``length`` values within +-``amplitude`` / 2."""
    position = np.arange(length, dtype=np.float32) * np.float32(2 * np.pi / length)
    frequency = rng.uniform(0.3, 1.5, (3, 1)).astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi, (3, 1)).astype(np.float32)
    strength = rng.uniform(-0.5, 0.5, (3, 1)).astype(np.float32) * np.float32(amplitude)
    return strength * np.cos(frequency * position + phase)


def _grid_shape(cells: int, height: int, width: int) -> tuple[int, int]:
    """A (rows, columns) grid with ``cells`` along the longer image side, at least 2 each way."""
    scale = cells / max(height, width)
    return max(2, round(height * scale)), max(2, round(width * scale))
