"""Smooth textured backgrounds: large colour blobs plus a finer grey texture.

A coarse random colour grid is upsampled to a finer grid, grey texture noise is added there, and
one bicubic resize brings it to full size. That is far cheaper than blurring noise at full size
(SuperPoint blurs thresholded noise with a huge kernel) and has the same character: smooth,
cornerless clutter that the shapes must stand out from.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

__all__ = ["textured_background"]


def textured_background(
    rng: np.random.Generator,
    height: int,
    width: int,
    cells: tuple[int, int] = (2, 6),
    detail_cells: tuple[int, int] = (12, 32),
    spread: float = 50.0,
    detail: float = 12.0,
    saturation: float = 40.0,
) -> np.ndarray:
    """A float32 [3, height, width] background in [0, 255].

    Args:
        rng: the sample's random generator.
        height, width: image size in pixels.
        cells: range of the number of colour blobs along the longer side.
        detail_cells: range of the number of texture cells along the longer side.
        spread: largest deviation (grey levels) of a blob from the image's base grey level.
        detail: amplitude (grey levels) of the fine texture.
        saturation: largest colour deviation (levels) of a blob from its grey level.
    """
    coarse = _grid_shape(int(rng.integers(cells[0], cells[1] + 1)), height, width)
    fine = _grid_shape(int(rng.integers(detail_cells[0], detail_cells[1] + 1)), height, width)
    grey = rng.uniform(0.0, 255.0) + rng.uniform(-spread, spread, (*coarse, 1))
    tint = rng.uniform(-saturation, saturation, (*coarse, 3))
    blobs = _resize(np.clip(grey + tint, 0, 255), fine, Image.Resampling.BICUBIC)
    texture = rng.uniform(-detail, detail, (*fine, 1))
    image = _resize(blobs + texture, (height, width), Image.Resampling.BICUBIC)
    return image.transpose(2, 0, 1).astype(np.float32)


def _resize(image: np.ndarray, size: tuple[int, int], method: Image.Resampling) -> np.ndarray:
    """Resize a float [h, w, 3] array in [0, 255] (rounded to uint8) to ``size`` (h, w), uint8."""
    pil = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8), "RGB")
    return np.asarray(pil.resize(size[::-1], method))


def _grid_shape(cells: int, height: int, width: int) -> tuple[int, int]:
    """A (rows, columns) grid with ``cells`` along the longer image side, at least 2 each way."""
    scale = cells / max(height, width)
    return max(2, round(height * scale)), max(2, round(width * scale))
