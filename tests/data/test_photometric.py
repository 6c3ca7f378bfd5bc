import numpy as np
import pytest
import torch

from hgtrain.data.generator import photometric
from hgtrain.data.generator.photometric import PhotometricNoise, apply_photometric_noise
from hgtrain.data.generator.scene import SceneConfig, render_scene

# every operation off except the one a test turns on (probability 1: each one that is on applies)
NOTHING = {
    "brightness": 0.0,
    "contrast": (1.0, 1.0),
    "gaussian_std": (0.0, 0.0),
    "speckle": 0.0,
    "shade": (0.0, 0.0),
    "motion_blur": 1,
    "gamma": (1.0, 1.0),
    "colour": 0.0,
    "defocus": 0.0,
}


def flat_image(level: float = 120.0) -> np.ndarray:
    image = np.full((3, 64, 64), level, np.float32)
    image[:, 20:40, 20:40] = level + 40
    return image


def scene(seed: int, height: int = 96, width: int = 80) -> np.ndarray:
    return render_scene(np.random.default_rng(seed), height, width, SceneConfig()).image


def test_noise_stays_in_range_and_changes_the_image():
    noise = PhotometricNoise(probability=1.0)
    for seed in range(5):
        noisy = apply_photometric_noise(np.random.default_rng(seed), flat_image(), noise)
        assert noisy.dtype == np.float32 and noisy.min() >= 0 and noisy.max() <= 255
        assert not np.array_equal(noisy, flat_image())


def test_strong_noise_stays_in_range():
    strong = PhotometricNoise(
        1.0, 75.0, (0.3, 1.8), (0.0, 15.0), 0.0035, (-0.5, 0.8), 7, (0.7, 1.4)
    )
    for seed in range(10):
        noisy = apply_photometric_noise(np.random.default_rng(seed), scene(seed), strong)
        assert noisy.dtype == np.float32 and noisy.min() >= 0 and noisy.max() <= 255


def test_zero_probability_leaves_the_image_alone():
    image = apply_photometric_noise(np.random.default_rng(0), flat_image(), PhotometricNoise(0.0))
    np.testing.assert_array_equal(image, flat_image())


@pytest.mark.parametrize("size", [(96, 80), (23, 17), (511, 511)])
def test_same_generator_state_gives_the_same_image(size):
    """Work arrays, the table of normals and other sizes in between change nothing."""
    noise = PhotometricNoise(probability=0.8)
    first = [
        apply_photometric_noise(np.random.default_rng(seed), scene(seed, *size), noise)
        for seed in range(6)
    ]
    apply_photometric_noise(np.random.default_rng(9), scene(9, 200, 300), noise)
    for seed in reversed(range(6)):
        again = apply_photometric_noise(np.random.default_rng(seed), scene(seed, *size), noise)
        np.testing.assert_array_equal(again, first[seed])


def test_torch_threads_change_nothing():
    noise = PhotometricNoise(probability=1.0)
    threads = torch.get_num_threads()
    try:
        results = []
        for count in (1, 2):
            torch.set_num_threads(count)
            results.append(
                [
                    apply_photometric_noise(np.random.default_rng(seed), scene(seed), noise)
                    for seed in range(4)
                ]
            )
    finally:
        torch.set_num_threads(threads)
    for one, two in zip(*results, strict=True):
        np.testing.assert_array_equal(one, two)


def test_brightness_does_not_drown_a_dark_image():
    noise = PhotometricNoise(1.0, **{**NOTHING, "brightness": 75.0})
    for seed in range(20):
        dark = apply_photometric_noise(np.random.default_rng(seed), flat_image(20.0), noise)
        assert dark[:, 30, 30].mean() - dark[:, 5, 5].mean() == pytest.approx(40, abs=1e-3)


def test_grain_has_the_asked_deviation_and_no_correlation():
    noise = PhotometricNoise(1.0, **{**NOTHING, "gaussian_std": (6.0, 6.0)})
    image = np.full((3, 256, 256), 128.0, np.float32)
    grain = apply_photometric_noise(np.random.default_rng(1), image, noise)[0] - 128.0
    assert abs(grain.mean()) < 0.1 and grain.std() == pytest.approx(6.0, rel=0.02)
    for shifted, reference in ((grain[1:], grain[:-1]), (grain[:, 1:], grain[:, :-1])):
        assert abs(np.corrcoef(shifted.ravel(), reference.ravel())[0, 1]) < 0.02


def test_grain_differs_between_generators_and_not_within_one():
    first = photometric._grain(np.random.default_rng(1), 128, 96).numpy().copy()
    again = photometric._grain(np.random.default_rng(1), 128, 96).numpy()
    other = photometric._grain(np.random.default_rng(2), 128, 96).numpy()
    np.testing.assert_array_equal(first, again)
    assert np.abs(np.corrcoef(first.ravel(), other.ravel())[0, 1]) < 0.05


def test_the_table_of_normals_does_not_depend_on_how_it_grew():
    table = photometric._standard_normals(3 * photometric.NORMALS_CHUNK)
    second = np.random.default_rng([photometric.NORMALS_SEED, 1])
    expected = second.standard_normal(photometric.NORMALS_CHUNK, np.float32)
    chunk = slice(photometric.NORMALS_CHUNK, 2 * photometric.NORMALS_CHUNK)
    np.testing.assert_array_equal(table[chunk], expected)


@pytest.mark.parametrize("gamma", [0.7, 1.0, 1.4])
def test_gamma_follows_the_tone_curve(gamma):
    levels = np.linspace(-20.0, 275.0, 3 * 40 * 50, dtype=np.float32).reshape(3, 40, 50)
    gain = np.array([1.0, 1.2, 0.8], np.float32).reshape(3, 1, 1)
    offset = np.array([0.0, -10.0, 15.0], np.float32).reshape(3, 1, 1)
    colour = np.array([1.0, 0.9, 1.1], np.float32).reshape(3, 1, 1)
    image = levels.copy()
    photometric._gamma(image, gamma, gain, offset, colour)
    y = np.clip(gain * levels.astype(np.float64) + offset, 0.0, 255.0)
    exact = colour * 255.0 * (y / 255.0) ** gamma
    assert np.abs(image - exact).max() < 0.3
    assert np.abs(image - exact)[y >= 1.0].max() < 0.07


def pad(image: np.ndarray, radius: int) -> np.ndarray:
    return np.pad(image, ((0, 0), (radius, radius), (radius, radius)), mode="edge")


@pytest.mark.parametrize("sigma", [0.3, 0.6, 1.0])
def test_defocus_is_a_gaussian_blur_with_replicated_edges(sigma):
    image = scene(3, 40, 57)
    radius = max(1, int(np.ceil(3 * sigma)))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()
    padded = pad(image.astype(np.float64), radius)
    rows = sum(w * padded[:, :, i : i + 57] for i, w in enumerate(taps))
    expected = sum(w * rows[:, i : i + 40] for i, w in enumerate(taps))
    blurred = image.copy()
    photometric._defocus(blurred, sigma)
    np.testing.assert_allclose(blurred, expected, atol=1e-3)


@pytest.mark.parametrize("length", [3, 5, 7])
def test_motion_blur_averages_shifted_copies(length):
    image = scene(4, 40, 57)
    angle = np.random.default_rng(length).uniform(0, np.pi)
    radius = length // 2
    steps = np.arange(-radius, radius + 1)
    across = np.rint(steps * np.cos(angle)).astype(int) + radius
    down = np.rint(steps * np.sin(angle)).astype(int) + radius
    padded = pad(image.astype(np.float64), radius)
    copies = [padded[:, y : y + 40, x : x + 57] for x, y in zip(across, down, strict=True)]
    blurred = image.copy()
    photometric._motion_blur(np.random.default_rng(length), blurred, length)
    np.testing.assert_allclose(blurred, np.mean(copies, axis=0), atol=1e-3)


@pytest.mark.parametrize(("height", "width"), [(511, 511), (128, 96), (20, 37)])
def test_shading_is_a_smooth_factor_within_its_strength(height, width):
    for seed, strength in enumerate((0.8, -0.5)):
        factor = photometric._shade(np.random.default_rng(seed), height, width, strength)
        assert factor.shape == (height, width) and factor.dtype == np.float32
        assert factor.min() >= min(1.0, 1.0 - strength) - 1e-6
        assert factor.max() <= max(1.0, 1.0 - strength) + 1e-6
        assert np.abs(np.diff(factor, axis=0)).max() <= abs(strength) / 4
        assert np.abs(np.diff(factor, axis=1)).max() <= abs(strength) / 4


def test_superpoint_ranges():
    superpoint = PhotometricNoise.superpoint()
    assert superpoint.brightness == 75 and superpoint.contrast == (0.3, 1.8)
    assert superpoint.gaussian_std == (0, 15) and superpoint.motion_blur == 7


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"motion_blur": 4}, "odd"),
        ({"probability": 2.0}, "probability"),
        ({"contrast": (2, 1)}, "contrast"),
    ],
)
def test_bad_noise_settings_are_rejected(settings, problem):
    with pytest.raises(ValueError, match=problem):
        PhotometricNoise(**settings)
