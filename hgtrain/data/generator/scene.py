"""Render a synthetic scene: shapes with exact keypoints on a background of some family.

The background family is drawn from :attr:`SceneConfig.backgrounds`
(:mod:`hgtrain.data.generator.backgrounds`). Objects are then placed one by one at random
positions; an object is kept only where its bounding box, grown by half the minimum keypoint
distance, overlaps no other, so every keypoint is a true visible corner and keypoints of different
objects are at least ``min_distance`` apart. Each fill colour differs in luma by at least
``min_contrast`` grey levels from every pixel of the image under the object's box, and the two
colours of a checkerboard differ as much from each other; a share ``faint`` of the objects are
drawn faint instead, ``faint_contrast`` grey levels (8-30 by default) beyond the background under
them. :func:`contrast_band_scene` makes the test scenes of one contrast band. Occluders, if asked for, come last:
keypoint-less blobs and ellipses painted over anything, which take away every keypoint they come
within ``min_distance / 2`` of. Painting uses exact area coverage
(:mod:`hgtrain.data.generator.raster`), so edges are anti-aliased and the keypoints are exact.

Presets (:data:`SCENE_PRESETS`): ``wide`` (the default ``SceneConfig()``: every family but the
held-out and opt-in ones, objects down to small, clutter, no occluders) and ``classic`` (the scene
of hgtrain 0.4: smooth backgrounds, larger objects). :func:`unseen_scene` makes the held-out test
scene.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field

import numpy as np

from hgtrain.data.generator.backgrounds import (
    BACKGROUNDS,
    BackgroundStyle,
    render_background,
)
from hgtrain.data.generator.paint import (
    overlaps,
    paint_shape,
    paint_shapes,
    shape_colours,
    shapes_to_sample,
    uncovered,
)
from hgtrain.data.generator.photos import MISSING, photos_available
from hgtrain.data.generator.raster import box_window
from hgtrain.data.generator.shapes import SHAPES, Shape, ShapeRules
from hgtrain.data.sample import Sample
from hgtrain.errors import SettingsError

__all__ = [
    "CONTRAST_BANDS",
    "HELD_OUT_BACKGROUND",
    "HELD_OUT_KIND",
    "SCENE_PRESETS",
    "SceneConfig",
    "contrast_band_scene",
    "render_scene",
    "scene_preset",
    "unseen_scene",
]

SHAPE_TRIES = 10
POSITION_TRIES = 8
OCCLUDER_KINDS = ("blob", "ellipse")
"""Least coverage of a pixel by an occluder that counts as hiding what is there (rasterising
leaves float noise below it around a polygon)."""
HELD_OUT_BACKGROUND = "marble"
"""The background family that only the unseen test set draws (never the presets' training)."""
HELD_OUT_KIND = "cross"
"""The shape kind that only the unseen test set draws."""


def _default_kinds() -> dict[str, float]:
    return {
        "box": 2.0,
        "polygon": 1.0,
        "star": 1.0,
        "line": 1.0,
        "checkerboard": 0.5,
        "ellipse": 0.25,
        "blob": 0.25,
        "curve": 0.5,
    }


def _default_backgrounds() -> dict[str, float]:
    return {"smooth": 1.0, "noise": 1.0, "stripes": 1.0}


@dataclass
class SceneConfig:
    """What a synthetic image contains: the knobs of the dataset's difficulty.

    Sizes given as fractions are relative to the shorter image side, so a scene looks the same at
    128 and 511 pixels; distances given in pixels are absolute, like the metrics' thresholds.

    Attributes:
        kinds: relative frequency of each shape kind: "box" (top_left / bottom_right corners),
            "polygon", "star", "line", "curve" (a round-capped arc, keypoints at its ends),
            "checkerboard", "cross" (generic corners), and the clutter without keypoints:
            "ellipse" and "blob".
        backgrounds: relative frequency of each background family: "smooth", "noise",
            "stripes", "marble" and "photo" (needs scikit-image; see
            :mod:`hgtrain.data.generator.backgrounds`).
        objects: range (inclusive) of the number of objects attempted per image; objects that do
            not fit are skipped, so crowded settings give fewer.
        occluders: range (inclusive) of the number of blobs and ellipses painted over the scene
            after the objects; a keypoint they come within ``min_distance / 2`` of is removed.
            None by default: where an occluder's edge crosses a shape's, it makes a T-junction
            that looks like a corner and is not labelled one (with ``(0, 1)`` the quickstart
            model's noisy test AP@2 is 0.930 instead of 0.954; docs/data.md).
        object_size: range of an object's longest side, as a fraction of the shorter image side.
        line_width: range of the width of lines and star branches, fraction of the shorter side
            (never below 1.5 px).
        min_distance: smallest distance (px) between keypoints, within and across objects
            (>= 2x the largest metric threshold keeps matching unambiguous).
        margin: smallest distance (px) from any object to the image border.
        min_contrast: smallest luma difference (grey levels) of a plain shape's fills from every
            background pixel under the shape (and from each other).
        faint: share of the shapes drawn faint instead: their fills lie ``faint_contrast`` grey
            levels beyond every background pixel under them (0: every shape plain, the rule of
            hgtrain 0.8 and earlier).
        faint_contrast: range (grey levels) of a faint shape's luma difference from the
            background under it; its lower end is also the least difference between its fills.
        background_spread: largest grey-level deviation of background blobs from the image's
            base level (0 with the two below: a flat background).
        background_saturation: largest colour deviation of background blobs from grey.
        background_detail: amplitude (grey levels) of the fine background texture.
        texture_contrast: range of the luma difference (grey levels) between the darkest and
            brightest colour of the textured families (all but "smooth").
    """

    kinds: dict[str, float] = field(default_factory=_default_kinds)
    backgrounds: dict[str, float] = field(default_factory=_default_backgrounds)
    objects: tuple[int, int] = (1, 6)
    occluders: tuple[int, int] = (0, 0)
    object_size: tuple[float, float] = (0.08, 0.45)
    line_width: tuple[float, float] = (0.012, 0.03)
    min_distance: float = 8.0
    margin: float = 2.0
    min_contrast: float = 30.0
    faint: float = 0.25
    faint_contrast: tuple[float, float] = (8.0, 30.0)
    background_spread: float = 50.0
    background_saturation: float = 40.0
    background_detail: float = 12.0
    texture_contrast: tuple[float, float] = (20.0, 80.0)

    def __post_init__(self) -> None:
        for name, known in (("kinds", SHAPES), ("backgrounds", BACKGROUNDS)):
            weights = getattr(self, name)
            unknown = sorted(set(weights) - set(known))
            if unknown:
                raise SettingsError(
                    "SceneConfig", f"unknown {name} {unknown}; choose from {sorted(known)}"
                )
            if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
                raise SettingsError(
                    "SceneConfig", f"{name} weights must be >= 0 with a positive sum, got {weights}"
                )
        if self.backgrounds.get("photo", 0) > 0 and not photos_available():
            raise SettingsError("SceneConfig", MISSING)
        if not 0 <= self.faint <= 1:
            raise SettingsError("SceneConfig", f"faint is a share in [0, 1], got {self.faint}")
        if not 0 < self.faint_contrast[0] <= self.faint_contrast[1] <= 255:
            raise SettingsError(
                "SceneConfig",
                "faint_contrast must be a range (low, high) of grey levels with "
                f"0 < low <= high <= 255, got {self.faint_contrast}",
            )
        names = ("objects", "occluders", "object_size", "line_width", "texture_contrast")
        for name in (*names, "faint_contrast"):
            low, high = getattr(self, name)
            if not 0 <= low <= high:
                raise SettingsError(
                    "SceneConfig", f"{name} must be a range (low, high) with 0 <= low <= high"
                )
            setattr(self, name, tuple(getattr(self, name)))
        if self.object_size[1] > 1:
            raise SettingsError(
                "SceneConfig",
                f"object_size is a fraction of the image side, got {self.object_size}",
            )
        if self.texture_contrast[1] > 255:
            raise SettingsError(
                "SceneConfig",
                f"texture_contrast is in grey levels (<= 255), got {self.texture_contrast}",
            )

    @property
    def background_style(self) -> BackgroundStyle:
        """The background families' ranges of this scene."""
        return BackgroundStyle(
            self.background_spread,
            self.background_detail,
            self.background_saturation,
            self.texture_contrast,
        )

    def held_out_drawn(self) -> list[tuple[str, str]]:
        """``(field, name)`` of each held-out background family (field ``backgrounds``) or shape
        kind (``kinds``) that this scene draws: what keeps it from having an unseen test set."""
        held_out = (("backgrounds", HELD_OUT_BACKGROUND), ("kinds", HELD_OUT_KIND))
        return [(field, name) for field, name in held_out if getattr(self, field).get(name, 0) > 0]


SCENE_PRESETS: dict[str, SceneConfig] = {
    "wide": SceneConfig(),
    "classic": SceneConfig(
        kinds={
            "box": 2.0,
            "polygon": 1.0,
            "star": 1.0,
            "line": 1.0,
            "checkerboard": 0.5,
            "ellipse": 0.5,
        },
        backgrounds={"smooth": 1.0},
        objects=(1, 5),
        occluders=(0, 0),
        object_size=(0.15, 0.45),
        faint=0.0,
    ),
}
"""Named scenes (``data.scene: classic``): ``wide`` is ``SceneConfig()``; ``classic`` is the
scene of hgtrain 0.4 and earlier, with the same shape mix and backgrounds as then."""


def scene_preset(name: str) -> SceneConfig:
    """A fresh copy of the preset ``name`` (a key of :data:`SCENE_PRESETS`)."""
    if name not in SCENE_PRESETS:
        raise ValueError(f"unknown scene preset {name!r}; choose from {sorted(SCENE_PRESETS)}")
    return copy.deepcopy(SCENE_PRESETS[name])


def unseen_scene(scene: SceneConfig) -> SceneConfig:
    """The held-out test scene of a training ``scene``: the same settings, but every background
    is :data:`HELD_OUT_BACKGROUND` and a third of the shapes are :data:`HELD_OUT_KIND` (on
    average), two things that ``scene`` must never draw itself."""
    held_out = [name for _, name in scene.held_out_drawn()]
    if held_out:
        raise ValueError(
            f"the scene draws {held_out}, which the unseen test set keeps out of training"
        )
    kinds = dict(scene.kinds)
    kinds[HELD_OUT_KIND] = 0.5 * sum(kinds.values())
    return dataclasses.replace(scene, kinds=kinds, backgrounds={HELD_OUT_BACKGROUND: 1.0})


CONTRAST_BANDS: dict[str, tuple[float, float]] = {
    "faint": (8.0, 20.0),
    "low_contrast": (20.0, 50.0),
}
"""The contrast test sets: every object's luma difference from the background under it (grey
levels) drawn from the band."""


def contrast_band_scene(scene: SceneConfig, band: tuple[float, float]) -> SceneConfig:
    """``scene`` with every object drawn ``band`` grey levels (low, high) from its background."""
    return dataclasses.replace(scene, faint=1.0, faint_contrast=tuple(band))


def render_scene(
    rng: np.random.Generator, height: int, width: int, config: SceneConfig, image_id: int = 0
) -> Sample:
    """Draw one scene from ``rng``; the returned sample's image is float32 [3, H, W] in [0, 255]."""
    family = _draw(rng, config.backgrounds, 1)[0]
    image = render_background(rng, family, height, width, config.background_style)
    side = min(height, width)
    rules = ShapeRules(
        min_distance=config.min_distance,
        line_width=tuple(max(1.5, f * side) for f in config.line_width),
    )
    n_objects = int(rng.integers(config.objects[0], config.objects[1] + 1))
    placed: list[Shape] = []
    colours: list[np.ndarray] = []
    for kind in _draw(rng, config.kinds, n_objects):
        found = _place(rng, image, kind, side, rules, config, placed)
        if found is not None:
            placed.append(found[0])
            colours.append(found[1])
    paint_shapes(image, placed, colours)
    for _ in range(int(rng.integers(config.occluders[0], config.occluders[1] + 1))):
        placed = _occlude(rng, image, side, rules, config, placed)
    return shapes_to_sample(image, placed, image_id)


def _draw(rng: np.random.Generator, weights: dict[str, float], count: int) -> list[str]:
    """``count`` names drawn from ``weights`` (relative frequencies)."""
    names = list(weights)
    p = np.array([weights[n] for n in names], dtype=np.float64)
    return [str(name) for name in rng.choice(names, size=count, p=p / p.sum())]


def _occlude(
    rng: np.random.Generator,
    image: np.ndarray,
    side: int,
    rules: ShapeRules,
    config: SceneConfig,
    placed: list[Shape],
) -> list[Shape]:
    """Paint a blob or ellipse anywhere over the scene; return ``placed`` without the keypoints
    it hides."""
    height, width = image.shape[1:]
    kind = OCCLUDER_KINDS[int(rng.integers(len(OCCLUDER_KINDS)))]
    shape = SHAPES[kind](rng, rng.uniform(*config.object_size) * side, rules)
    if shape is None:
        return placed
    first = config.margin - shape.box[:2]
    last = np.array([width, height]) - config.margin - shape.box[2:]
    if np.any(first > last):
        return placed
    shape = shape.moved(rng.uniform(first, last))
    coverage = paint_shape(rng, image, shape, config.min_contrast)
    if coverage is None:
        return placed
    window = box_window(shape.box, height, width)
    kept = []
    for other in placed:
        visible = uncovered(other.keypoints, coverage, window, 0.5 * config.min_distance)
        kept.append(
            dataclasses.replace(
                other, keypoints=other.keypoints[visible], labels=other.labels[visible]
            )
        )
    return kept


def _place(
    rng: np.random.Generator,
    image: np.ndarray,
    kind: str,
    side: int,
    rules: ShapeRules,
    config: SceneConfig,
    placed: list[Shape],
) -> tuple[Shape, np.ndarray] | None:
    """Draw and position one shape of ``kind`` clear of ``placed``, and its colours against the
    background under it; None if no attempt fits. Nothing is painted yet: the boxes' pixel
    windows never overlap (the gap between boxes is at least 2 px), so what lies under a new
    shape is background whatever the order of painting."""
    height, width = image.shape[1:]
    low = np.array([config.margin, config.margin])
    high = np.array([width - config.margin, height - config.margin])
    gap = max(0.5 * config.min_distance, 1.0)
    grow = np.array([-gap, -gap, gap, gap])
    taken = [(s.box + grow).tolist() for s in placed]
    faint = config.faint > 0 and rng.random() < config.faint
    contrast = config.faint_contrast if faint else (config.min_contrast, np.inf)
    for _ in range(SHAPE_TRIES):
        size = rng.uniform(*config.object_size) * side
        shape = SHAPES[kind](rng, max(size, 2 * rules.min_distance), rules)
        if shape is None:
            continue
        first, last = low - shape.box[:2], high - shape.box[2:]
        if np.any(first > last):
            continue
        for offset in rng.uniform(first, last, (POSITION_TRIES, 2)):
            if not overlaps((shape.box + grow + offset[[0, 1, 0, 1]]).tolist(), taken):
                break
        else:
            continue
        shape = shape.moved(offset)
        colours = shape_colours(rng, image, shape, *contrast)
        if colours is not None:
            return shape, colours
    return None
