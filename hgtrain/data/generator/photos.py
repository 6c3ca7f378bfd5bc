"""Photographs for the ``photo`` background family: scikit-image's bundled sample images.

scikit-image ships these pictures inside its wheel, so nothing is downloaded, ever; it is an
optional dependency (``pip install "hgtrain[photos]"``). Pictures made of text, binary masks or
logos are left out: their sharp corners would be unlabelled keypoints.
"""

from __future__ import annotations

import functools
import importlib.util

import numpy as np

__all__ = ["PHOTOS", "photo_library", "photos_available"]

PHOTOS = (
    "astronaut",
    "brick",
    "camera",
    "chelsea",
    "coffee",
    "coins",
    "grass",
    "gravel",
    "immunohistochemistry",
    "moon",
    "rocket",
)
"""The ``skimage.data`` pictures used: people, animals, objects, textures, a microscope slide."""

MISSING = (
    "the 'photo' background family needs scikit-image, which bundles the photographs: "
    'pip install "hgtrain[photos]" (or pip install scikit-image), or leave "photo" out of '
    "data.scene.backgrounds"
)


def photos_available() -> bool:
    """Whether scikit-image (and so the ``photo`` family) is installed."""
    return importlib.util.find_spec("skimage") is not None


@functools.cache
def photo_library() -> tuple[np.ndarray, ...]:
    """The pictures of :data:`PHOTOS` as uint8 [H, W, 3] RGB arrays, read once per process."""
    if not photos_available():
        raise ModuleNotFoundError(MISSING)
    import skimage.data

    pictures = []
    for name in PHOTOS:
        picture = np.asarray(getattr(skimage.data, name)())
        if picture.ndim == 2:
            picture = np.repeat(picture[:, :, None], 3, axis=2)
        pictures.append(np.ascontiguousarray(picture[:, :, :3], dtype=np.uint8))
    return tuple(pictures)
