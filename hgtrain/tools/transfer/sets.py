"""``hgtrain transfer-data``: write a downstream task's train and test sets as COCO-keypoints
folders (:mod:`hgtrain.data.generator.downstream` draws the images).

``ROOT/TASK/train`` and ``ROOT/TASK/test`` are ordinary keypoint folders: train on them with
``--data.train_dir`` like on any data of your own. They are written atomically with a manifest
(:mod:`hgtrain.data.loading.storage`), reused while intact and written with the same settings,
and written again when damaged or written with other settings. A folder there that hgtrain did
not write (it has no manifest) is never replaced: that is an error naming it.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from hgtrain.cli.arguments import ToolParser
from hgtrain.data.generator.downstream import DOWNSTREAM_TASKS, DownstreamTask, render_task_image
from hgtrain.data.generator.photos import photos_available
from hgtrain.data.loading.coco_format import write_keypoint_set
from hgtrain.data.loading.storage import MANIFEST, find_problem, write_atomically
from hgtrain.data.sample import Sample

__all__ = [
    "DOWNSTREAM_VERSION",
    "TaskSets",
    "build_parser",
    "main",
    "prepare_for_command",
    "prepare_task_sets",
]

DOWNSTREAM_VERSION = 3
"""Part of the stored settings: bump it whenever the downstream renderer's output changes."""
SPLITS = {"train": 0, "test": 1}
"""Each split's stream of image seeds: ``[seed, stream, index]``."""


class TaskSets(NamedTuple):
    """The folders of one task's sets."""

    train: Path
    test: Path


def split_settings(
    task: DownstreamTask, split: str, size: int, image_size: int, seed: int
) -> dict[str, Any]:
    """What a set holds, as stored in its manifest."""
    return {
        "downstream_version": DOWNSTREAM_VERSION,
        "task": task.settings(),
        "noise": dataclasses.asdict(task.noise),
        "split": split,
        "size": size,
        "image_size": image_size,
        "seed": seed,
    }


def render_split(
    task: DownstreamTask, split: str, size: int, image_size: int, seed: int
) -> Iterator[Sample]:
    """The ``size`` images of ``split``, each drawn from its own seed."""
    for index in range(size):
        rng = np.random.default_rng([seed, SPLITS[split], index])
        yield render_task_image(task, rng, image_size, index)


def prepare_task_sets(
    task: str,
    root: str | Path,
    train_size: int = 1024,
    test_size: int = 256,
    image_size: int = 128,
    seed: int = 0,
    progress: bool = False,
) -> TaskSets:
    """Write ``root/task/train`` and ``root/task/test`` unless intact identical ones exist.

    Raises:
        ValueError: an unknown task, a task whose backgrounds need a missing package, or a
            folder in the way that hgtrain did not write.
    """
    if task not in DOWNSTREAM_TASKS:
        raise ValueError(f"unknown task {task!r}; choose from {', '.join(DOWNSTREAM_TASKS)}")
    spec = DOWNSTREAM_TASKS[task]
    if "photo" in spec.backgrounds and not photos_available():
        raise ValueError(
            f"task {task!r} draws photographs, which need scikit-image: "
            'pip install "hgtrain[photos]" (or pip install scikit-image)'
        )
    folders = {}
    for split, size in (("train", train_size), ("test", test_size)):
        path = Path(root) / task / split
        settings = split_settings(spec, split, size, image_size, seed)
        problem = find_problem(path, settings)
        folders[split] = path
        if problem is None:
            if progress:
                print(f"hgtrain: using the {task} {split} set in {path}", file=sys.stderr)
            continue
        if path.exists() and not (path / MANIFEST).exists():
            raise ValueError(
                f"{path} exists but was not written by hgtrain (it has no {MANIFEST}); move it "
                "away or choose another --root"
            )
        if progress:
            again = f" ({path} {problem})" if path.exists() else ""
            print(
                f"hgtrain: writing the {task} {split} set ({size} images, {image_size} px) to "
                f"{path}{again}",
                file=sys.stderr,
            )
        samples = render_split(spec, split, size, image_size, seed)
        info = {"downstream": settings, "summary": spec.summary}
        write_atomically(
            path,
            settings,
            lambda folder, samples=samples, info=info: write_keypoint_set(
                folder, samples, spec.class_names, info=info
            ),
        )
    return TaskSets(folders["train"], folders["test"])


def build_parser() -> ToolParser:
    """The options of ``hgtrain transfer-data``."""
    tasks = "; ".join(f"{name}: {task.summary}" for name, task in DOWNSTREAM_TASKS.items())
    parser = ToolParser(
        prog="hgtrain transfer-data",
        description="Write the train and test sets of downstream tasks that pretraining never "
        f"saw, as COCO-keypoints folders ROOT/TASK/train and ROOT/TASK/test. Tasks: {tasks}.",
    )
    parser.add_argument(
        "--tasks", type=list[str], default=list(DOWNSTREAM_TASKS), help="tasks to write"
    )
    parser.add_argument("--root", default="data/transfer", help="folder of the tasks' sets")
    parser.add_argument("--train_size", type=int, default=1024, help="training images per task")
    parser.add_argument("--test_size", type=int, default=256, help="test images per task")
    parser.add_argument("--image_size", type=int, default=128, help="image side in pixels")
    parser.add_argument("--seed", type=int, default=0, help="seed of the images")
    return parser


def prepare_for_command(
    parser: ToolParser,
    tasks: Sequence[str],
    root: str | Path,
    train_size: int,
    test_size: int,
    image_size: int,
    seed: int,
) -> dict[str, TaskSets]:
    """:func:`prepare_task_sets` of each task, with progress; a problem ends the command with
    ``parser``'s one-line error."""
    folders = {}
    for task in tasks:
        try:
            folders[task] = prepare_task_sets(
                task, root, train_size, test_size, image_size, seed, progress=True
            )
        except ValueError as error:
            parser.error(str(error))
    return folders


def main(args: Sequence[str] | None = None) -> None:
    """Entry point of ``hgtrain transfer-data``."""
    parser = build_parser()
    options = parser.parse_args(args)
    parser.check_at_least(options, train_size=1, test_size=1, image_size=16)
    folders = prepare_for_command(
        parser,
        options.tasks,
        options.root,
        options.train_size,
        options.test_size,
        options.image_size,
        options.seed,
    )
    for task, sets in folders.items():
        print(f"{task}: {sets.train} and {sets.test}")
