"""A picture of what the model is taught: samples with their keypoints and target heatmaps.

Each sample gives two tiles: the image with its keypoints drawn in their class colours
(``torchvision.utils.draw_keypoints``) and the target heatmaps, coloured the same way over a dimmed
copy of the image. The heatmaps are encoded as training encodes them
(:func:`hgtrain.task.targets.encode_targets` on the model input, at the model's stride, one square
per heatmap cell); hatched cells are ignore regions (keypoints of objects that training does not
penalise). Images under 256 px are enlarged (nearest) for display only. A legend names the classes
and the heatmap resolution.

Data: without ``--data_dir``, the synthetic training stream (``--clean true``: without photometric
noise) of the scene preset ``--scene`` (``wide``, ``classic``, or ``unseen``: the held-out test
scene), optionally with every image on the background family ``--background`` (``smooth``,
``noise``, ``stripes``, ``marble``, ``photo``); several families give one captioned row of
``--count`` samples each. With ``--data_dir FOLDER``, a COCO-keypoints
folder (:mod:`hgtrain.data.loading.coco_format`; class names from the folder, as in the
DataModule), letterboxed to ``--image_size`` as evaluation does, or with ``--augmented true``
through the DataModule's training pipeline for ``train_dir``: the options ``--hflip``,
``--vflip``, ``--scale``, ``--crop_scales``, ``--crop_border``,
``--crop_around_objects``, ``--min_object_size``, ``--min_visible``, ``--flip_pairs`` and
``--image_roots`` are the DataModule's (same
names and defaults; copy your ``data:`` values), ``--seed`` draws the augmentation. ``--first N``
starts at sample ``N`` (page through a folder with ``--first 0``, ``6``, ``12``...); each folder
sample is captioned with its index and file.

Targets: the stride is the ``--backbone``'s (``cornernet`` and ``saccade``: 4, ``squeeze``: 8);
``--stride`` overrides it, e.g. for a custom backbone (``2 ** (1 + stem_depth)``: 4 for
``quickstart.yaml``). ``--gaussian_iou``, ``--sigma`` and ``--min_radius`` are the model's options,
with its defaults. Set ``--image_size`` to your ``data.image_size``.

Run ``hgtrain data-preview --output docs/images/data_preview.png``, or for own data
``hgtrain data-preview --data_dir my_set/train --image_size 511 --backbone squeeze --augmented true
--output preview.png`` (``python -m hgtrain.tools.data_preview`` works too; ``--config FILE`` reads the
options from YAML).
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from jsonargparse import Namespace
from PIL import Image, ImageDraw
from torch.utils.data import Dataset
from torchvision.utils import draw_keypoints, make_grid

from hgtrain.cli.arguments import ToolParser
from hgtrain.data.generator.backgrounds import BACKGROUNDS
from hgtrain.data.generator.scene import SCENE_PRESETS, SceneConfig, scene_preset, unseen_scene
from hgtrain.data.loading.coco_format import DatasetFormatError
from hgtrain.data.loading.datamodule import KeypointDataModule
from hgtrain.data.loading.folder import KeypointFolder
from hgtrain.data.loading.transforms import ResizePad
from hgtrain.errors import ConfigError
from hgtrain.models.registry import get_config, list_backbones
from hgtrain.task.targets import KeypointTargets, encode_targets

__all__ = ["TargetEncoding", "main", "render_preview"]

PALETTE = [
    (255, 60, 60),
    (60, 140, 255),
    (255, 215, 0),
    (0, 220, 120),
    (220, 80, 255),
    (255, 140, 0),
    (0, 200, 230),
    (255, 120, 190),
    (160, 220, 40),
    (150, 110, 255),
]
DISPLAY_SIDE = 256  # smaller images are enlarged (nearest) to about this side
AUGMENTATION = {  # the DataModule's training-pipeline options: type, nargs, help
    "hflip": (float, None, "probability of a horizontal flip"),
    "flip_pairs": (list[tuple[str, str]], None, "class names a horizontal flip swaps"),
    "vflip": (float, None, "probability of a vertical flip"),
    "scale": (float, 2, "random rescale range before a random crop"),
    "crop_scales": (float | None, "+", "CornerNet's window scales instead of --scale"),
    "crop_border": (int, None, "smallest distance of the window centre from the border"),
    "crop_around_objects": (bool, None, "true: CornerNet-Saccade's crops (needs --crop_scales)"),
    "min_object_size": (float, None, "objects under this longest side (px) are ignored"),
    "min_visible": (float, None, "objects with at most this share left are ignored"),
}


@dataclass(frozen=True)
class TargetEncoding:
    """How training encodes the targets: the model's stride and Gaussian options (defaults as
    :class:`hgtrain.training.module.HourglassKeypointModule`'s; stride 4 as CornerNet and Saccade)."""

    stride: int = 4
    gaussian_iou: float | None = 0.3
    sigma: float | None = None
    min_radius: int = 0

    def encode(self, image: torch.Tensor, target: dict, num_classes: int) -> KeypointTargets:
        """The targets of one ``(image, target)`` sample: heatmaps of ``ceil(side / stride)``
        cells for the image's height and width, as the model's heads output them."""
        height, width = image.shape[-2:]
        output = (math.ceil(height / self.stride), math.ceil(width / self.stride))
        return encode_targets(
            [target],
            num_classes,
            (height, width),
            output,
            gaussian_iou=self.gaussian_iou,
            sigma=self.sigma,
            min_radius=self.min_radius,
        )


def render_preview(
    source: KeypointDataModule | Dataset,
    path: str | Path,
    count: int = 6,
    columns: int = 3,
    class_names: Sequence[str] | None = None,
    first: int = 0,
    encoding: TargetEncoding | None = None,
) -> Path:
    """Save a grid of ``count`` samples (image + keypoints, target heatmaps) to the PNG ``path``.

    Args:
        source: a DataModule (its training stream is shown) or a dataset of ``(image, target)``.
        path: the PNG to write (folders are created).
        count: number of samples, from index ``first`` (fewer at the end of the source).
        columns: samples per grid row (each sample takes two tiles).
        class_names: names for the legend; default the source's ``class_names``.
        first: index of the first sample shown.
        encoding: stride and Gaussian options of the targets; default ``TargetEncoding()``.
    """
    if isinstance(source, KeypointDataModule):
        class_names = class_names or source.class_names
        source = source.make_train_dataset()
    class_names = list(class_names or source.class_names)
    encoding = encoding or TargetEncoding()
    if not 0 <= first < len(source):
        raise ValueError(f"first={first}: the source has samples 0 to {len(source) - 1}")
    tiles, cells, ignored = [], None, False
    for index in range(first, min(first + count, len(source))):
        image, target = source[index]
        targets = encoding.encode(image, target, len(class_names))
        cells = cells or tuple(targets.heatmap.shape[-2:])
        ignored = ignored or (targets.ignore is not None and bool(targets.ignore.any()))
        factor = max(1, DISPLAY_SIDE // max(image.shape[1:]))
        shown = _with_keypoints(image, target["keypoints"], target["labels"], factor)
        tiles += [
            _captioned(shown, _name(source, index)),
            _heatmap_tile(image, targets, factor * encoding.stride, factor),
        ]
    grid = make_grid(torch.stack(tiles), nrow=2 * columns, padding=6, pad_value=255)
    note = f"right: target heatmaps, stride {encoding.stride} ({cells[0]} x {cells[1]} cells)"
    note += ", hatched: ignored" if ignored else ""
    picture = _with_legend(Image.fromarray(grid.permute(1, 2, 0).numpy()), class_names, note)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    picture.save(path)
    return path


def _name(source: Dataset, index: int) -> str | None:
    """``#index file`` for a folder's sample (to find it in the set), the caption of a
    :class:`CaptionedSamples` sample, else nothing."""
    if isinstance(source, CaptionedSamples):
        return source.caption(index)
    if not isinstance(source, KeypointFolder):
        return None
    record = source.records[index]
    return f"#{index} {record.path.relative_to(source.directory)}"


def _with_keypoints(
    image: torch.Tensor, keypoints: torch.Tensor, labels: torch.Tensor, factor: int
) -> torch.Tensor:
    """The image enlarged ``factor`` times with its keypoints in their class colours."""
    image = image.repeat_interleave(factor, dim=1).repeat_interleave(factor, dim=2)
    radius = max(2, round(image.shape[-1] / 90))
    for label in labels.unique().tolist():
        points = keypoints[labels == label] * factor
        # draw_keypoints puts pixel centres on integers; ours are at +0.5
        image = draw_keypoints(
            image, (points - 0.5)[None], colors=PALETTE[label % len(PALETTE)], radius=radius
        )
    return image


def _captioned(tile: torch.Tensor, caption: str | None) -> torch.Tensor:
    """The tile with ``caption`` (if any) in white on black at its top left."""
    if caption is None:
        return tile
    picture = Image.fromarray(tile.permute(1, 2, 0).numpy())
    draw = ImageDraw.Draw(picture)
    draw.rectangle((0, 0, 8 + 6 * len(caption), 14), fill=(0, 0, 0))
    draw.text((4, 2), caption, fill=(255, 255, 255))
    return torch.from_numpy(np.asarray(picture).copy()).permute(2, 0, 1)


def _heatmap_tile(
    image: torch.Tensor, targets: KeypointTargets, cell: int, factor: int
) -> torch.Tensor:
    """The heatmaps, each class in its colour and each cell ``cell`` px wide, over a dimmed grey
    copy of the image enlarged ``factor`` times; ignored cells hatched."""
    height, width = (side * factor for side in image.shape[1:])

    def shown(maps: torch.Tensor) -> torch.Tensor:
        maps = maps.repeat_interleave(cell, dim=-2).repeat_interleave(cell, dim=-1)
        return maps[..., :height, :width]

    num_classes = targets.heatmap.shape[1]
    strongest, label = shown(targets.heatmap[0]).max(dim=0)
    colours = torch.tensor(
        [PALETTE[c % len(PALETTE)] for c in range(num_classes)], dtype=torch.float32
    )
    coloured = colours[label].permute(2, 0, 1) * strongest
    grey = image.float().mean(dim=0, keepdim=True) * 0.35
    grey = grey.repeat_interleave(factor, dim=1).repeat_interleave(factor, dim=2)
    tile = grey * (1 - strongest) + coloured
    if targets.ignore is not None:
        rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
        hatch = shown(targets.ignore[0]).any(dim=0) & ((rows + cols) % 6 < 2)
        tile = torch.where(hatch, torch.tensor(200.0), tile)
    return tile.clamp(0, 255).to(torch.uint8)


def _with_legend(picture: Image.Image, class_names: Sequence[str], note: str) -> Image.Image:
    """The picture under a legend: the classes in their colours (as many rows as needed), then
    ``note``."""
    items = [(name, PALETTE[i % len(PALETTE)]) for i, name in enumerate(class_names)]
    items.append((f"| left: image + keypoints, {note}", None))
    rows, x = [[]], 6
    for name, colour in items:
        width = 24 + 7 * len(name) if colour else 12 + 6 * len(name)
        if x + width > picture.width and rows[-1]:
            rows.append([])
            x = 6
        rows[-1].append((x, name, colour))
        x += width
    legend = Image.new("RGB", (picture.width, 18 * len(rows)), (255, 255, 255))
    draw = ImageDraw.Draw(legend)
    for row, entries in enumerate(rows):
        y = 18 * row
        for x, name, colour in entries:
            if colour is None:
                draw.text((x + 12, y + 3), name, fill=(90, 90, 90))
            else:
                draw.ellipse((x, y + 5, x + 8, y + 13), fill=colour)
                draw.text((x + 12, y + 3), name, fill=(0, 0, 0))
    combined = Image.new("RGB", (picture.width, picture.height + legend.height), (255, 255, 255))
    combined.paste(legend, (0, 0))
    combined.paste(picture, (0, legend.height))
    return combined


def _parser() -> ToolParser:
    parser = ToolParser(prog="hgtrain data-preview", description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=str, default="docs/images/data_preview.png")
    parser.add_argument(
        "--data_dir",
        type=str | None,
        default=None,
        help="COCO-keypoints folder (default: synthetic)",
    )
    parser.add_argument(
        "--image_roots",
        type=list[str],
        default=[],
        help="folders outside --data_dir that its images may be in",
    )
    parser.add_argument("--image_size", type=int, default=128, help="side of the model input")
    parser.add_argument(
        "--augmented",
        type=bool,
        default=False,
        help="true: --data_dir through the training pipeline (false: letterboxed, as evaluated)",
    )
    parser.add_argument("--first", type=int, default=0, help="index of the first sample shown")
    parser.add_argument("--count", type=int, default=6)
    parser.add_argument("--columns", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--clean", type=bool, default=False, help="true: without photometric noise")
    parser.add_argument(
        "--scene",
        type=str,
        default="wide",
        help=f"synthetic scene: a preset ({', '.join(SCENE_PRESETS)}) or unseen (held-out test)",
    )
    parser.add_argument(
        "--background",
        type=str | None,
        nargs="+",
        default=None,
        help=f"draw the synthetic images on these families ({', '.join(BACKGROUNDS)}); "
        "several: one row of --count samples each",
    )
    parser.add_argument(
        "--backbone",
        type=str,
        default="cornernet",
        help="registered backbone whose stride the heatmaps have (cornernet, saccade: 4; squeeze: 8)",
    )
    parser.add_argument(
        "--stride", type=int | None, default=None, help="heatmap stride instead of --backbone's"
    )
    encoding = TargetEncoding()
    parser.add_argument(
        "--gaussian_iou",
        type=float | None,
        default=encoding.gaussian_iou,
        help="the model's IoU of the Gaussian radius",
    )
    parser.add_argument(
        "--sigma",
        type=float | None,
        default=encoding.sigma,
        help="the model's fixed Gaussian sigma in heatmap cells (wins over --gaussian_iou)",
    )
    parser.add_argument(
        "--min_radius",
        type=int,
        default=encoding.min_radius,
        help="the model's smallest Gaussian radius in heatmap cells",
    )
    data_defaults = inspect.signature(KeypointDataModule).parameters
    for name, (kind, nargs, text) in AUGMENTATION.items():
        default = data_defaults[name].default
        default = list(default) if isinstance(default, tuple) else default
        parser.add_argument(f"--{name}", type=kind, nargs=nargs, default=default, help=text)
    return parser


def main(args: Sequence[str] | None = None) -> Path:
    """Command line: write the preview PNG of the synthetic training data or of a folder."""
    parser = _parser()
    options = parser.parse_args(args)
    parser.check_at_least(
        options, image_size=16, count=1, columns=1, first=0, stride=1, min_radius=0
    )
    encoding = _encoding(parser, options)
    try:
        dataset = _dataset(parser, options)
    except ConfigError as error:  # an augmentation option: data.NAME=VALUE: rule
        parser.error(f"--{str(error).removeprefix('data.')}")
    except ValueError as error:  # DatasetFormatError, or a folder without images
        parser.error(str(error))
    if options.first >= len(dataset):
        what = options.data_dir or "the synthetic stream"
        parser.error(
            f"--first={options.first}: {what} has {len(dataset)} samples, "
            f"so --first must be at most {len(dataset) - 1}"
        )
    count, columns, first = options.count, options.columns, options.first
    if isinstance(dataset, CaptionedSamples):  # one row per background family
        count, columns, first = len(dataset), options.count, 0
    try:
        path = render_preview(
            dataset, options.output, count, columns, first=first, encoding=encoding
        )
    except DatasetFormatError as error:  # an image that cannot be read
        parser.error(str(error))
    print(f"wrote {path}")
    return path


def _encoding(parser: ToolParser, options: Namespace) -> TargetEncoding:
    """The target encoding of the options: ``--stride``, else the ``--backbone``'s."""
    if options.backbone.lower() not in list_backbones():
        parser.error(f"--backbone={options.backbone}: must be one of {list_backbones()}")
    stride = options.stride or get_config(options.backbone).output_stride
    if options.gaussian_iou is None and options.sigma is None:
        parser.error("--gaussian_iou=None: must be in (0, 1), or null with a --sigma")
    if options.gaussian_iou is not None and not 0 < options.gaussian_iou < 1:
        parser.error(f"--gaussian_iou={options.gaussian_iou}: must be in (0, 1)")
    if options.sigma is not None and options.sigma <= 0:
        parser.error(f"--sigma={options.sigma}: must be > 0 (heatmap cells)")
    return TargetEncoding(stride, options.gaussian_iou, options.sigma, options.min_radius)


def _dataset(parser: ToolParser, options: Namespace) -> Dataset:
    """The samples to show: the synthetic training stream, or the folder letterboxed or through
    the training pipeline (``ValueError`` for a bad option value or a damaged folder)."""
    folder = options.data_dir
    if folder is None and options.augmented:
        parser.error("--augmented: needs --data_dir (the synthetic stream is always augmented)")
    if folder is not None and (options.clean or options.background or options.scene != "wide"):
        parser.error("--clean, --scene and --background apply to the synthetic data only")
    if folder is not None and not Path(folder).is_dir():
        parser.error(f"--data_dir={folder}: no such folder")
    families = options.background or [None]
    modules = {
        family: KeypointDataModule(  # also checks the augmentation options
            image_size=options.image_size,
            scene=_scene(parser, options.scene, family),
            test_sets=["noisy"],
            noise=not options.clean,
            seed=options.seed,
            num_workers=0,
            train_dir=folder,
            image_roots=options.image_roots,
            **{name: options[name] for name in AUGMENTATION},
        )
        for family in families
    }
    if len(modules) > 1:
        streams = {family: module.make_train_dataset() for family, module in modules.items()}
        return CaptionedSamples(streams, options.count, options.first)
    module = modules[families[0]]
    if folder is None or options.augmented:
        return module.make_train_dataset()
    return KeypointFolder(folder, ResizePad(options.image_size), image_roots=options.image_roots)


def _scene(parser: ToolParser, preset: str, background: str | None) -> SceneConfig:
    """The scene of ``--scene``, with only the family ``background`` if one is given."""
    if preset != "unseen" and preset not in SCENE_PRESETS:
        parser.error(f"--scene={preset}: must be one of {[*SCENE_PRESETS, 'unseen']}")
    if background is not None and background not in BACKGROUNDS:
        parser.error(f"--background={background}: must be one of {list(BACKGROUNDS)}")
    scene = unseen_scene(SceneConfig()) if preset == "unseen" else scene_preset(preset)
    if background is not None:
        try:
            scene = dataclasses.replace(scene, backgrounds={background: 1.0})
        except ValueError as error:  # the photo family without scikit-image
            parser.error(f"--background={background}: {error}")
    return scene


class CaptionedSamples(Dataset):
    """Samples ``first`` to ``first + per_row - 1`` of each of several datasets, in that order,
    each captioned with its dataset's name: one grid row per dataset."""

    def __init__(self, sources: dict[str, Dataset], per_row: int, first: int = 0) -> None:
        self.items = [
            (name, source, first + i) for name, source in sources.items() for i in range(per_row)
        ]
        self.class_names = next(iter(sources.values())).class_names

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        _, source, position = self.items[index]
        return source[position]

    def caption(self, index: int) -> str:
        """The name of the dataset that sample ``index`` comes from."""
        return self.items[index][0]


if __name__ == "__main__":
    main()
