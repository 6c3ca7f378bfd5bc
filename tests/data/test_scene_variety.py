"""The wider generator: background families, the held-out kind, clutter, occluders, presets."""

import dataclasses

import numpy as np
import pytest
from PIL import Image

from hgtrain.data.generator import backgrounds, photos, scene
from hgtrain.data.generator.backgrounds import BACKGROUNDS, LUMA, BackgroundStyle
from hgtrain.data.generator.scene import (
    HELD_OUT_BACKGROUND,
    HELD_OUT_KIND,
    SceneConfig,
    contrast_band_scene,
    render_scene,
    scene_preset,
    unseen_scene,
)
from hgtrain.data.generator.shapes import SHAPES, ShapeRules
from hgtrain.data.loading.coco_format import read_keypoint_set, write_keypoint_set
from hgtrain.data.loading.datamodule import KeypointDataModule
from hgtrain.data.sample import CLASS_NAMES
from hgtrain.errors import ConfigError, SettingsError
from hgtrain.tools import data_preview as preview

BUILT_IN = [name for name in BACKGROUNDS if name != "photo"]


def luma(image: np.ndarray) -> np.ndarray:
    return np.tensordot(LUMA, image, axes=1)


@pytest.mark.parametrize("family", BUILT_IN)
def test_every_family_is_a_pure_function_of_its_generator(family):
    style = BackgroundStyle()
    first = BACKGROUNDS[family](np.random.default_rng(7), 40, 56, style)
    again = BACKGROUNDS[family](np.random.default_rng(7), 40, 56, style)
    other = BACKGROUNDS[family](np.random.default_rng(8), 40, 56, style)
    assert first.shape == (3, 40, 56) and first.dtype == np.float32
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    assert first.min() >= 0 and first.max() <= 255


@pytest.mark.parametrize("family", [f for f in BUILT_IN if f != "smooth"])
def test_textured_families_keep_their_luma_range_to_the_texture_contrast(family):
    style = BackgroundStyle(texture_contrast=(30.0, 60.0))
    spreads = [
        np.ptp(luma(BACKGROUNDS[family](np.random.default_rng(i), 64, 64, style)))
        for i in range(10)
    ]
    assert max(spreads) <= 60.0 + 0.5
    assert min(spreads) >= 15.0  # a pattern that shows, not a flat image


def contrast_gaps(config: SceneConfig, family: str, seeds: range) -> list[float]:
    """Each drawn box's luma difference from the nearest background level under it."""
    gaps = []
    for seed in seeds:
        sample = render_scene(np.random.default_rng(seed), 96, 96, config)
        rng = np.random.default_rng(seed)  # the background is drawn first: draw it again
        scene._draw(rng, config.backgrounds, 1)
        background = luma(
            backgrounds.render_background(rng, family, 96, 96, config.background_style)
        )
        for x0, y0, x1, y1 in sample.boxes:
            inner = np.s_[int(np.ceil(y0)) + 1 : int(y1) - 1, int(np.ceil(x0)) + 1 : int(x1) - 1]
            fill = luma(sample.image)[inner]
            under = background[int(y0) : int(np.ceil(y1)), int(x0) : int(np.ceil(x1))]
            assert fill.mean() < under.min() or fill.mean() > under.max()
            gaps.append(min(abs(fill.mean() - under.min()), abs(fill.mean() - under.max())))
    return gaps


@pytest.mark.parametrize("family", BUILT_IN)
def test_plain_shapes_stand_out_from_every_background_pixel_under_them(family):
    config = SceneConfig(kinds={"box": 1.0}, backgrounds={family: 1.0}, faint=0.0)
    gaps = contrast_gaps(config, family, range(6))
    assert len(gaps) >= 6 and min(gaps) >= config.min_contrast - 0.5


@pytest.mark.parametrize("band", [(8.0, 20.0), (20.0, 50.0)])
def test_a_contrast_band_scene_draws_every_shape_within_its_band(band):
    plain = SceneConfig(kinds={"box": 1.0}, backgrounds={"noise": 1.0})
    gaps = contrast_gaps(contrast_band_scene(plain, band), "noise", range(8))
    assert len(gaps) >= 8
    assert band[0] - 0.5 <= min(gaps) and max(gaps) <= band[1] + 0.5


def test_a_share_of_the_shapes_is_faint_and_the_rest_plain():
    config = SceneConfig(kinds={"box": 1.0}, backgrounds={"smooth": 1.0}, faint=0.25)
    gaps = np.array(contrast_gaps(config, "smooth", range(60)))
    faint = gaps < config.min_contrast - 0.5
    assert len(gaps) >= 100
    assert 0.15 < faint.mean() < 0.35
    assert gaps[faint].min() >= config.faint_contrast[0] - 0.5


@pytest.mark.parametrize(
    "settings, named",
    [({"faint": 1.5}, "faint"), ({"faint_contrast": (30.0, 10.0)}, "faint_contrast")],
)
def test_a_faint_setting_out_of_range_is_refused_by_name(settings, named):
    with pytest.raises(SettingsError, match=named):
        SceneConfig(**settings)


def test_the_cross_is_twelve_exact_far_apart_vertices():
    rules = ShapeRules()
    crosses = [SHAPES["cross"](np.random.default_rng(i), 60.0, rules) for i in range(40)]
    crosses = [c for c in crosses if c is not None]
    assert len(crosses) >= 20
    for cross in crosses:
        assert len(cross.keypoints) == 12 and set(cross.labels) == {CLASS_NAMES.index("corner")}
        np.testing.assert_array_equal(cross.keypoints, cross.fills[0][0])
        distance = np.linalg.norm(cross.keypoints[:, None] - cross.keypoints[None], axis=-1)
        assert distance[~np.eye(12, dtype=bool)].min() >= rules.min_distance


@pytest.mark.parametrize("kind", ["ellipse", "blob"])
@pytest.mark.parametrize("size", [16.0, 30.0, 60.0])
def test_clutter_stays_round_so_that_no_bend_looks_like_a_corner(kind, size):
    rules = ShapeRules()
    rng = np.random.default_rng(1)
    drawn = [SHAPES[kind](rng, size, rules) for _ in range(200)]
    drawn = [shape for shape in drawn if shape is not None]
    assert len(drawn) >= 50
    for shape in drawn:
        outline = shape.fills[0][0]
        ahead, behind = np.roll(outline, -1, axis=0), np.roll(outline, 1, axis=0)
        sides = [
            np.linalg.norm(u - v, axis=1)
            for u, v in ((outline, behind), (ahead, outline), (ahead, behind))
        ]
        (bx, by), (ax, ay) = (outline - behind).T, (ahead - outline).T
        doubled_area = np.abs(bx * ay - by * ax)
        circumradius = sides[0] * sides[1] * sides[2] / (2 * doubled_area)
        assert circumradius.min() >= rules.round_radius - 1e-6


@pytest.mark.parametrize("kind", ["ellipse", "blob"])
def test_clutter_has_no_keypoints(kind):
    shape = SHAPES[kind](np.random.default_rng(0), 40.0, ShapeRules())
    assert len(shape.keypoints) == 0 and len(shape.labels) == 0
    assert np.ptp(shape.box.reshape(2, 2), axis=0).max() == pytest.approx(40.0, rel=0.35)


def test_a_curve_is_labelled_at_the_tips_of_its_round_caps():
    rng = np.random.default_rng(3)
    for _ in range(20):
        curve = SHAPES["curve"](rng, 40.0, ShapeRules())
        assert len(curve.keypoints) == 2 and set(curve.labels) == {CLASS_NAMES.index("corner")}
        outline = curve.fills[0][0]
        # each tip is a vertex of the outline (a cap's apex), and they are the stroke's two ends
        for tip in curve.keypoints:
            assert np.linalg.norm(outline - tip, axis=1).min() < 1e-9
        extent = np.linalg.norm(outline[:, None] - outline[None], axis=-1).max()
        apart = np.linalg.norm(curve.keypoints[0] - curve.keypoints[1])
        assert apart >= max(0.5 * extent, ShapeRules().min_distance)


def test_occluders_take_away_exactly_the_keypoints_they_come_near():
    base = SceneConfig(kinds={"box": 1.0, "polygon": 1.0}, objects=(5, 5), occluders=(0, 0))
    occluded = dataclasses.replace(base, occluders=(3, 3))
    removed_somewhere = 0
    for seed in range(12):
        plain = render_scene(np.random.default_rng(seed), 96, 96, base)
        covered = render_scene(np.random.default_rng(seed), 96, 96, occluded)
        assert np.array_equal(plain.boxes, covered.boxes)  # the same objects, drawn first
        kept = {tuple(p) for p in covered.keypoints.tolist()}
        assert kept <= {tuple(p) for p in plain.keypoints.tolist()}
        changed = np.abs(plain.image - covered.image).max(axis=0) > 0
        reach = int(np.ceil(base.min_distance / 2)) + 1
        for x, y in plain.keypoints.tolist():
            near = changed[
                max(int(y) - reach, 0) : int(y) + reach + 1,
                max(int(x) - reach, 0) : int(x) + reach + 1,
            ]
            if (x, y) not in kept:
                removed_somewhere += 1
                assert near.any()  # an occluder came near it
            else:
                assert not changed[
                    max(int(y) - 1, 0) : int(y) + 2, max(int(x) - 1, 0) : int(x) + 2
                ].any()  # a kept keypoint is still the corner it was
    assert removed_somewhere > 0


def test_a_box_with_a_hidden_corner_round_trips_through_coco(tmp_path):
    config = SceneConfig(kinds={"box": 1.0}, objects=(5, 5), occluders=(3, 3))
    samples = [
        render_scene(np.random.default_rng(seed), 96, 96, config, seed) for seed in range(12)
    ]
    lone_corners = sum(
        (np.bincount(s.object_ids, minlength=len(s.kinds)) == 1).sum() for s in samples
    )
    assert lone_corners > 0
    for sample in samples:
        sample.image = sample.image.astype(np.uint8)
    write_keypoint_set(tmp_path, samples, CLASS_NAMES)
    read = read_keypoint_set(tmp_path)
    assert read.num_keypoints == sum(len(s.keypoints) for s in samples)


def test_the_unseen_scene_draws_only_what_training_never_does():
    training = SceneConfig()
    assert training.held_out_drawn() == []
    both = SceneConfig(kinds={"box": 1.0, HELD_OUT_KIND: 1.0}, backgrounds={HELD_OUT_BACKGROUND: 1})
    assert both.held_out_drawn() == [("backgrounds", "marble"), ("kinds", "cross")]
    unseen = unseen_scene(training)
    assert unseen.backgrounds == {HELD_OUT_BACKGROUND: 1.0}
    assert unseen.kinds[HELD_OUT_KIND] == pytest.approx(sum(unseen.kinds.values()) / 3)
    with pytest.raises(ValueError, match="keeps out of training"):
        unseen_scene(SceneConfig(backgrounds={"smooth": 1.0, HELD_OUT_BACKGROUND: 0.1}))


def test_presets_are_fresh_copies_and_classic_is_the_old_scene():
    classic = scene_preset("classic")
    assert classic.backgrounds == {"smooth": 1.0} and classic.occluders == (0, 0)
    assert classic.object_size == (0.15, 0.45) and "cross" not in classic.kinds
    classic.kinds["box"] = 9.0
    assert scene_preset("classic").kinds["box"] == 2.0
    assert scene_preset("wide") == SceneConfig()
    with pytest.raises(ValueError, match="choose from"):
        scene_preset("fancy")


def test_the_datamodule_takes_a_preset_by_name_and_refuses_an_unseen_set_that_is_seen(tmp_path):
    assert KeypointDataModule(root=str(tmp_path), scene="classic").scene == scene_preset("classic")
    with pytest.raises(ConfigError, match=r"data.scene='fancy': must be a scene preset"):
        KeypointDataModule(root=str(tmp_path), scene="fancy")
    seen = SceneConfig(kinds={"box": 1.0, HELD_OUT_KIND: 1.0})
    with pytest.raises(ConfigError) as refused:
        KeypointDataModule(root=str(tmp_path), scene=seen)
    assert str(refused.value) == (
        "data.scene.kinds={'box': 1.0, 'cross': 1.0}: draws 'cross', which the unseen test set "
        "keeps out of training: leave it out, or 'unseen' out of data.test_sets"
    )
    marble = SceneConfig(backgrounds={"noise": 1.0, HELD_OUT_BACKGROUND: 0.5})
    with pytest.raises(ConfigError, match=r"^data\.scene\.backgrounds=.*draws 'marble'"):
        KeypointDataModule(root=str(tmp_path), scene=marble)
    module = KeypointDataModule(root=str(tmp_path), scene=seen, test_sets=["noisy"])
    assert module.test_set_names == ("test_noisy",)


def test_the_contrast_test_sets_are_the_noisy_scenes_at_one_band(tmp_path):
    module = KeypointDataModule(
        root=str(tmp_path), test_sets=["noisy", "low_contrast", "faint"], test_size=4
    )
    assert module.test_set_names == ("test_noisy", "test_low_contrast", "test_faint")
    noisy = module.generated_set("test_noisy")
    for name, band in (("test_low_contrast", (20.0, 50.0)), ("test_faint", (8.0, 20.0))):
        generated = module.generated_set(name)
        assert generated.noise == noisy.noise and generated.size == noisy.size
        assert generated.scene == dataclasses.replace(noisy.scene, faint=1.0, faint_contrast=band)


def test_the_photo_family_names_its_optional_dependency(monkeypatch):
    monkeypatch.setattr(scene, "photos_available", lambda: False)
    with pytest.raises(ValueError, match=r'pip install "hgtrain\[photos\]"'):
        SceneConfig(backgrounds={"photo": 1.0})


def test_the_photo_family_draws_bundled_photographs():
    pytest.importorskip("skimage")
    style = BackgroundStyle(texture_contrast=(40.0, 40.0))
    images = [backgrounds.photo(np.random.default_rng(i), 48, 64, style) for i in range(6)]
    for image in images:
        assert image.shape == (3, 48, 64) and image.dtype == np.float32
        assert np.ptp(luma(image)) == pytest.approx(40.0, abs=1.0)
    assert len(photos.photo_library()) == len(photos.PHOTOS)
    assert len({float(image.mean()) for image in images}) == len(images)


@pytest.mark.parametrize(
    "args", [["--background", "stripes"], ["--scene", "unseen"], ["--scene", "classic"]]
)
def test_data_preview_shows_a_family_or_a_preset(tmp_path, args):
    path = preview.main(
        [*args, "--count", "2", "--image_size", "64", "--output", str(tmp_path / "p.png")]
    )
    assert Image.open(path).size[0] > 2 * 64


def test_data_preview_of_several_families_captions_one_row_each(tmp_path):
    dataset = preview._dataset(
        preview._parser(), preview._parser().parse_args(["--background", "noise", "stripes"])
    )
    assert isinstance(dataset, preview.CaptionedSamples) and len(dataset) == 12  # 6 per family
    assert [dataset.caption(i) for i in (0, 5, 6, 11)] == ["noise", "noise", "stripes", "stripes"]
    out = tmp_path / "rows.png"
    preview.main(["--background", "noise", "stripes", "--count", "2", "--output", str(out)])
    with Image.open(out) as picture:  # 2 rows of 2 samples x 2 tiles (128 px shown at 256)
        assert 4 * 256 < picture.width < 5 * 256 and 2 * 256 < picture.height < 3 * 256
