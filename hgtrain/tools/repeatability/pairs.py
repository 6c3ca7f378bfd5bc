"""The image pairs: scikit-image's photographs at a working size, each with seeded changes.

A pair is an image A (the photograph) and an image B (A changed) with the homography ``H`` (3x3)
that maps a point of A to the same scene point in B. Points are continuous (x, y) pixel
coordinates as everywhere in hgtrain: pixel (i, j) covers [i, i+1) x [j, j+1), its centre is
(i + 0.5, j + 0.5).

- ``viewpoint``: B shows a quadrilateral of A stretched over the whole frame, as a camera that
  moves sees a plane: a square of :data:`PATCH` of A's side, its corners moved by up to
  :data:`CORNER_JITTER` of the side (perspective), scaled by a factor in :data:`SCALE`, turned by up
  to :data:`MAX_ROTATION_DEG` and shifted to a random place inside A (SuperPoint's homography
  sampling without artifacts). The quadrilateral lies inside A, so B has no empty (black) parts
  whose edges would be corners of the warp, not of the scene; B zooms in by about 1x to 1.5x.
  B is sampled from A bilinearly through exactly ``H``.
- ``illumination``: ``H`` is the identity; B is A with a gamma, contrast and brightness change, a
  Gaussian blur and Gaussian noise, each of a random strength in the ranges of
  :class:`Photometric`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.transforms.v2.functional import gaussian_blur

from hgtrain.data.generator.photos import PHOTOS, photo_library, photos_available

__all__ = [
    "CHANGES",
    "MISSING",
    "Pair",
    "Photometric",
    "homography_from_points",
    "make_pairs",
    "project",
    "random_homography",
    "warp",
    "working_photo",
]

CHANGES = ("viewpoint", "illumination")
"""The kinds of change, as HPatches names its sequences."""
PATCH = 0.85
CORNER_JITTER = 0.06
SCALE = (0.8, 1.15)
MAX_ROTATION_DEG = 25.0
TRIES = 1000
MISSING = (
    "the photographs are scikit-image's, which bundles them: "
    'pip install "hgtrain[photos]" (or pip install scikit-image)'
)


@dataclass(frozen=True)
class Photometric:
    """A photometric change of [0, 1] images: ``x ** gamma``, then ``(x - 0.5) * contrast + 0.5 +
    brightness``, a Gaussian blur of ``blur_sigma`` px, noise of ``noise_sigma`` (of 1)."""

    gamma: float
    contrast: float
    brightness: float
    blur_sigma: float
    noise_sigma: float

    @classmethod
    def sample(cls, rng: np.random.Generator) -> Photometric:
        """A change of random strength: gamma 0.6-1.6, contrast 0.5-1.5, brightness -0.15-0.15,
        blur 0-1.5 px, noise 0-0.03 (HPatches' illumination sequences are mostly strong changes
        of brightness and contrast)."""
        return cls(
            gamma=float(math.exp(rng.uniform(math.log(0.6), math.log(1.6)))),
            contrast=float(rng.uniform(0.5, 1.5)),
            brightness=float(rng.uniform(-0.15, 0.15)),
            blur_sigma=float(rng.uniform(0.0, 1.5)),
            noise_sigma=float(rng.uniform(0.0, 0.03)),
        )

    def apply(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The changed uint8 [H, W, 3] image (noise drawn from ``rng``)."""
        x = torch.from_numpy(image).permute(2, 0, 1).float().div(255)
        x = x.pow(self.gamma)
        x = (x - 0.5) * self.contrast + 0.5 + self.brightness
        if self.blur_sigma > 0.1:
            kernel = 2 * math.ceil(3 * self.blur_sigma) + 1
            x = gaussian_blur(x, [kernel, kernel], [self.blur_sigma, self.blur_sigma])
        x = x + torch.from_numpy(rng.normal(0.0, self.noise_sigma, x.shape)).float()
        return _to_uint8(x)


@dataclass
class Pair:
    """Image A, image B (uint8 [H, W, 3] RGB) and the homography from A's points to B's."""

    photo: str
    change: str
    index: int
    image_a: np.ndarray
    image_b: np.ndarray
    homography: np.ndarray
    photometric: Photometric | None = None

    def describe(self) -> dict[str, Any]:
        """The pair as JSON: photo, change, index, the homography and the photometric change."""
        return {
            "photo": self.photo,
            "change": self.change,
            "index": self.index,
            "homography": self.homography.tolist(),
            "photometric": None if self.photometric is None else asdict(self.photometric),
        }


def working_photo(picture: np.ndarray, size: int) -> np.ndarray:
    """The largest centred square of ``picture`` resized to ``size`` x ``size`` (uint8 RGB)."""
    height, width = picture.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = Image.fromarray(picture[top : top + side, left : left + side])
    return np.array(square.resize((size, size), Image.Resampling.BICUBIC))


def homography_from_points(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The 3x3 homography (``H[2, 2] = 1``) that maps the 4 ``source`` points [4, 2] onto the 4
    ``target`` points."""
    rows, values = [], []
    for (x, y), (u, v) in zip(source, target, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        values += [u, v]
    h = np.linalg.solve(np.asarray(rows, dtype=np.float64), np.asarray(values, dtype=np.float64))
    return np.append(h, 1.0).reshape(3, 3)


def project(points: np.ndarray, homography: np.ndarray) -> np.ndarray:
    """``points`` [k, 2] (x, y) mapped through ``homography``."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    mapped = np.concatenate([points, np.ones((len(points), 1))], axis=1) @ homography.T
    return mapped[:, :2] / mapped[:, 2:]


def random_homography(rng: np.random.Generator, size: int) -> np.ndarray:
    """A homography from a ``size``-px square image A to an image B of the same size that shows a
    random quadrilateral inside A (see the module's docstring); maps A's points to B's."""
    frame = np.array([[0, 0], [size, 0], [size, size], [0, size]], dtype=np.float64)
    centre = size / 2
    for _ in range(TRIES):
        square = (frame - centre) * PATCH
        quad = square + rng.uniform(-CORNER_JITTER, CORNER_JITTER, (4, 2)) * size
        angle = math.radians(rng.uniform(-MAX_ROTATION_DEG, MAX_ROTATION_DEG))
        turn = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
        quad = rng.uniform(*SCALE) * quad @ turn.T + centre
        low, high = -quad.min(axis=0), size - quad.max(axis=0)
        if np.all(low <= high):
            quad = quad + rng.uniform(low, high)
            return homography_from_points(quad, frame)
    raise RuntimeError(f"no homography keeps the quadrilateral inside A in {TRIES} tries")


def warp(image: np.ndarray, homography: np.ndarray) -> np.ndarray:
    """Image B of A under ``homography``: every B pixel centre q samples A bilinearly at
    ``H^-1 q`` (outside A: the nearest edge pixel)."""
    height, width = image.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width] + 0.5
    centres = np.stack([xs.ravel(), ys.ravel()], axis=1)
    source = project(centres, np.linalg.inv(homography))
    grid = torch.from_numpy(source / [width, height] * 2 - 1).float().view(1, height, width, 2)
    pixels = torch.from_numpy(image).permute(2, 0, 1).float().unsqueeze(0)
    sampled = F.grid_sample(
        pixels, grid, mode="bilinear", padding_mode="border", align_corners=False
    )
    return _to_uint8(sampled[0] / 255)


def make_pairs(names: list[str], size: int, pairs: int, seed: int) -> list[Pair]:
    """``pairs`` viewpoint and ``pairs`` illumination pairs of each named photograph at ``size``
    px; the same for the same arguments (each pair seeded by seed, photo, change and index, so a
    photo's pairs do not depend on which other photos are chosen)."""
    if not photos_available():
        raise ModuleNotFoundError(MISSING)
    library = dict(zip(PHOTOS, photo_library(), strict=True))
    result = []
    for name in names:
        image = working_photo(library[name], size)
        for kind, change in enumerate(CHANGES):
            for index in range(pairs):
                rng = np.random.default_rng([seed, PHOTOS.index(name), kind, index])
                if change == "viewpoint":
                    homography = random_homography(rng, size)
                    result.append(
                        Pair(name, change, index, image, warp(image, homography), homography)
                    )
                else:
                    photometric = Photometric.sample(rng)
                    changed = photometric.apply(image, rng)
                    result.append(Pair(name, change, index, image, changed, np.eye(3), photometric))
    return result


def _to_uint8(image: torch.Tensor) -> np.ndarray:
    """A [3, H, W] float image in [0, 1] as uint8 [H, W, 3]."""
    return image.mul(255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
