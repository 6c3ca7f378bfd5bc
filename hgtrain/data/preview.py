"""A picture of what the model is taught: samples with their keypoints and target heatmaps.

Each sample gives two tiles: the image with its keypoints drawn in their class colours
(``torchvision.utils.draw_keypoints``) and the CornerNet target heatmaps that
:func:`hgtrain.task.targets.encode_targets` makes of them, coloured the same way over a dimmed
copy of the image. A legend names the classes. Run
``python -m hgtrain.data.preview --output docs/images/data_preview.png`` (or
``hgtrain data-preview``; ``--config FILE`` reads the options from YAML).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image, ImageDraw
from torch.nn import functional as F
from torch.utils.data import Dataset
from torchvision.utils import draw_keypoints, make_grid

from hgtrain.arguments import ToolParser
from hgtrain.data.datamodule import KeypointDataModule

__all__ = ["main", "render_preview"]

PALETTE = [(255, 60, 60), (60, 140, 255), (255, 215, 0), (0, 220, 120), (220, 80, 255)]
STRIDE = 4


def render_preview(
    source: KeypointDataModule | Dataset,
    path: str | Path,
    count: int = 6,
    columns: int = 3,
    class_names: Sequence[str] | None = None,
    first: int = 0,
) -> Path:
    """Save a grid of ``count`` samples (image + keypoints, target heatmaps) to the PNG ``path``.

    Args:
        source: a DataModule (its training stream is shown) or a dataset of ``(image, target)``.
        path: the PNG to write (folders are created).
        count: number of samples, from index ``first``.
        columns: samples per grid row (each sample takes two tiles).
        class_names: names for the legend; default the source's ``class_names``.
    """
    if isinstance(source, KeypointDataModule):
        class_names = class_names or source.class_names
        source = source.make_train_dataset()
    class_names = list(class_names or source.class_names)
    tiles = []
    for index in range(first, first + count):
        image, target = _enlarged(*source[index])
        tiles += [
            _with_keypoints(image, target, len(class_names)),
            _heatmap_tile(image, target, len(class_names)),
        ]
    grid = make_grid(torch.stack(tiles), nrow=2 * columns, padding=6, pad_value=255)
    picture = _with_legend(Image.fromarray(grid.permute(1, 2, 0).numpy()), class_names)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    picture.save(path)
    return path


def _enlarged(image: torch.Tensor, target: dict) -> tuple[torch.Tensor, dict]:
    """Small images scaled up (nearest) to about 256 px, so that markers stay readable."""
    factor = max(1, 256 // max(image.shape[1:]))
    if factor == 1:
        return image, target
    image = image.repeat_interleave(factor, dim=1).repeat_interleave(factor, dim=2)
    scaled = {"keypoints": target["keypoints"] * factor, "sizes": target["sizes"] * factor}
    return image, {**target, **scaled, "boxes": target["boxes"] * factor}


def _with_keypoints(image: torch.Tensor, target: dict, num_classes: int) -> torch.Tensor:
    radius = max(2, round(image.shape[-1] / 90))
    for label in range(num_classes):
        points = target["keypoints"][target["labels"] == label]
        if len(points):
            # draw_keypoints puts pixel centres on integers; ours are at +0.5
            image = draw_keypoints(
                image, (points - 0.5)[None], colors=PALETTE[label % len(PALETTE)], radius=radius
            )
    return image


def _heatmap_tile(image: torch.Tensor, target: dict, num_classes: int) -> torch.Tensor:
    """The target heatmaps, each class in its colour, over a dimmed grey copy of the image."""
    from hgtrain.task.targets import encode_targets

    height, width = image.shape[1:]
    output = (math.ceil(height / STRIDE), math.ceil(width / STRIDE))
    heatmap = encode_targets([target], num_classes, (height, width), output).heatmap[0]
    heatmap = F.interpolate(heatmap[None], size=(height, width), mode="nearest")[0]
    colours = torch.tensor(
        [PALETTE[c % len(PALETTE)] for c in range(num_classes)], dtype=torch.float32
    )
    strongest, label = heatmap.max(dim=0)
    coloured = colours[label].permute(2, 0, 1) * strongest
    grey = image.float().mean(dim=0, keepdim=True) * 0.35
    return (grey * (1 - strongest) + coloured).clamp(0, 255).to(torch.uint8)


def _with_legend(picture: Image.Image, class_names: Sequence[str]) -> Image.Image:
    legend = Image.new("RGB", (picture.width, 18), (255, 255, 255))
    draw = ImageDraw.Draw(legend)
    x = 6
    for index, name in enumerate(class_names):
        draw.ellipse((x, 5, x + 8, 13), fill=PALETTE[index % len(PALETTE)])
        draw.text((x + 12, 3), name, fill=(0, 0, 0))
        x += 24 + 7 * len(name)
    draw.text((x + 12, 3), "| left: image + keypoints, right: target heatmaps", fill=(90, 90, 90))
    combined = Image.new("RGB", (picture.width, picture.height + legend.height), (255, 255, 255))
    combined.paste(legend, (0, 0))
    combined.paste(picture, (0, legend.height))
    return combined


def main(args: Sequence[str] | None = None) -> Path:
    """Command line: write the preview PNG of the default synthetic training data."""
    parser = ToolParser(prog="hgtrain data-preview", description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=str, default="docs/images/data_preview.png")
    parser.add_argument("--image_size", type=int, default=128)
    parser.add_argument("--count", type=int, default=6)
    parser.add_argument("--columns", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--clean", type=bool, default=False, help="true: without photometric noise")
    options = parser.parse_args(args)
    parser.check_at_least(options, image_size=16, count=1, columns=1)
    module = KeypointDataModule(
        image_size=options.image_size, noise=not options.clean, seed=options.seed, num_workers=0
    )
    path = render_preview(module, options.output, options.count, options.columns)
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
