"""The results of ``hgtrain repeatability``: the summary per detector and change, a Markdown
table and a bar chart (drawn with PIL, as the other tools' PNG plots: no plotting library)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from hgtrain.tools.benchmark.plot import COLOURS, nice_ticks
from hgtrain.tools.repeatability.pairs import CHANGES

__all__ = ["bar_chart", "markdown_table", "summarize"]

WIDTH, HEIGHT = 640, 400
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 56, 40


def summarize(pairs: Sequence[dict[str, Any]], detectors: Sequence[str]) -> list[dict[str, Any]]:
    """One row per detector and change: the mean repeatability over its pairs and the mean number
    of points per image (A and B)."""
    rows = []
    for detector in detectors:
        for change in CHANGES:
            scores = [p["scores"][detector] for p in pairs if p["change"] == change]
            if not scores:
                continue
            rows.append(
                {
                    "detector": detector,
                    "change": change,
                    "repeatability": statistics.fmean(s["repeatability"] for s in scores),
                    "points_per_image": statistics.fmean(
                        (s["points_a"] + s["points_b"]) / 2 for s in scores
                    ),
                    "pairs": len(scores),
                }
            )
    return rows


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """The summary as a Markdown table: a row per detector, per change its mean repeatability and
    points per image."""
    changes = [c for c in CHANGES if any(r["change"] == c for r in rows)]
    by_key = {(r["detector"], r["change"]): r for r in rows}
    header = "| detector | " + " | ".join(
        f"{change} repeatability | {change} points/image" for change in changes
    )
    lines = [f"{header} |", "|---|" + "---:|---:|" * len(changes)]
    for detector in dict.fromkeys(r["detector"] for r in rows):
        cells = [
            f"{by_key[detector, c]['repeatability']:.3f} | {by_key[detector, c]['points_per_image']:.0f}"
            for c in changes
        ]
        lines.append(f"| {detector} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def bar_chart(rows: Sequence[dict[str, Any]], title: str) -> Image.Image:
    """A bar chart: per change, one bar per detector of its mean repeatability, labelled."""
    changes = [c for c in CHANGES if any(r["change"] == c for r in rows)]
    detectors = list(dict.fromkeys(r["detector"] for r in rows))
    by_key = {(r["detector"], r["change"]): r["repeatability"] for r in rows}
    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=12)
    x0, x1, y0, y1 = LEFT, WIDTH - RIGHT, TOP, HEIGHT - BOTTOM
    ticks = nice_ticks(0.0, 1.0, 6)

    def y_of(value: float) -> float:
        return y1 - value * (y1 - y0)

    for tick in ticks:
        draw.line([(x0, y_of(tick)), (x1, y_of(tick))], fill=(230, 230, 230))
        draw.text((x0 - 6, y_of(tick)), f"{tick:g}", fill="black", font=font, anchor="rm")
    draw.rectangle((x0, y0, x1, y1), outline=(120, 120, 120))
    draw.text((x0, 8), title, fill="black", font=font)
    group = (x1 - x0) / len(changes)
    bar = group * 0.8 / len(detectors)
    for g, change in enumerate(changes):
        left = x0 + g * group + group * 0.1
        for d, detector in enumerate(detectors):
            value = by_key.get((detector, change))
            if value is None:
                continue
            bx = left + d * bar
            draw.rectangle((bx + 2, y_of(value), bx + bar - 2, y1), fill=COLOURS[d % len(COLOURS)])
            label = f"{value:.2f}"
            draw.text((bx + bar / 2, y_of(value) - 3), label, fill="black", font=font, anchor="md")
        draw.text((x0 + (g + 0.5) * group, y1 + 8), change, fill="black", font=font, anchor="mt")
    legend_x = x0
    for d, detector in enumerate(detectors):
        draw.rectangle((legend_x, 30, legend_x + 12, 42), fill=COLOURS[d % len(COLOURS)])
        draw.text((legend_x + 18, 36), detector, fill="black", font=font, anchor="lm")
        legend_x += 40 + int(draw.textlength(detector, font=font))
    return image
