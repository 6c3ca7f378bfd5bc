"""The ``hgtrain`` command: the training subcommands and the tools, behind one entry point.

``fit``, ``validate``, ``test`` and ``predict`` are Lightning's (:mod:`hgtrain.cli.lightning_cli`); the
tools (``export``, ``benchmark``, ``data-preview``, ``data-benchmark``, ``time-to-accuracy``,
``transfer-data``, ``transfer``, ``repeatability``) take the same flag style and
``--config``. This module imports nothing heavy, so ``hgtrain --version`` and ``hgtrain --help``
answer at once.
"""

from __future__ import annotations

import importlib
import sys

from hgtrain import __version__

TRAINING = {
    "fit": "train a model (and test it with test_after_fit)",
    "validate": "evaluate a checkpoint on the validation set",
    "test": "evaluate a checkpoint on the test sets",
    "predict": "decode keypoints with a checkpoint",
}
TOOLS = {
    "export": ("hgtrain.weights.export", "write a trained backbone to a file of its own"),
    "benchmark": (
        "hgtrain.tools.benchmark",
        "time training steps or inference of a network (images/s, latency, memory)",
    ),
    "data-preview": ("hgtrain.tools.data_preview", "a PNG grid of samples, keypoints and targets"),
    "data-benchmark": (
        "hgtrain.tools.data_benchmark",
        "samples/s of the synthetic data pipeline; workers per GPU the configs need",
    ),
    "time-to-accuracy": (
        "hgtrain.tools.time_to_accuracy",
        "run a training config over seeds: wall time to a target AP, test results",
    ),
    "transfer-data": (
        "hgtrain.tools.transfer.sets",
        "write the downstream tasks of the transfer benchmark as COCO-keypoints folders",
    ),
    "transfer": (
        "hgtrain.tools.transfer.experiment",
        "fine-tune a pretrained backbone, a fresh one and a frozen one on the downstream tasks",
    ),
    "repeatability": (
        "hgtrain.tools.repeatability",
        "detector repeatability on photographs under viewpoint and lighting changes, vs OpenCV",
    ),
}


def usage() -> str:
    """The top-level help: every subcommand with one line on what it does."""
    width = max(map(len, [*TRAINING, *TOOLS]))
    training = "\n".join(f"  {name:<{width}}  {text}" for name, text in TRAINING.items())
    tools = "\n".join(f"  {name:<{width}}  {text}" for name, (_, text) in TOOLS.items())
    return (
        f"usage: hgtrain COMMAND [--config FILE] [--option value ...]\n\n"
        f"hgtrain {__version__}: train the stacked-hourglass backbones of the CornerNet family.\n\n"
        f"training (Lightning's CLI; configs: cornernet.yaml, saccade.yaml, squeeze.yaml, "
        f"quickstart.yaml, ...):\n{training}\n\ntools:\n{tools}\n\n"
        "'hgtrain COMMAND --help' lists a command's options; 'hgtrain --version' prints the version."
    )


def main(args: list[str] | None = None) -> None:
    """Entry point of ``hgtrain``: a tool (``hgtrain export ...``) or a Lightning subcommand."""
    argv = sys.argv[1:] if args is None else list(args)
    if argv[:1] in (["--version"], ["-V"]):
        print(f"hgtrain {__version__}")
    elif argv[:1] in (["--help"], ["-h"]):
        print(usage())
    elif not argv:
        raise SystemExit(f"{usage()}\n\nhgtrain: error: a command is needed")
    elif argv[0] in TOOLS:
        importlib.import_module(TOOLS[argv[0]][0]).main(argv[1:])
    else:
        from hgtrain.cli.lightning_cli import build_cli

        build_cli(args)


if __name__ == "__main__":
    main()
