"""The command line of ``hgtrain benchmark`` (and ``python -m hgtrain.tools.benchmark``): options, one-line
errors, and the run of one configuration in either mode."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from hgtrain.cli.arguments import OptionError, ToolParser
from hgtrain.models.checkpointing import CHECKPOINTING_MODES
from hgtrain.models.registry import list_backbones
from hgtrain.tools.benchmark import inference, training_steps
from hgtrain.tools.benchmark.inference import InferenceConfig
from hgtrain.tools.benchmark.report import announce, format_table, summary, versus_summary
from hgtrain.tools.benchmark.training_steps import BenchmarkConfig

__all__ = ["MODES", "build_parser", "main", "make_config"]

MODES = ("training", "inference")
ONLY_IN: dict[str, dict[str, Any]] = {
    "training": {"activation_checkpointing": "none", "fused_optimizer": False, "data_workers": 0},
    "inference": {"export": False},
}
"""Options of one mode and their defaults, which they must keep in the other mode."""


def build_parser() -> ToolParser:
    """The command line of ``hgtrain benchmark``."""
    parser = ToolParser(
        prog="hgtrain benchmark",
        description="Time full training steps (forward, loss, backward, Adam) of an hourglass "
        "backbone with its heads on synthetic batches, or with --mode inference the whole network "
        "with decoding (batch-1 latency, batch-N throughput); report images/s, FLOP/s and peak "
        "memory.",
    )
    parser.add_argument(
        "--mode",
        default="training",
        choices=list(MODES),
        help="training: optimisation steps; inference: eval-mode calls that return keypoints",
    )
    parser.add_argument("--backbone", default="squeeze", choices=list_backbones())
    parser.add_argument(
        "--input_size",
        type=int | None,
        default=None,
        help="input side in pixels (default: the variant's training size, 511 / 255 / 511, or "
        "in inference mode its test size, the same numbers)",
    )
    parser.add_argument(
        "--batch_size",
        type=int,
        default=None,
        help="images per step (default 2), or per throughput call in inference mode (default 4; "
        "latency is timed at batch 1)",
    )
    parser.add_argument(
        "--device",
        default="cuda" if torch.cuda.is_available() else "cpu",
        choices=["cpu", "cuda"],
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="timed steps (default 5), or timed calls at each batch size in inference mode "
        "(default 10)",
    )
    parser.add_argument(
        "--warmup", type=int, default=None, help="untimed steps or calls first (default 2)"
    )
    parser.add_argument(
        "--channels_last", type=bool, default=False, help="true: NHWC weights and inputs"
    )
    parser.add_argument(
        "--precision",
        default="32",
        choices=["32", "bf16"],
        help='bf16: bf16-mixed autocast (in YAML, quote "32")',
    )
    parser.add_argument(
        "--compile", type=bool, default=False, help="true: torch.compile the model's forward"
    )
    parser.add_argument(
        "--export",
        type=bool,
        default=False,
        help="true: time the torch.export program of the network (hgtrain.weights.deploy); inference only",
    )
    parser.add_argument(
        "--activation_checkpointing",
        default="none",
        choices=list(CHECKPOINTING_MODES),
        help="recompute activations in the backward pass instead of keeping them, per hourglass "
        "stack or per block of the backbone: less memory, more time (training only)",
    )
    parser.add_argument(
        "--fused_optimizer", type=bool, default=False, help="true: Adam(fused=True) (training only)"
    )
    parser.add_argument(
        "--cudnn_benchmark", type=bool, default=False, help="true: torch.backends.cudnn.benchmark"
    )
    parser.add_argument(
        "--corner_pool",
        type=bool,
        default=False,
        help="true: CornerNet's corner pooling before the heads",
    )
    parser.add_argument("--num_classes", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--data_workers",
        type=int,
        default=0,
        help="also time one data-loader worker and compare N of them with the model (0: skip; "
        "training only)",
    )
    parser.add_argument(
        "--threads", type=int | None, default=None, help="torch.set_num_threads (CPU)"
    )
    parser.add_argument(
        "--versus",
        choices=list(dict.fromkeys([*training_steps.VERSUS, *inference.VERSUS])),
        default=None,
        help="time this configuration against itself with OPTION on, steps interleaved in one "
        "process (for noisy machines; reports the time ratio, no memory); in inference mode one "
        "of " + ", ".join(inference.VERSUS),
    )
    parser.add_argument(
        "--json", type=Path | None, default=None, help="write the result to this file"
    )
    parser.add_argument(
        "--table",
        type=Path,
        nargs="+",
        default=None,
        metavar="JSON",
        help="print Markdown tables of earlier --json results instead of running",
    )
    return parser


def make_config(options: dict[str, Any]) -> BenchmarkConfig | InferenceConfig:
    """The configuration the options (parsed, without the tool's own) ask for; an
    :class:`OptionError` for an option of the other mode that is not at its default."""
    options = dict(options)
    mode = options.pop("mode")
    for other, defaults in ONLY_IN.items():
        if other == mode:
            continue
        for name, default in defaults.items():
            value = options.pop(name)
            if value != default:
                raise OptionError(name, value, f"{other} mode only; not with --mode {mode}")
    options = {name: value for name, value in options.items() if value is not None}
    return InferenceConfig(**options) if mode == "inference" else BenchmarkConfig(**options)


def main(args: list[str] | None = None) -> dict[str, Any] | None:
    """Entry point of ``hgtrain benchmark``; returns the result (``None`` with ``--table``)."""
    parser = build_parser()
    namespace = parser.parse_args(args)
    parser.check_at_least(namespace, threads=1)
    options = namespace.as_dict()
    for name in ("config", "json", "threads", "table", "versus"):
        options.pop(name)
    if namespace.table is not None:
        print(format_table([json.loads(path.read_text()) for path in namespace.table]))
        return None
    try:
        config = make_config(options)
        if isinstance(config, BenchmarkConfig):
            training_steps.check_runnable(config, namespace.versus)
        line = announce(config, namespace.versus)
    except OptionError as error:
        parser.error(f"--{error}")
    if namespace.threads is not None:
        torch.set_num_threads(namespace.threads)
    print(line, flush=True)
    mode = inference if isinstance(config, InferenceConfig) else training_steps
    if namespace.versus is None:
        result = mode.benchmark(config)
        print(summary(result))
    else:
        result = mode.versus(config, namespace.versus)
        print(versus_summary(result))
    if namespace.json is not None:
        namespace.json.parent.mkdir(parents=True, exist_ok=True)
        namespace.json.write_text(json.dumps(result, indent=2) + "\n")
    return result
