import numpy as np
import pytest

from hgtrain.data.generator.raster import polygon_coverage, polygon_window, window_coverages


def box_coverage(x0, y0, x1, y1, height, width):
    """Exact per-pixel area of [x0, x1) x [y0, y1), pixel i covering [i, i+1)."""
    columns, rows = np.arange(width), np.arange(height)
    cover_x = np.clip(np.minimum(columns + 1, x1) - np.maximum(columns, x0), 0, 1)
    cover_y = np.clip(np.minimum(rows + 1, y1) - np.maximum(rows, y0), 0, 1)
    return np.outer(cover_y, cover_x)


def test_rectangle_coverage_is_the_exact_pixel_area():
    rng = np.random.default_rng(0)
    for _ in range(100):
        x0, x1 = np.sort(rng.uniform(0, 40, 2))
        y0, y1 = np.sort(rng.uniform(0, 30, 2))
        if rng.random() < 0.3:
            x0, y1 = np.floor(x0), np.ceil(y1)
        rectangle = np.array([(x0, y0), (x1, y0), (x1, y1), (x0, y1)])
        if rng.random() < 0.5:
            rectangle = rectangle[::-1]
        coverage = polygon_coverage([rectangle], (0, 0, 40, 30))
        np.testing.assert_allclose(coverage, box_coverage(x0, y0, x1, y1, 30, 40), atol=1e-5)


def test_triangle_coverage_sums_to_its_area_in_an_offset_window():
    rng = np.random.default_rng(1)
    for _ in range(50):
        triangle = rng.uniform(10, 50, (3, 2))
        (ax, ay), (bx, by) = triangle[1] - triangle[0], triangle[2] - triangle[0]
        window = polygon_window([triangle], 64, 64)
        coverage = polygon_coverage([triangle], window)
        assert coverage.shape == (window[3] - window[1], window[2] - window[0])
        assert coverage.sum() == pytest.approx(0.5 * abs(ax * by - ay * bx), abs=1e-4)
        assert coverage.min() >= 0 and coverage.max() <= 1


def test_window_is_clipped_to_the_image():
    assert polygon_window([np.array([(-3.5, 2.2), (70.1, 5.0), (10.0, 9.9)])], 32, 64) == (
        0,
        2,
        64,
        10,
    )


def test_many_windows_in_one_pass_match_one_window_at_a_time():
    """window_coverages rasterises every layer of every window at once, with the same exact
    areas as polygon_coverage gives each polygon on its own (either orientation)."""
    rng = np.random.default_rng(2)
    windows, polygons, window_of, layer_of = [], [], [], []
    for index in range(12):
        origin = rng.uniform(0, 200, 2)
        layers = int(rng.integers(1, 3))
        triangles = [origin + rng.uniform(0, 30, (3, 2)) for _ in range(layers)]
        polygons += [t if rng.random() < 0.5 else t[::-1] for t in triangles]
        window_of += [index] * layers
        layer_of += list(range(layers))
        windows.append(polygon_window(triangles, 256, 256))
    coverages = window_coverages(polygons, np.array(window_of), np.array(layer_of), windows)
    for polygon, index, layer in zip(polygons, window_of, layer_of, strict=True):
        expected = polygon_coverage([polygon], windows[index])
        np.testing.assert_allclose(coverages[index][layer], expected, atol=1e-6)
    assert [len(c) for c in coverages] == list(np.bincount(window_of))
