"""The repeatability of a detector on one image pair, as SuperPoint reports it on HPatches.

A point of A is *visible* when the homography maps it inside B (at least ``border`` px from B's
edges, where a detector may place points at all); it is *repeated* when it lands within
``epsilon`` px of one of B's points; the same from B to A through the inverse homography. Then

    repeatability = (repeated A->B + repeated B->A) / (visible A + visible B),

0 when no point is visible. Points are continuous (x, y) pixel coordinates
(:mod:`hgtrain.tools.repeatability.pairs`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from hgtrain.tools.repeatability.pairs import project

__all__ = ["PairScore", "inside", "pair_repeatability"]


@dataclass(frozen=True)
class PairScore:
    """The counts of one pair and one detector, and the repeatability they give."""

    points_a: int
    points_b: int
    visible_a: int
    visible_b: int
    repeated_a: int
    repeated_b: int

    @property
    def repeatability(self) -> float:
        visible = self.visible_a + self.visible_b
        return (self.repeated_a + self.repeated_b) / visible if visible else 0.0

    def to_dict(self) -> dict[str, float]:
        """The counts and the repeatability, for JSON."""
        return {**asdict(self), "repeatability": self.repeatability}


def inside(points: np.ndarray, shape: tuple[int, int], border: float = 0.0) -> np.ndarray:
    """bool [k]: which ``points`` [k, 2] lie in an image of ``shape`` (height, width), at least
    ``border`` px from its edges."""
    height, width = shape
    x, y = points[:, 0], points[:, 1]
    return (x >= border) & (x <= width - border) & (y >= border) & (y <= height - border)


def pair_repeatability(
    points_a: np.ndarray,
    points_b: np.ndarray,
    homography: np.ndarray,
    shape_a: tuple[int, int],
    shape_b: tuple[int, int],
    epsilon: float = 3.0,
    border: float = 0.0,
) -> PairScore:
    """The counts of ``points_a`` [k, 2] in image A and ``points_b`` [m, 2] in image B, where
    ``homography`` maps A's points to B's (see the module's docstring)."""
    repeated_a, visible_a = _one_way(points_a, points_b, homography, shape_b, epsilon, border)
    repeated_b, visible_b = _one_way(
        points_b, points_a, np.linalg.inv(homography), shape_a, epsilon, border
    )
    return PairScore(len(points_a), len(points_b), visible_a, visible_b, repeated_a, repeated_b)


def _one_way(
    points: np.ndarray,
    others: np.ndarray,
    homography: np.ndarray,
    other_shape: tuple[int, int],
    epsilon: float,
    border: float,
) -> tuple[int, int]:
    """(repeated, visible): ``points`` mapped into the other image, those inside it, and of those
    the ones within ``epsilon`` of one of its points ``others``."""
    mapped = project(points, homography)
    mapped = mapped[inside(mapped, other_shape, border)]
    if len(mapped) == 0 or len(others) == 0:
        return 0, len(mapped)
    distances = np.linalg.norm(mapped[:, None, :] - np.asarray(others)[None, :, :], axis=2)
    return int((distances.min(axis=1) <= epsilon).sum()), len(mapped)
