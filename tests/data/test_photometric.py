import numpy as np
import pytest

from hgtrain.data.generator.photometric import PhotometricNoise, apply_photometric_noise


def flat_image(level: float = 120.0) -> np.ndarray:
    image = np.full((3, 64, 64), level, np.float32)
    image[:, 20:40, 20:40] = level + 40
    return image


def test_noise_stays_in_range_and_changes_the_image():
    noise = PhotometricNoise(probability=1.0)
    for seed in range(5):
        noisy = apply_photometric_noise(np.random.default_rng(seed), flat_image(), noise)
        assert noisy.dtype == np.float32 and noisy.min() >= 0 and noisy.max() <= 255
        assert not np.array_equal(noisy, flat_image())


def test_zero_probability_leaves_the_image_alone():
    image = apply_photometric_noise(np.random.default_rng(0), flat_image(), PhotometricNoise(0.0))
    np.testing.assert_array_equal(image, flat_image())


def test_brightness_does_not_drown_a_dark_image():
    noise = PhotometricNoise(
        1.0,
        brightness=75.0,
        contrast=(1.0, 1.0),
        gaussian_std=(0, 0),
        speckle=0.0,
        shade=(0.0, 0.0),
        motion_blur=1,
        gamma=(1.0, 1.0),
        colour=0.0,
        defocus=0.0,
    )
    for seed in range(20):
        dark = apply_photometric_noise(np.random.default_rng(seed), flat_image(20.0), noise)
        assert dark[:, 30, 30].mean() - dark[:, 5, 5].mean() == pytest.approx(40, abs=1e-3)


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
