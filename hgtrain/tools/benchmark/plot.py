"""Line plots as SVG text: curves of a metric for a README, with no plotting library.

One plot has numeric axes with round ticks, one polyline (and its points) per series in a colour
of its own, an optional dashed horizontal line (a target) and a legend. The file is plain SVG
1.1, which GitHub, browsers and image viewers show.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path

from hgtrain.atomic import write_file_atomically

__all__ = ["line_plot_svg", "nice_ticks", "write_line_plot"]

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")
WIDTH, HEIGHT = 640, 400
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 36, 48

Points = Sequence[tuple[float, float]]


def nice_ticks(low: float, high: float, count: int = 6) -> list[float]:
    """About ``count`` round tick values (steps of 1, 2 or 5 x 10^k) covering ``[low, high]``."""
    if high <= low:
        high = low + 1.0
    raw = (high - low) / max(count - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    first = math.floor(low / step) * step
    ticks, value = [], first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    if ticks[-1] < high:
        ticks.append(round(value, 10))
    return ticks


def _label(value: float) -> str:
    return f"{value:g}"


def line_plot_svg(
    series: Mapping[str, Points],
    x_label: str,
    y_label: str,
    title: str = "",
    target: float | None = None,
    y_range: tuple[float, float] | None = None,
) -> str:
    """An SVG document plotting each named series of (x, y) points as a line with markers.

    ``target`` draws a dashed horizontal line at that y; ``y_range`` fixes the y axis (default:
    the data's range, with the target).
    """
    xs = [x for points in series.values() for x, _ in points] or [0.0, 1.0]
    ys = [y for points in series.values() for _, y in points] or [0.0, 1.0]
    if target is not None:
        ys.append(target)
    x_ticks = nice_ticks(min(0.0, min(xs)), max(xs))
    y_ticks = nice_ticks(*(y_range or (min(ys), max(ys))))
    x0, x1, y0, y1 = x_ticks[0], x_ticks[-1], y_ticks[0], y_ticks[-1]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(x: float) -> float:
        return LEFT + (x - x0) / (x1 - x0) * plot_w

    def py(y: float) -> float:
        return TOP + (1 - (y - y0) / (y1 - y0)) * plot_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{WIDTH / 2}" y="20" text-anchor="middle" font-size="14">{escape(title)}</text>',
    ]
    for x in x_ticks:
        parts.append(
            f'<line x1="{px(x):.1f}" y1="{TOP}" x2="{px(x):.1f}" y2="{TOP + plot_h}" '
            'stroke="#e5e5e5"/>'
            f'<text x="{px(x):.1f}" y="{TOP + plot_h + 16}" text-anchor="middle">'
            f"{_label(x)}</text>"
        )
    for y in y_ticks:
        parts.append(
            f'<line x1="{LEFT}" y1="{py(y):.1f}" x2="{LEFT + plot_w}" y2="{py(y):.1f}" '
            'stroke="#e5e5e5"/>'
            f'<text x="{LEFT - 6}" y="{py(y) + 4:.1f}" text-anchor="end">{_label(y)}</text>'
        )
    parts.append(
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" '
        'stroke="#333"/>'
        f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 10}" text-anchor="middle">'
        f"{escape(x_label)}</text>"
        f'<text x="16" y="{TOP + plot_h / 2}" text-anchor="middle" '
        f'transform="rotate(-90 16 {TOP + plot_h / 2})">{escape(y_label)}</text>'
    )
    if target is not None:
        parts.append(
            f'<line x1="{LEFT}" y1="{py(target):.1f}" x2="{LEFT + plot_w}" y2="{py(target):.1f}" '
            'stroke="#555" stroke-dasharray="6 4"/>'
            f'<text x="{LEFT + plot_w - 4}" y="{py(target) - 5:.1f}" text-anchor="end" '
            f'fill="#555">target {_label(target)}</text>'
        )
    for i, (name, points) in enumerate(series.items()):
        colour = COLOURS[i % len(COLOURS)]
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in points)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        parts += [
            f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{colour}"/>' for x, y in points
        ]
        legend_y = TOP + plot_h - 12 - 16 * (len(series) - 1 - i)
        parts.append(
            f'<line x1="{LEFT + plot_w - 150}" y1="{legend_y - 4}" x2="{LEFT + plot_w - 130}" '
            f'y2="{legend_y - 4}" stroke="{colour}" stroke-width="2"/>'
            f'<text x="{LEFT + plot_w - 124}" y="{legend_y}">{escape(name)}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def write_line_plot(path: str | Path, series: Mapping[str, Points], **options) -> Path:
    """Write :func:`line_plot_svg` to ``path`` atomically; returns the path."""
    text = line_plot_svg(series, **options).encode()
    write_file_atomically(path, lambda file: file.write(text))
    return Path(path)
