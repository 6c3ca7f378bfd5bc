"""Background families: what the shapes are drawn on.

Every family returns a float32 [3, H, W] image in [0, 255] and is drawn from the sample's random
generator only:

- ``smooth``: grey blobs with a finer texture under a smooth colour cast (the classic scene).
  The grey layer is a coarse random grid upsampled to a finer grid, plus texture noise there,
  brought to full size by separable cubic (Catmull-Rom) interpolation: plain element-wise numpy,
  so the result is bit-identical in every process. SuperPoint blurs thresholded noise with a huge
  kernel instead; the result has the same character at a fraction of the cost.
- ``noise``: fractal value noise (3-5 octaves of that interpolated grid), from fine grain to clouds.
- ``stripes``: a grating of random period, angle and edge sharpness, sometimes over a second,
  smooth one: long straight edges that are not corners.
- ``marble``: a grating bent by fractal noise, veins that curve and fork.
- ``photo``: a softened patch of a photograph bundled with scikit-image (optional dependency;
  never downloaded): real texture, with its sharpest details blurred away.

The textured families map a pattern in [0, 1] between two colours whose lumas differ by a
contrast drawn from :attr:`BackgroundStyle.texture_contrast`, so a shape's colour can always stay
``min_contrast`` away from everything under it (:mod:`hgtrain.data.generator.scene`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from hgtrain.data.generator.photos import photo_library

__all__ = ["BACKGROUNDS", "LUMA", "BackgroundStyle", "render_background", "tinted"]

LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
PROFILE_SAMPLES = 4096
"""Samples per period of a grating's tabulated profile (a power of two: indices wrap with a mask)."""


@dataclass(frozen=True)
class BackgroundStyle:
    """The ranges a background family draws from (grey levels on a 0-255 scale).

    Attributes:
        spread: ``smooth``: largest deviation of a blob from the image's base grey level.
        detail: ``smooth``: amplitude of the fine texture.
        saturation: largest colour deviation of a channel from the grey level (every family).
        texture_contrast: textured families: range of the luma difference between the pattern's
            darkest and brightest colour.
    """

    spread: float = 50.0
    detail: float = 12.0
    saturation: float = 40.0
    texture_contrast: tuple[float, float] = (20.0, 80.0)


def tinted(lumas: np.ndarray, tint: np.ndarray) -> np.ndarray:
    """RGB colours [N, 3] of the grey levels ``lumas`` [N] plus the tints [N, 3], each made
    luma-neutral and scaled down so that no channel clips (clipping would change the luma)."""
    tint = tint - (tint @ LUMA)[:, None]
    headroom = np.minimum(lumas, 255.0 - lumas)[:, None]
    tint *= np.minimum(1.0, headroom / np.maximum(np.abs(tint).max(axis=1, keepdims=True), 1e-6))
    return lumas[:, None] + tint


def render_background(
    rng: np.random.Generator, family: str, height: int, width: int, style: BackgroundStyle
) -> np.ndarray:
    """A float32 [3, height, width] background of ``family`` (a key of :data:`BACKGROUNDS`)."""
    return BACKGROUNDS[family](rng, height, width, style)


def smooth(rng: np.random.Generator, height: int, width: int, style: BackgroundStyle) -> np.ndarray:
    """Grey blobs (2-6 along the longer side) with a finer texture (8-24 cells), colour waves."""
    coarse = _grid_shape(int(rng.integers(2, 7)), height, width)
    fine = _grid_shape(int(rng.integers(8, 25)), height, width)
    blobs = rng.uniform(0.0, 255.0) + rng.uniform(-style.spread, style.spread, coarse)
    grey = _upsample(blobs, fine) + rng.uniform(-style.detail, style.detail, fine).astype(
        np.float32
    )
    grey = _upsample(grey, (height, width))
    image = grey[None] + _waves(rng, height, style.saturation)[:, :, None]
    image += _waves(rng, width, style.saturation)[:, None, :]
    return np.clip(image, 0.0, 255.0, out=image)


def noise(rng: np.random.Generator, height: int, width: int, style: BackgroundStyle) -> np.ndarray:
    """Fractal value noise: 3-5 octaves from 4-16 cells up, each 0.5-0.85 of the one before."""
    pattern = _fractal(
        rng,
        height,
        width,
        int(rng.integers(4, 17)),
        int(rng.integers(3, 6)),
        rng.uniform(0.5, 0.85),
    )
    return _two_tone(rng, pattern, style)


def stripes(
    rng: np.random.Generator, height: int, width: int, style: BackgroundStyle
) -> np.ndarray:
    """A grating (period 4-25 % of the shorter side) whose profile runs from a sine to a
    near-square wave; in a third of the images over a second, smooth grating."""
    side = min(height, width)
    sharpness = np.exp(rng.uniform(np.log(0.5), np.log(8.0)))
    # The profile depends on the phase only: tabulate it over one period and look it up.
    table = np.sin(np.linspace(0.0, 2 * np.pi, PROFILE_SAMPLES, endpoint=False))
    table = (np.tanh(sharpness * table) / np.tanh(sharpness)).astype(np.float32)
    pattern = table[_grating_index(rng, height, width, side)]
    if rng.random() < 1 / 3:
        pattern *= np.float32(0.65)
        pattern += np.float32(0.35) * _sine_grating(rng, height, width, side)
    pattern *= np.float32(0.5)
    pattern += np.float32(0.5)
    return _two_tone(rng, pattern, style)


def marble(rng: np.random.Generator, height: int, width: int, style: BackgroundStyle) -> np.ndarray:
    """A grating whose phase is bent by fractal noise (1-3 periods of bending): curved veins."""
    side = min(height, width)
    turbulence = _fractal(rng, height, width, int(rng.integers(2, 5)), 4, 0.55)
    phase = _grating_phase(rng, height, width, side)
    phase += np.float32(rng.uniform(2.0, 6.0) * np.pi) * turbulence
    pattern = np.abs(np.sin(phase, out=phase), out=phase)
    # x ** p as exp(p * log x), several times faster than np.power on float32
    np.log(np.maximum(pattern, np.float32(1e-12), out=pattern), out=pattern)
    pattern *= np.float32(rng.uniform(0.3, 1.0))
    return _two_tone(rng, np.exp(pattern, out=pattern), style)


def photo(rng: np.random.Generator, height: int, width: int, style: BackgroundStyle) -> np.ndarray:
    """A random patch (30-100 % of the picture's shorter side) of a bundled photograph, flipped
    or turned at random, softened by resampling through 1/1.5-1/3 resolution, with its luma range
    set to a ``texture_contrast`` around a random grey level."""
    pictures = photo_library()
    picture = pictures[int(rng.integers(len(pictures)))]
    side = min(picture.shape[:2])
    crop = int(rng.uniform(0.3, 1.0) * side)
    top = int(rng.integers(picture.shape[0] - crop + 1))
    left = int(rng.integers(picture.shape[1] - crop + 1))
    patch = picture[top : top + crop, left : left + crop]
    patch = np.rot90(patch, int(rng.integers(4)))
    if rng.random() < 0.5:
        patch = patch[:, ::-1]
    blur = rng.uniform(1.5, 3.0)
    small = (max(2, round(width / blur)), max(2, round(height / blur)))
    image = Image.fromarray(np.ascontiguousarray(patch)).resize(small, Image.Resampling.BOX)
    image = image.resize((width, height), Image.Resampling.BICUBIC)
    colour = np.asarray(image, np.float32).transpose(2, 0, 1)
    luma = np.tensordot(LUMA, colour, axes=1)
    scale = rng.uniform(*style.texture_contrast) / max(float(np.ptp(luma)), 1.0)
    low, high = float(luma.min()) * scale, float(luma.max()) * scale
    colour *= scale
    colour += np.float32(rng.uniform(-low, 255.0 - high))
    return np.clip(colour, 0.0, 255.0, out=colour)


BACKGROUNDS: dict[str, Callable[..., np.ndarray]] = {
    "smooth": smooth,
    "noise": noise,
    "stripes": stripes,
    "marble": marble,
    "photo": photo,
}
"""Background families by name: ``(rng, height, width, style) -> float32 [3, H, W]``."""


def _two_tone(rng: np.random.Generator, pattern: np.ndarray, style: BackgroundStyle) -> np.ndarray:
    """``pattern`` in [0, 1] mapped between two colours ``texture_contrast`` apart in luma, each
    tinted by up to ``saturation`` without changing its luma or clipping."""
    contrast = rng.uniform(*style.texture_contrast)
    low = rng.uniform(0.0, 255.0 - contrast)
    lumas = np.array([low, low + contrast], dtype=np.float32)
    tint = rng.uniform(-0.5, 0.5, (2, 3)).astype(np.float32) * np.float32(style.saturation)
    dark, bright = tinted(lumas, tint).astype(np.float32)
    image = np.empty((3, *pattern.shape), np.float32)
    for channel, (step, base) in enumerate(zip(bright - dark, dark, strict=True)):
        np.multiply(pattern, step, out=image[channel])
        image[channel] += base
    return np.clip(image, 0.0, 255.0, out=image)


def _fractal(
    rng: np.random.Generator,
    height: int,
    width: int,
    cells: int,
    octaves: int,
    persistence: float,
) -> np.ndarray:
    """Value noise in [0, 1]: octave k is a ``cells * 2**k`` grid, weighted ``persistence**k``.

    The octaves are summed on the finest octave's grid and brought to full size once (cubic
    interpolation of cubic interpolation: smoother than each octave at full size, and a fraction
    of the cost)."""
    grids = [
        _grid_shape(min(cells * 2**octave, max(height, width)), height, width)
        for octave in range(octaves)
    ]
    finest = grids[-1]
    total = np.zeros(finest, np.float32)
    for octave, grid in enumerate(grids):
        values = rng.uniform(-1, 1, grid)
        total += np.float32(persistence**octave) * (
            values.astype(np.float32) if grid == finest else _upsample(values, finest)
        )
    total = _upsample(total, (height, width))
    total -= total.min()
    total *= np.float32(1.0 / max(float(total.max()), 1e-6))
    return total


def _grating_phase(rng: np.random.Generator, height: int, width: int, side: int) -> np.ndarray:
    """Phase (radians) of a plane wave of random angle, period 4-25 % of ``side`` (>= 4 px)."""
    x, y = _grating_axes(rng, height, width, side, 2 * np.pi)
    return y[:, None] + x[None, :]


def _grating_index(rng: np.random.Generator, height: int, width: int, side: int) -> np.ndarray:
    """Where each pixel is in the period of a plane wave (as :func:`_grating_phase`), as an index
    into a table of :data:`PROFILE_SAMPLES` samples of one period."""
    x, y = _grating_axes(rng, height, width, side, PROFILE_SAMPLES)
    index = (y[:, None] + x[None, :]).astype(np.int32)
    index &= PROFILE_SAMPLES - 1
    return index


def _sine_grating(rng: np.random.Generator, height: int, width: int, side: int) -> np.ndarray:
    """``sin`` of a plane wave's phase, from 1-D sines and cosines: sin(a + b) = sin a cos b +
    cos a sin b, so no sine of a full image is taken."""
    x, y = _grating_axes(rng, height, width, side, 2 * np.pi)
    wave = np.sin(y)[:, None] * np.cos(x)[None, :]
    wave += np.cos(y)[:, None] * np.sin(x)[None, :]
    return wave


def _grating_axes(
    rng: np.random.Generator, height: int, width: int, side: int, period_units: float
) -> tuple[np.ndarray, np.ndarray]:
    """The column and row terms of a plane wave's phase (random angle and offset, period 4-25 %
    of ``side``, >= 4 px), in units of which one period has ``period_units``; the row term
    carries the offset and is never negative."""
    angle = rng.uniform(0, np.pi)
    period = max(4.0, rng.uniform(0.04, 0.25) * side)
    scale = period_units / period
    x = np.arange(width, dtype=np.float32) * np.float32(scale * np.cos(angle))
    y = np.arange(height, dtype=np.float32) * np.float32(scale * np.sin(angle))
    offset = rng.uniform(0, period_units) + period_units * np.ceil(
        max(0.0, -float(x.min())) / period_units
    )
    return x, y + np.float32(offset)


def _upsample(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Cubic interpolation of a 2-D array to ``size`` (h, w), float32, pixel centres aligned."""
    # Both passes gather whole rows (contiguous memory): the columns as rows of the small
    # transposed array, then the rows of the big one.
    wide = _interpolate_rows(np.ascontiguousarray(values.T, dtype=np.float32), size[1])
    return _interpolate_rows(np.ascontiguousarray(wide.T), size[0])


def _interpolate_rows(values: np.ndarray, count: int) -> np.ndarray:
    """Cubic interpolation of the rows of ``values`` [n, m] to ``count`` rows."""
    indices, weights = _cubic_taps(len(values), count)
    result = values[indices[0]]
    result *= weights[0][:, None]
    for index, weight in zip(indices[1:], weights[1:], strict=True):
        term = values[index]
        term *= weight[:, None]
        result += term
    return result


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
