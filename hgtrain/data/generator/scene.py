"""Render a synthetic scene: shapes with exact keypoints on a textured background.

Objects are placed one by one at random positions; an object is kept only where its bounding box,
grown by half the minimum keypoint distance, overlaps no other, so every keypoint is a true visible
corner and keypoints of different objects are at least ``min_distance`` apart. Each fill colour
differs in luma by at least ``min_contrast`` grey levels from the whole range of the (smooth)
background under the object, sampled every other pixel, and the two colours of a checkerboard
differ as much from each other. Painting uses exact area coverage
(:mod:`hgtrain.data.generator.raster`), so edges are anti-aliased and the keypoints are exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hgtrain.data.generator.backgrounds import textured_background
from hgtrain.data.generator.raster import box_window, polygon_coverage
from hgtrain.data.generator.shapes import SHAPES, Shape, ShapeRules
from hgtrain.data.sample import Sample

__all__ = ["SceneConfig", "render_scene"]

LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
SHAPE_TRIES = 10
POSITION_TRIES = 8


def _default_kinds() -> dict[str, float]:
    return {
        "box": 2.0,
        "polygon": 1.0,
        "star": 1.0,
        "line": 1.0,
        "checkerboard": 0.5,
        "ellipse": 0.5,
    }


@dataclass
class SceneConfig:
    """What a synthetic image contains: the knobs of the dataset's difficulty.

    Sizes given as fractions are relative to the shorter image side, so a scene looks the same at
    128 and 511 pixels; distances given in pixels are absolute, like the metrics' thresholds.

    Attributes:
        kinds: relative frequency of each shape kind: "box" (top_left / bottom_right corners),
            "polygon", "star", "line", "checkerboard" (generic corners) and "ellipse" (no keypoints).
        objects: range (inclusive) of the number of objects attempted per image; objects that do
            not fit are skipped, so crowded settings give fewer.
        object_size: range of an object's longest side, as a fraction of the shorter image side.
        line_width: range of the width of lines and star branches, fraction of the shorter side
            (never below 1.5 px).
        min_distance: smallest distance (px) between keypoints, within and across objects
            (>= 2x the largest metric threshold keeps matching unambiguous).
        margin: smallest distance (px) from any object to the image border.
        min_contrast: smallest luma difference (grey levels) of a shape from its background.
        background_spread: largest grey-level deviation of background blobs from the image's
            base level (0 with the two below: a flat background).
        background_saturation: largest colour deviation of background blobs from grey.
        background_detail: amplitude (grey levels) of the fine background texture.
    """

    kinds: dict[str, float] = field(default_factory=_default_kinds)
    objects: tuple[int, int] = (1, 5)
    object_size: tuple[float, float] = (0.15, 0.45)
    line_width: tuple[float, float] = (0.012, 0.03)
    min_distance: float = 8.0
    margin: float = 2.0
    min_contrast: float = 30.0
    background_spread: float = 50.0
    background_saturation: float = 40.0
    background_detail: float = 12.0

    def __post_init__(self) -> None:
        unknown = sorted(set(self.kinds) - set(SHAPES))
        if unknown:
            raise ValueError(f"unknown shape kinds {unknown}; choose from {sorted(SHAPES)}")
        if any(w < 0 for w in self.kinds.values()) or sum(self.kinds.values()) <= 0:
            raise ValueError(f"kinds weights must be >= 0 with a positive sum, got {self.kinds}")
        for name in ("objects", "object_size", "line_width"):
            low, high = getattr(self, name)
            if not 0 <= low <= high:
                raise ValueError(f"{name} must be a range (low, high) with 0 <= low <= high")
        if self.object_size[1] > 1:
            raise ValueError(f"object_size is a fraction of the image side, got {self.object_size}")
        self.objects = tuple(self.objects)
        self.object_size = tuple(self.object_size)
        self.line_width = tuple(self.line_width)


def render_scene(
    rng: np.random.Generator, height: int, width: int, config: SceneConfig, image_id: int = 0
) -> Sample:
    """Draw one scene from ``rng``; the returned sample's image is float32 [3, H, W] in [0, 255]."""
    image = textured_background(
        rng,
        height,
        width,
        spread=config.background_spread,
        detail=config.background_detail,
        saturation=config.background_saturation,
    )
    side = min(height, width)
    rules = ShapeRules(
        min_distance=config.min_distance,
        line_width=tuple(max(1.5, f * side) for f in config.line_width),
    )
    names = list(config.kinds)
    weights = np.array([config.kinds[n] for n in names], dtype=np.float64)
    n_objects = int(rng.integers(config.objects[0], config.objects[1] + 1))
    kinds = rng.choice(names, size=n_objects, p=weights / weights.sum())
    placed: list[Shape] = []
    for kind in kinds:
        shape = _place(rng, image, str(kind), side, rules, config, placed)
        if shape is not None:
            placed.append(shape)
    return _to_sample(image, placed, image_id)


def _place(
    rng: np.random.Generator,
    image: np.ndarray,
    kind: str,
    side: int,
    rules: ShapeRules,
    config: SceneConfig,
    placed: list[Shape],
) -> Shape | None:
    """Draw, position and paint one shape of ``kind``; None if no attempt fits."""
    height, width = image.shape[1:]
    low = np.array([config.margin, config.margin])
    high = np.array([width - config.margin, height - config.margin])
    gap = 0.5 * config.min_distance
    grow = np.array([-gap, -gap, gap, gap])
    taken = [(s.box + grow).tolist() for s in placed]
    for _ in range(SHAPE_TRIES):
        size = rng.uniform(*config.object_size) * side
        shape = SHAPES[kind](rng, max(size, 2 * rules.min_distance), rules)
        if shape is None:
            continue
        first, last = low - shape.box[:2], high - shape.box[2:]
        if np.any(first > last):
            continue
        for offset in rng.uniform(first, last, (POSITION_TRIES, 2)):
            if not _overlaps((shape.box + grow + offset[[0, 1, 0, 1]]).tolist(), taken):
                break
        else:
            continue
        shape = shape.moved(offset)
        if _paint(rng, image, shape, config.min_contrast):
            return shape
    return None


def _overlaps(box: list[float], boxes: list[list[float]]) -> bool:
    """Whether xyxy ``box`` intersects any of ``boxes``."""
    x0, y0, x1, y1 = box
    return any(x0 < b[2] and b[0] < x1 and y0 < b[3] and b[1] < y1 for b in boxes)


def _paint(rng: np.random.Generator, image: np.ndarray, shape: Shape, min_contrast: float) -> bool:
    """Composite the shape's fills over ``image`` in place; False if no contrasting colours exist."""
    window = box_window(shape.box, *image.shape[1:])
    x0, y0, x1, y1 = window
    region = image[:, y0:y1, x0:x1]
    # The background is smooth: every other pixel shows its extremes (and is 4x cheaper).
    red, green, blue = region[:, ::2, ::2]
    luma = LUMA[0] * red + LUMA[1] * green + LUMA[2] * blue
    colours = _contrasting_colours(rng, len(shape.fills), luma.min(), luma.max(), min_contrast)
    if colours is None:
        return False
    coverages = [polygon_coverage(fill, window) for fill in shape.fills]
    region *= 1.0 - sum(coverages)
    for coverage, colour in zip(coverages, colours, strict=True):
        region += coverage * colour[:, None, None]
    return True


def _contrasting_colours(
    rng: np.random.Generator, count: int, low: float, high: float, min_contrast: float
) -> np.ndarray | None:
    """``count`` RGB colours whose lumas avoid [low - c, high + c] and differ by >= c pairwise."""
    below = max(0.0, low - min_contrast)
    above = max(0.0, 255.0 - (high + min_contrast))
    if below + above <= 0:
        return None
    for _ in range(10):
        u = rng.uniform(0.0, below + above, count)
        lumas = np.where(u < below, u, high + min_contrast + (u - below))
        if count == 1 or np.abs(np.diff(np.sort(lumas))).min() >= min_contrast:
            break
    else:
        return None
    # A luma-neutral tint, scaled so that no channel clips (clipping would change the luma).
    tint = rng.uniform(-1.0, 1.0, (count, 3)) * rng.uniform(0.0, 60.0)
    tint -= (tint @ LUMA)[:, None]
    headroom = np.minimum(lumas, 255.0 - lumas)[:, None]
    tint *= np.minimum(1.0, headroom / np.maximum(np.abs(tint).max(axis=1, keepdims=True), 1e-6))
    return (lumas[:, None] + tint).astype(np.float32)


def _to_sample(image: np.ndarray, shapes: list[Shape], image_id: int) -> Sample:
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
