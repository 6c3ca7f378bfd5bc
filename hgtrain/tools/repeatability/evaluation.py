"""The command line of ``hgtrain repeatability`` (and ``python -m hgtrain.tools.repeatability``):
options, one-line errors, the run and its output files."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hgtrain import __version__
from hgtrain.cli.arguments import ToolParser
from hgtrain.data.generator.photos import PHOTOS
from hgtrain.tools.repeatability.detectors import (
    CLASSICAL,
    DETECTORS,
    Detector,
    NetworkDetector,
    best_points,
    classical_detector,
)
from hgtrain.tools.repeatability.pairs import Pair, make_pairs
from hgtrain.tools.repeatability.results import bar_chart, markdown_table, summarize
from hgtrain.tools.repeatability.score import pair_repeatability
from hgtrain.weights.export import atomic_output

__all__ = ["OUTPUTS", "build_parser", "main", "score_detector", "write_outputs"]

OUTPUTS = ("repeatability.json", "repeatability.md", "repeatability.png")
"""The files written into ``--output``."""


def build_parser() -> ToolParser:
    """The command line of ``hgtrain repeatability``."""
    parser = ToolParser(
        prog="hgtrain repeatability",
        description="Detector repeatability on scikit-image's photographs under seeded "
        "homographies (viewpoint) and photometric changes (illumination), as SuperPoint reports "
        "it on HPatches: the trained network against OpenCV's Harris, Shi-Tomasi and FAST.",
    )
    parser.add_argument(
        "--ckpt_path",
        type=str | None,
        default=None,
        help="hgtrain training checkpoint (.ckpt) whose network is the 'network' detector",
    )
    parser.add_argument(
        "--detectors",
        type=str,
        nargs="+",
        default=list(DETECTORS),
        help=f"the detectors to score, of {', '.join(DETECTORS)}; {', '.join(CLASSICAL)} need "
        'OpenCV (pip install "hgtrain[classical]")',
    )
    parser.add_argument(
        "--photos",
        type=str,
        nargs="+",
        default=list(PHOTOS),
        help=f"the scikit-image photographs to use, of {', '.join(PHOTOS)} (default: all)",
    )
    parser.add_argument(
        "--pairs", type=int, default=4, help="pairs of each kind of change per photograph"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the changes")
    parser.add_argument(
        "--size",
        type=int,
        default=256,
        help="side in px of the square the photographs are cropped and resized to; the "
        "network's hourglass must accept it",
    )
    parser.add_argument(
        "--points", type=int, default=300, help="N: the strongest points kept per image"
    )
    parser.add_argument(
        "--epsilon",
        type=float,
        default=3.0,
        help="px: a point is repeated within this distance of one of the other image's points",
    )
    parser.add_argument(
        "--border",
        type=int,
        default=4,
        help="px: points this close to an image's edges are dropped, and projections this close "
        "to the other image's edges count as not visible",
    )
    parser.add_argument(
        "--nms_radius",
        type=int,
        default=4,
        help="px: a point within this distance (in x and y) of a stronger one is dropped, for "
        "every detector alike",
    )
    parser.add_argument(
        "--output",
        type=str,
        default="repeatability",
        help="folder for repeatability.json, repeatability.md (the table) and repeatability.png",
    )
    parser.add_argument(
        "--overwrite", type=bool, default=False, help="true: replace existing output files"
    )
    return parser


def score_detector(
    detector: Detector, pairs: Sequence[Pair], count: int, radius: int, border: int, epsilon: float
) -> list[dict[str, Any]]:
    """Per pair, the counts and repeatability of ``detector``'s ``count`` best points; each image
    A (shared by the pairs of a photograph) is detected once."""
    images = {id(p.image_a): p.image_a for p in pairs}
    images.update({id(p.image_b): p.image_b for p in pairs})
    found = dict(zip(images, detector(list(images.values())), strict=True))
    scores = []
    for pair in pairs:
        shape_a, shape_b = pair.image_a.shape[:2], pair.image_b.shape[:2]
        points_a = best_points(found[id(pair.image_a)], shape_a, count, radius, border)
        points_b = best_points(found[id(pair.image_b)], shape_b, count, radius, border)
        score = pair_repeatability(
            points_a, points_b, pair.homography, shape_a, shape_b, epsilon, border
        )
        scores.append(score.to_dict())
    return scores


def main(args: Sequence[str] | None = None) -> dict[str, Any]:
    """Entry point of ``hgtrain repeatability``; returns what it wrote to the JSON file."""
    parser = build_parser()
    options = parser.parse_args(args)
    parser.check_at_least(options, pairs=1, size=16, points=1, border=0, nms_radius=0)
    if options.epsilon <= 0:
        parser.error(f"--epsilon={options.epsilon}: must be > 0")
    for name, known in (("detectors", DETECTORS), ("photos", PHOTOS)):
        for value in options[name]:
            if value not in known:
                parser.error(f"--{name}: {value!r} is not one of {', '.join(known)}")
    detectors = list(dict.fromkeys(options.detectors))
    if "network" in detectors and options.ckpt_path is None:
        parser.error(
            "--ckpt_path: needed for the network detector (or leave it out of --detectors)"
        )
    output = Path(options.output)
    for name in OUTPUTS:
        if (output / name).exists() and not options.overwrite:
            parser.error(f"--output: {output / name} exists; pass --overwrite true to replace it")
    try:
        # OpenCV first, so that a missing extra stops the command before any work
        run: dict[str, Detector] = {
            name: classical_detector(name) for name in detectors if name in CLASSICAL
        }
        if "network" in detectors:
            network = NetworkDetector(options.ckpt_path)
            network.check_size(options.size)
            run["network"] = network
        photos = list(dict.fromkeys(options.photos))
        pairs = make_pairs(photos, options.size, options.pairs, options.seed)
    except (ImportError, OSError, ValueError) as err:
        raise SystemExit(f"hgtrain repeatability: {err}") from err
    print(
        f"hgtrain repeatability: {len(pairs)} pairs of {len(photos)} photographs at "
        f"{options.size} px, N={options.points}, epsilon={options.epsilon:g} px",
        flush=True,
    )
    per_detector = {}
    for name in detectors:
        start = time.perf_counter()
        per_detector[name] = score_detector(
            run[name], pairs, options.points, options.nms_radius, options.border, options.epsilon
        )
        print(f"  {name}: {time.perf_counter() - start:.1f} s", flush=True)
    checkpoint = None if options.ckpt_path is None else str(Path(options.ckpt_path).resolve())
    results = {
        "settings": {
            "ckpt_path": checkpoint,
            **{
                key: options[key]
                for key in ("size", "points", "epsilon", "border", "nms_radius", "pairs", "seed")
            },
            "photos": photos,
            "detectors": detectors,
            "hgtrain_version": __version__,
        },
        "pairs": [
            {**pair.describe(), "scores": {name: per_detector[name][i] for name in detectors}}
            for i, pair in enumerate(pairs)
        ],
    }
    results["summary"] = summarize(results["pairs"], detectors)
    table = markdown_table(results["summary"])
    write_outputs(results, table, output, options.overwrite)
    print(table, end="")
    print(f"hgtrain repeatability: wrote {', '.join(str(output / name) for name in OUTPUTS)}")
    return results


def write_outputs(results: dict[str, Any], table: str, output: Path, overwrite: bool) -> None:
    """The JSON, the table and the plot into ``output``, each atomically."""
    settings = results["settings"]
    title = (
        f"repeatability: {len(settings['photos'])} photos x {settings['pairs']} pairs per change, "
        f"{settings['size']} px, N={settings['points']}, epsilon={settings['epsilon']:g} px"
    )
    with atomic_output(output / "repeatability.json", overwrite) as temporary:
        temporary.write_text(json.dumps(results, indent=1) + "\n")
    with atomic_output(output / "repeatability.md", overwrite) as temporary:
        temporary.write_text(table)
    with atomic_output(output / "repeatability.png", overwrite) as temporary:
        bar_chart(results["summary"], title).save(temporary, format="PNG")
