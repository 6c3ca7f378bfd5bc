"""Photometric noise: SuperPoint's shading, brightness, contrast, motion blur and sensor noise,
plus gamma, colour balance and defocus.

MagicPoint trained without it scores 0.034 mAP on a noisy test set and 0.92 with it (rpautrat's
reproduction), so the train stream and the noisy evaluation sets use it and the clean sets do not.
The operations run in a fixed order (shading, brightness and contrast, gamma, colour balance,
motion blur or defocus, Gaussian noise, speckle), each one with probability ``probability``, on a
float32 image in [0, 255]. Gamma, colour balance and defocus are not SuperPoint's: they stand for
the camera's tone curve, white balance and focus (``PhotometricNoise.superpoint()`` turns them
off). Unlike SuperPoint, brightness never pushes the image's mean below 64 or above 192 (unless it
already is), because clipping at 0 or 255 would erase shapes whose keypoints are still labelled.
Everything random comes from the generator passed in (the Gaussian noise is read from a fixed,
seeded table of normals at a place drawn from it), so an image is a pure function of its state.
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter

from hgtrain.errors import SettingsError

__all__ = ["PhotometricNoise", "apply_photometric_noise"]

DARKEST_MEAN, BRIGHTEST_MEAN = 64.0, 192.0
SHADE_CELL = 8  # the shading is drawn on a grid of one node per 8 x 8 pixels
GAMMA_BINS = 8192  # equal bins over [0, 255] in the gamma's lookup table
NORMALS_SEED, NORMALS_CHUNK = 20240611, 1 << 16  # the table of normals that the grain reads

_GAMMA_LOG_CENTRES = np.log((np.arange(GAMMA_BINS, dtype=np.float32) + 0.5) / GAMMA_BINS)
_normals = np.empty(0, np.float32)  # grown by _standard_normals
_work = threading.local()  # the work arrays of _scratch, per thread


@dataclass
class PhotometricNoise:
    """Ranges of the photometric noise (grey levels on a 0-255 scale).

    The defaults are milder than SuperPoint's (``PhotometricNoise.superpoint()``) so that a small
    model learns the noisy set quickly; raise them for harder data.

    Attributes:
        probability: chance that each operation is applied to an image.
        brightness: largest absolute brightness shift.
        contrast: range of the contrast factor (about the image mean).
        gaussian_std: range of the standard deviation of additive Gaussian noise.
        speckle: largest fraction of pixels set to black or white (salt and pepper).
        shade: range of the strength of a smooth multiplicative shadow (negative: a highlight).
        motion_blur: largest motion-blur kernel length in pixels (odd; 1 disables it).
        gamma: range of the exponent of a tone curve ``255 * (x / 255) ** gamma``.
        colour: largest relative change of each channel's gain (white balance), e.g. 0.15: +-15 %.
        defocus: largest standard deviation (px) of a Gaussian blur, drawn instead of the motion
            blur in half of the images that get a blur (0 disables it).
    """

    probability: float = 0.5
    brightness: float = 50.0
    contrast: tuple[float, float] = (0.5, 1.5)
    gaussian_std: tuple[float, float] = (0.0, 10.0)
    speckle: float = 0.0035
    shade: tuple[float, float] = (-0.5, 0.8)
    motion_blur: int = 7
    gamma: tuple[float, float] = (0.7, 1.4)
    colour: float = 0.15
    defocus: float = 1.0

    def __post_init__(self) -> None:
        if not 0 <= self.probability <= 1:
            raise SettingsError(
                "PhotometricNoise", f"probability must be in [0, 1], got {self.probability}"
            )
        if self.motion_blur < 1 or self.motion_blur % 2 == 0:
            raise SettingsError(
                "PhotometricNoise",
                f"motion_blur must be an odd kernel length >= 1, got {self.motion_blur}",
            )
        if not 0 <= self.speckle < 0.5:
            raise SettingsError(
                "PhotometricNoise",
                f"speckle is a fraction of pixels in [0, 0.5), got {self.speckle}",
            )
        for name in ("contrast", "gaussian_std", "shade", "gamma"):
            low, high = getattr(self, name)
            if low > high:
                raise SettingsError(
                    "PhotometricNoise", f"{name} must be a range (low, high) with low <= high"
                )
            setattr(self, name, tuple(getattr(self, name)))
        if self.gamma[0] <= 0:
            raise SettingsError("PhotometricNoise", f"gamma must be > 0, got {self.gamma}")
        if not 0 <= self.colour < 1:
            raise SettingsError(
                "PhotometricNoise", f"colour is a relative gain change in [0, 1), got {self.colour}"
            )
        if self.defocus < 0:
            raise SettingsError(
                "PhotometricNoise",
                f"defocus is a blur standard deviation (px) >= 0, got {self.defocus}",
            )

    @classmethod
    def superpoint(cls) -> PhotometricNoise:
        """The ranges of SuperPoint's MagicPoint training, every operation always applied (and
        none of the three it does not have)."""
        return cls(1.0, 75.0, (0.3, 1.8), (0.0, 15.0), 0.0035, (-0.5, 0.8), 7, (1.0, 1.0), 0.0, 0.0)


def apply_photometric_noise(
    rng: np.random.Generator, image: np.ndarray, noise: PhotometricNoise
) -> np.ndarray:
    """Apply ``noise`` to a float32 [3, H, W] image in [0, 255]; returns it clipped to [0, 255].

    Works in place (on a contiguous float32 copy if ``image`` is not one), in as few passes over
    the image and as few calls as it can: memory traffic is the cost on large images, and the
    calls themselves on small ones. numpy does the plain passes; torch (single-threaded in a
    DataLoader worker) those where its kernels are faster: clamping, table lookups, multiply-adds
    and strided views.
    """
    image = np.ascontiguousarray(image, dtype=np.float32)
    height, width = image.shape[1:]
    apply = (rng.random(7) < noise.probability).tolist()
    if apply[0]:
        image *= _shade(rng, height, width, float(rng.uniform(*noise.shade)))
    # brightness, contrast and colour balance map each channel to gain * x + offset: one pass
    # (or none: the gamma's table lookup does it)
    gain, offset = np.ones((3, 1, 1), np.float32), np.zeros((3, 1, 1), np.float32)
    if apply[1]:
        factor = float(rng.uniform(*noise.contrast))
        subsample = image[:, ::4, ::4]  # a 1/16 subsample is plenty, and faster
        mean = subsample.sum(axis=(1, 2), keepdims=True) / np.float32(subsample[0].size)
        shift = _brightness_shift(rng, float(mean.mean()), noise.brightness)
        gain[:] = factor
        offset[:] = (1.0 - factor) * mean + shift
    gamma = float(rng.uniform(*noise.gamma)) if apply[5] and noise.gamma != (1.0, 1.0) else None
    balance = apply[6] and noise.colour > 0
    colour = np.ones((3, 1, 1), np.float32)
    if balance:
        colour[:] = rng.uniform(1.0 - noise.colour, 1.0 + noise.colour, (3, 1, 1))
    if gamma is not None:
        _gamma(image, gamma, gain, offset if apply[1] else None, colour)
    elif apply[1] or balance:
        image *= gain * colour
        if apply[1]:
            image += offset * colour
    if apply[2]:
        defocus = noise.defocus > 0 and (noise.motion_blur == 1 or rng.random() < 0.5)
        if defocus:
            _defocus(image, float(rng.uniform(0.3, 1.0) * noise.defocus))
        elif noise.motion_blur > 1:
            length = 2 * int(rng.integers(1, noise.motion_blur // 2 + 1)) + 1
            _motion_blur(rng, image, length)
    pixels = torch.from_numpy(image)
    if apply[3]:
        pixels.add_(_grain(rng, height, width), alpha=float(rng.uniform(*noise.gaussian_std)))
    pixels.clamp_(0.0, 255.0)
    if apply[4]:
        _speckle(rng, image, rng.uniform(0.0, noise.speckle))
    return image


def _brightness_shift(rng: np.random.Generator, mean: float, largest: float) -> float:
    """A shift in [-largest, largest] that never moves the mean grey level further out than
    [64, 192] (or than it already is), so that dark or bright images don't clip the shapes away."""
    target = mean + float(rng.uniform(-largest, largest))
    return min(max(target, min(mean, DARKEST_MEAN)), max(mean, BRIGHTEST_MEAN)) - mean


def _shade(rng: np.random.Generator, height: int, width: int, strength: float) -> np.ndarray:
    """The factor ``1 - strength * mask`` of a smooth shadow (a highlight if ``strength < 0``):
    a few blurred ellipses drawn on a grid of one node per ``SHADE_CELL`` pixels, interpolated
    bilinearly to each pixel."""
    cell = max(1, min(SHADE_CELL, min(height, width) // 8))  # at least 8 cells a side
    small = ((width - 1) // cell + 2, (height - 1) // cell + 2)  # nodes around every pixel
    mask = Image.new("L", small, 0)
    draw = ImageDraw.Draw(mask)
    count = int(rng.integers(1, 6))
    centres = rng.uniform(0, 1, (count, 2)) * small
    radii = rng.uniform(0.1, 0.4, (count, 2)) * max(small)
    for box in np.concatenate([centres - radii, centres + radii], axis=1).tolist():
        draw.ellipse(box, fill=255)
    mask = mask.filter(ImageFilter.GaussianBlur(0.1 * max(small)))
    factor = 1.0 - np.float32(strength / 255.0) * np.asarray(mask, np.float32)
    across = np.ascontiguousarray(_between_rows(factor.T, cell, "shade columns")[:width].T)
    return _between_rows(across, cell, "shade")[:height]


@functools.lru_cache(maxsize=4)
def _fractions(cell: int) -> torch.Tensor:
    """(cell, 1): the places 0, 1 / cell, ... (cell - 1) / cell between two grid nodes."""
    return torch.arange(cell, dtype=torch.float32)[:, None] / cell


def _between_rows(grid: np.ndarray, cell: int, name: str) -> np.ndarray:
    """Linear interpolation at ``cell`` evenly spaced places from each row of ``grid`` to the next,
    (n, m) -> (cell * (n - 1), m), into the work array ``name``: one multiply-add in torch, which
    (unlike numpy) keeps its fast loop when one operand is broadcast."""
    out = _scratch(name, (len(grid) - 1, cell, grid.shape[1]))
    start, step = grid[:-1, None], (grid[1:] - grid[:-1])[:, None]
    torch.addcmul(
        *map(torch.from_numpy, (start, step)), _fractions(cell), out=torch.from_numpy(out)
    )
    return out.reshape(-1, grid.shape[1])


def _gamma(
    image: np.ndarray,
    gamma: float,
    gain: np.ndarray,
    offset: np.ndarray | None,
    colour: np.ndarray,
) -> None:
    """``image = colour * 255 * (y / 255) ** gamma`` per channel, in place, where ``y`` is
    ``gain * image + offset`` clipped to [0, 255] (gain, offset and colour: [3, 1, 1]).

    One lookup in a table of the curve at the centres of ``GAMMA_BINS`` equal bins over [0, 255]
    (``np.power`` costs 5x more at 511 x 511): within 0.06 grey levels of the exact curve above
    grey level 1, and within 0.3 below it (where the curve is steep if ``gamma < 1``).
    """
    scale = np.float32(GAMMA_BINS / 255.0)
    image *= gain * scale
    if offset is not None:
        image += offset * scale
    torch.from_numpy(image).clamp_(0.0, GAMMA_BINS - 1)
    bins = _scratch("bins", image.shape, np.int32)
    np.copyto(bins, image, casting="unsafe")  # truncation: the bin of each pixel
    tables = colour[:, 0] * (np.float32(255.0) * np.exp(np.float32(gamma) * _GAMMA_LOG_CENTRES))
    for table, index, out in zip(tables, bins.reshape(3, -1), image.reshape(3, -1), strict=True):
        torch.index_select(
            torch.from_numpy(table), 0, torch.from_numpy(index), out=torch.from_numpy(out)
        )


def _motion_blur(rng: np.random.Generator, image: np.ndarray, length: int) -> None:
    """Average ``length`` copies of the image shifted along a random direction, in place."""
    angle = float(rng.uniform(0, np.pi))
    radius = length // 2
    steps = range(-radius, radius + 1)
    across = [radius + round(step * math.cos(angle)) for step in steps]
    down = [radius + round(step * math.sin(angle)) for step in steps]
    padded = _pad_edges(image, radius, 1.0 / length)
    height, width = image.shape[1:]
    views = [padded[:, y : y + height, x : x + width] for x, y in zip(across, down, strict=True)]
    _add_views(image, views, [1.0] * length)


def _defocus(image: np.ndarray, sigma: float) -> None:
    """A separable Gaussian blur of standard deviation ``sigma`` px (edges replicated), in place.

    Each axis adds its taps relative to the centre one, ``x + sum_k w_k / w_0 * (x_-k + x_+k)``
    (one multiply-add per tap); the padded copy is scaled to normalise both axes at once.
    """
    radius = max(1, math.ceil(3 * sigma))
    ratios = [math.exp(-0.5 * (k / sigma) ** 2) for k in range(radius + 1)]  # w_k / w_0
    starts = [radius, *(radius + sign * k for k in range(1, radius + 1) for sign in (-1, 1))]
    weights = [ratios[abs(start - radius)] for start in starts]
    padded = _pad_edges(image, radius, 1.0 / sum(weights) ** 2)
    height, width = image.shape[1:]
    rows = _scratch("rows", (3, height + 2 * radius, width))
    _add_views(rows, [padded[:, :, start : start + width] for start in starts], weights)
    _add_views(image, [rows[:, start : start + height] for start in starts], weights)


def _pad_edges(image: np.ndarray, radius: int, scale: float) -> np.ndarray:
    """``scale * image`` with its edge pixels repeated ``radius`` times on each side (a work
    array; the scale costs nothing more than the copy)."""
    height, width = image.shape[1:]
    padded = _scratch("padded", (3, height + 2 * radius, width + 2 * radius))
    middle = padded[:, radius : radius + height]
    inner = middle[:, :, radius : radius + width]
    torch.mul(torch.from_numpy(image), scale, out=torch.from_numpy(inner))
    middle[:, :, :radius] = inner[:, :, :1]
    middle[:, :, radius + width :] = inner[:, :, -1:]
    padded[:, :radius] = padded[:, radius : radius + 1]
    padded[:, radius + height :] = padded[:, radius + height - 1 : radius + height]
    return padded


def _add_views(out: np.ndarray, views: Sequence[np.ndarray], weights: Sequence[float]) -> None:
    """``out = sum_k weights[k] * views[k]`` with ``weights[0] == 1``: one (multiply-)add per view,
    in torch, which is faster than numpy on these strided views."""
    total, first, *rest = map(torch.from_numpy, (out, *views))
    torch.add(first, rest[0], alpha=weights[1], out=total)
    for view, weight in zip(rest[1:], weights[2:], strict=True):
        total.add_(view, alpha=weight)


def _grain(rng: np.random.Generator, height: int, width: int) -> torch.Tensor:
    """Standard normal noise per pixel: a height x width view of a fixed table of normals at an
    offset and row stride drawn from ``rng`` (drawing the normals would cost ~1 ms at 511 x 511).

    Pixel (y, x) reads entry ``offset + y * stride + x`` with ``stride >= width``: distinct pixels
    read distinct entries, and ``rng`` never sees the table, so the noise within an image is
    exactly i.i.d. N(0, 1). Images do share entries, but each at its own offset and row stride
    (over 10^8 placements at 511 x 511) and under an unrelated scene: nothing a model can use.
    """
    stride = width + int(rng.integers(0, width // 2 + 1))
    offset = int(rng.integers(0, 2 * height * width))
    table = _standard_normals(2 * height * width + height * (width + width // 2))
    rows = table[offset : offset + height * stride].reshape(height, stride)
    return torch.from_numpy(rows[:, :width])


def _standard_normals(count: int) -> np.ndarray:
    """At least ``count`` entries of a fixed sequence of i.i.d. float32 standard normals, made on
    first use in each process: chunk ``k`` of ``NORMALS_CHUNK`` comes from the generator seeded
    ``[NORMALS_SEED, k]``, so the sequence is the same however (and in whichever process) it grew."""
    global _normals
    have, need = _normals.size // NORMALS_CHUNK, -(-count // NORMALS_CHUNK)
    if need > have:
        chunks = [
            np.random.default_rng([NORMALS_SEED, k]).standard_normal(NORMALS_CHUNK, np.float32)
            for k in range(have, need)
        ]
        _normals = np.concatenate([_normals, *chunks])
    return _normals


def _speckle(rng: np.random.Generator, image: np.ndarray, fraction: float) -> None:
    """Set about ``fraction`` of the pixels to black or white, in place."""
    pixels = image.shape[1] * image.shape[2]
    white, where = np.divmod(rng.integers(0, 2 * pixels, rng.binomial(pixels, fraction)), pixels)
    image.reshape(3, -1)[:, where] = 255.0 * white


def _scratch(name: str, shape: tuple[int, ...], dtype: type = np.float32) -> np.ndarray:
    """A contiguous work array, kept between calls (per thread) and grown when needed: filling a
    fresh array of a few MB costs page faults that can outweigh the work done in it."""
    size = math.prod(shape)
    buffers = _work.__dict__.setdefault("buffers", {})
    buffer = buffers.get(name)
    if buffer is None or buffer.dtype != dtype or buffer.size < size:
        buffer = buffers[name] = np.empty(size, dtype)
    return buffer[:size].reshape(shape)
