"""Generate the fixed synthetic val / test sets on disk, once per generator setting.

A set is reused only after it has been verified against its manifest
(:mod:`hgtrain.data.loading.storage`); a damaged one is written again, with a line that names the
folder and the first problem found.
Its images are rendered by DataLoader workers that end with the process that writes the set
(:func:`hgtrain.data.loading.workers.exit_with_parent`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from hgtrain.data.generator.photometric import PhotometricNoise
from hgtrain.data.generator.scene import SceneConfig
from hgtrain.data.loading.coco_format import write_keypoint_set
from hgtrain.data.loading.storage import find_problem, remove_stale, write_atomically
from hgtrain.data.loading.synthetic import SyntheticKeypoints
from hgtrain.data.loading.workers import exit_with_parent
from hgtrain.data.sample import CLASS_NAMES, Sample

__all__ = ["GENERATOR_VERSION", "prepare_synthetic_set", "synthetic_set_path"]

GENERATOR_VERSION = 4
"""Part of the stored settings: bump it whenever the renderer's output changes, so that sets
written by an older renderer are regenerated instead of reused."""


def _settings(
    split: str,
    size: int,
    image_size: int,
    seed: int,
    scene: SceneConfig,
    noise: PhotometricNoise | None,
) -> dict[str, Any]:
    return {
        "generator_version": GENERATOR_VERSION,
        "split": split,
        "size": size,
        "image_size": image_size,
        "seed": seed,
        "scene": dataclasses.asdict(scene),
        "noise": dataclasses.asdict(noise) if noise is not None else None,
    }


def synthetic_set_path(
    root: str | Path,
    split: str,
    size: int,
    image_size: int,
    seed: int,
    scene: SceneConfig,
    noise: PhotometricNoise | None,
    variant: str | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Folder ``root/synthetic/<split>-<variant>-<px>-<n>-<hash>`` and the settings it holds
    (``variant`` names the set in the folder and messages; default ``noisy`` or ``clean``)."""
    settings = _settings(split, size, image_size, seed, scene, noise)
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]
    variant = variant or ("noisy" if noise is not None else "clean")
    name = f"{split}-{variant}-{image_size}px-{size}-{digest}"
    return Path(root) / "synthetic" / name, settings


def prepare_synthetic_set(
    root: str | Path,
    split: str,
    size: int,
    image_size: int,
    seed: int = 0,
    scene: SceneConfig | None = None,
    noise: PhotometricNoise | None = None,
    num_workers: int = 0,
    progress: bool = False,
    variant: str | None = None,
) -> Path:
    """Write the set (``size`` images of ``split``) unless an intact identical one exists; return
    its folder.

    Images are rendered by ``num_workers`` DataLoader processes; the folder appears atomically.
    An existing set that fails verification is written again, saying so on stderr:
    ``hgtrain: <folder> is damaged (images/000003.png is missing); writing it again``. With
    ``progress``, one line says where the set goes (or which set is reused) and a progress bar
    counts the images written. ``variant`` names the set (see :func:`synthetic_set_path`).
    """
    scene = scene if scene is not None else SceneConfig()
    path, settings = synthetic_set_path(root, split, size, image_size, seed, scene, noise, variant)
    variant = variant or ("noisy" if noise is not None else "clean")
    remove_stale(path.parent)
    problem = find_problem(path, settings)
    if problem is None:
        if progress:
            print(f"hgtrain: using the {variant} {split} set in {path}", file=sys.stderr)
        return path
    if path.exists():
        print(f"hgtrain: {path} {problem}; writing it again", file=sys.stderr)
    dataset = SyntheticKeypoints(split, size, image_size, seed, scene, noise)
    if progress:
        print(
            f"hgtrain: writing the {variant} {split} set ({size} images, {image_size} px) to "
            f"{path}; later runs with the same data settings reuse it",
            file=sys.stderr,
        )

    def write(folder: Path) -> None:
        samples = _render_all(dataset, num_workers)
        if progress:
            samples = tqdm(samples, total=size, desc=f"{split} ({variant})", unit="img")
        write_keypoint_set(folder, samples, CLASS_NAMES, info={"generator": settings})

    write_atomically(path, settings, write)
    return path


class _RawSamples(Dataset):
    """The raw :class:`Sample` objects of a synthetic dataset, for writing to disk."""

    def __init__(self, dataset: SyntheticKeypoints) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Sample:
        return self.dataset.sample(index)


def _keep(sample: Sample) -> Sample:
    return sample


def _render_all(dataset: SyntheticKeypoints, num_workers: int) -> Iterator[Sample]:
    loader = DataLoader(
        _RawSamples(dataset),
        batch_size=None,
        num_workers=num_workers,
        collate_fn=_keep,
        worker_init_fn=exit_with_parent,
    )
    yield from loader
