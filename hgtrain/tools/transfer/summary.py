"""The transfer benchmark's report: a Markdown table and a PNG of AP@2 against steps.

For every task and number of labelled images, each start's final AP@2 (median and range over
seeds) and the steps it needs to reach the ``scratch`` start's final AP@2 (the median over seeds
of the final values): per seed, where its curve first reaches that value, interpolated linearly
between evaluations; then the median over seeds (a seed that never gets there counts as
never). The ratio to the step budget is the headline:
below 1, the start gets there faster than training from scratch does in the whole budget.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from hgtrain.atomic import write_file_atomically
from hgtrain.tools.benchmark.plot import nice_ticks

__all__ = ["steps_to_reach", "summarize", "write_plot", "write_report"]

COLOURS = {"pretrained": (31, 119, 180), "scratch": (214, 39, 40), "frozen": (44, 160, 44)}
PANEL, MARGIN, LEFT, BOTTOM, TOP = (300, 220), 12, 52, 40, 28

Curve = Sequence[Sequence[float]]
Box = tuple[int, int, int, int]


def steps_to_reach(curve: Curve, target: float) -> float | None:
    """Steps at which ``curve`` [(step, value)...] first reaches ``target``, interpolated linearly
    between evaluations (from step 0 at value 0 before the first); None if it never does."""
    previous = (0.0, 0.0)
    for step, value in curve:
        if value >= target:
            (x0, y0), (x1, y1) = previous, (step, value)
            return x1 if y1 == y0 else x0 + (target - y0) * (x1 - x0) / (y1 - y0)
        previous = (step, value)
    return None


def summarize(results: dict[str, Any], runs: Sequence[Any]) -> list[dict[str, Any]]:
    """One row per task, image count and start: final AP@2 and steps to scratch's final."""
    steps = results["settings"]["steps"]
    curves: dict[tuple[str, int, str], list[Curve]] = {}
    for run in runs:
        entry = results["runs"].get(run.key)
        if entry and entry["curve"]:
            curves.setdefault((run.task, run.images, run.start), []).append(entry["curve"])
    rows = []
    for (task, images, start), group in curves.items():
        scratch = curves.get((task, images, "scratch"))
        target = statistics.median(c[-1][1] for c in scratch) if scratch else None
        finals = [c[-1][1] for c in group]
        median_steps = None
        if target is not None:
            reached = [steps_to_reach(c, target) for c in group]
            median = statistics.median(math.inf if r is None else r for r in reached)
            median_steps = None if math.isinf(median) else median
        rows.append(
            {
                "task": task,
                "images": images,
                "start": start,
                "seeds": len(group),
                "final": statistics.median(finals),
                "final_range": (min(finals), max(finals)),
                "scratch_final": target,
                "steps_to_scratch_final": median_steps,
                "ratio": median_steps / steps if median_steps is not None else None,
            }
        )
    return rows


def markdown_table(rows: Sequence[dict[str, Any]], steps: int) -> str:
    """The rows as a Markdown table."""
    lines = [
        f"| task | labelled images | start | final AP@2 (median, range) | steps to scratch's "
        f"final AP@2 (of {steps}) | ratio |",
        "|---|---:|---|---|---:|---:|",
    ]
    for row in rows:
        low, high = row["final_range"]
        reach, ratio = row["steps_to_scratch_final"], row["ratio"]
        lines.append(
            f"| {row['task']} | {row['images']} | {row['start']} | {row['final']:.3f} "
            f"({low:.3f}-{high:.3f}) | {'-' if reach is None else f'{reach:.0f}'} | "
            f"{'-' if ratio is None else f'{ratio:.2f}'} |"
        )
    return "\n".join(lines) + "\n"


def write_plot(results: dict[str, Any], runs: Sequence[Any], path: Path) -> None:
    """A PNG grid (a row per task, a column per image count) of AP@2 against steps: each
    start's median over seeds as a line, the range over seeds as a band."""
    tasks = list(dict.fromkeys(run.task for run in runs))
    counts = list(dict.fromkeys(run.images for run in runs))
    starts = list(dict.fromkeys(run.start for run in runs))
    width = MARGIN + len(counts) * (PANEL[0] + MARGIN)
    height = TOP + len(tasks) * (PANEL[1] + MARGIN) + 24
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image, "RGBA")
    font = ImageFont.load_default(size=12)
    ticks = nice_ticks(0.0, 1.0, 6)
    steps = results["settings"]["steps"]
    x_ticks = nice_ticks(0, steps, 5)
    for row, task in enumerate(tasks):
        for column, images in enumerate(counts):
            origin = (MARGIN + column * (PANEL[0] + MARGIN), TOP + row * (PANEL[1] + MARGIN))
            _panel(draw, font, origin, f"{task}, {images} images", x_ticks, ticks)
            for start in starts:
                curves = [
                    results["runs"][run.key]["curve"]
                    for run in runs
                    if (run.task, run.images, run.start) == (task, images, start)
                    and run.key in results["runs"]
                ]
                _series(draw, origin, curves, x_ticks, ticks, COLOURS.get(start, (0, 0, 0)))
    legend_x = MARGIN
    for start in starts:
        colour = COLOURS.get(start, (0, 0, 0))
        draw.line([(legend_x, 12), (legend_x + 20, 12)], fill=colour, width=3)
        draw.text((legend_x + 26, 5), start, fill="black", font=font)
        legend_x += 40 + int(draw.textlength(start, font=font))
    draw.text(
        (legend_x + 10, 5),
        "AP@2 on the test set against fine-tuning steps: median over seeds, band: range",
        fill=(90, 90, 90),
        font=font,
    )
    write_file_atomically(path, lambda file: image.save(file, format="PNG"))


def _panel(
    draw: ImageDraw.ImageDraw,
    font: ImageFont.ImageFont | ImageFont.FreeTypeFont,
    origin: tuple[int, int],
    title: str,
    x_ticks: list[float],
    y_ticks: list[float],
) -> None:
    """One panel's frame, grid, tick labels and title."""
    box = _box(origin)
    draw.rectangle(box, outline=(120, 120, 120))
    draw.text((box[0], origin[1] + 2), title, fill="black", font=font)
    for tick in y_ticks:
        y = _y(tick, y_ticks, box)
        draw.line([(box[0], y), (box[2], y)], fill=(230, 230, 230))
        draw.text((box[0] - 6, y), f"{tick:g}", fill="black", font=font, anchor="rm")
    for tick in x_ticks:
        x = _x(tick, x_ticks, box)
        draw.line([(x, box[1]), (x, box[3])], fill=(230, 230, 230))
        draw.text((x, box[3] + 4), f"{tick:g}", fill="black", font=font, anchor="mt")
    draw.text(((box[0] + box[2]) // 2, box[3] + 18), "steps", fill="black", font=font, anchor="mt")


def _box(origin: tuple[int, int]) -> Box:
    """The plotting area (x0, y0, x1, y1) of the panel at ``origin``."""
    x0, y0 = origin
    return (x0 + LEFT, y0 + 18, x0 + PANEL[0] - 8, y0 + PANEL[1] - BOTTOM + 18)


def _x(value: float, ticks: list[float], box: Box) -> float:
    return box[0] + (value - ticks[0]) / (ticks[-1] - ticks[0]) * (box[2] - box[0])


def _y(value: float, ticks: list[float], box: Box) -> float:
    clamped = min(max(value, ticks[0]), ticks[-1])
    return box[3] - (clamped - ticks[0]) / (ticks[-1] - ticks[0]) * (box[3] - box[1])


def _series(
    draw: ImageDraw.ImageDraw,
    origin: tuple[int, int],
    curves: list[Curve],
    x_ticks: list[float],
    y_ticks: list[float],
    colour: tuple[int, int, int],
) -> None:
    """The median of ``curves`` as a line with markers, their range as a translucent band."""
    if not curves:
        return
    box = _box(origin)
    length = min(len(c) for c in curves)
    steps = [step for step, _ in curves[0][:length]]
    columns = [[c[i][1] for c in curves] for i in range(length)]
    xs = [_x(step, x_ticks, box) for step in steps]
    if len(curves) > 1:
        upper = [(x, _y(max(v), y_ticks, box)) for x, v in zip(xs, columns, strict=True)]
        lower = [(x, _y(min(v), y_ticks, box)) for x, v in zip(xs, columns, strict=True)]
        draw.polygon(upper + lower[::-1], fill=(*colour, 50))
    middle = [(x, _y(statistics.median(v), y_ticks, box)) for x, v in zip(xs, columns, strict=True)]
    if len(middle) > 1:
        draw.line(middle, fill=colour, width=2)
    for x, y in middle:
        draw.ellipse((x - 2, y - 2, x + 2, y + 2), fill=colour)


def write_report(results: dict[str, Any], runs: Sequence[Any], output: Path) -> str:
    """Write ``transfer.md``, ``transfer.png`` and ``summary.json`` into ``output``; the table."""
    steps = results["settings"]["steps"]
    rows = summarize(results, runs)
    table = markdown_table(rows, steps)
    write_file_atomically(output / "transfer.md", lambda file: file.write(table.encode()))
    summary = json.dumps(rows, indent=1).encode()
    write_file_atomically(output / "summary.json", lambda file: file.write(summary))
    write_plot(results, runs, output / "transfer.png")
    return table
