"""hgtrain's training step against the same step on the plain reference backbone, interleaved.

    python -m tests.reference.compare --backbone cornernet --input_size 255 --batch_size 2

Both modules start from the same weights (the reference gets a copy of hgtrain's backbone state and
the same heads) and take the same optimizer steps on the same synthetic batch, so their losses
must stay identical step after step; the timed steps alternate (ABBA order) so that load from
other processes on a shared machine hits both alike. Reports each side's step-time spread, the
ratio of the medians, and the spread of the per-round ratios (reference time / hgtrain time: 1 or
more means hgtrain is at least as fast). Memory is not compared here: both models live in one process.

Options as in ``hgtrain benchmark`` (``--config FILE`` reads them from YAML). Run it from the
repository root (the reference is test code, not part of the installed package).
"""

from __future__ import annotations

import copy
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hgtrain.cli.arguments import OptionError, ToolParser
from hgtrain.models import BackboneOutput, HourglassConfig, list_backbones
from hgtrain.tools.benchmark.measure import compare as time_ratios
from hgtrain.tools.benchmark.measure import interleave, machine_info, spread, throughput
from hgtrain.tools.benchmark.report import versus_summary
from hgtrain.tools.benchmark.training_steps import BenchmarkConfig, build_module, prepare
from hgtrain.training.module import HourglassKeypointModule
from tests.reference import cornernet_lite


class ReferenceBackbone(nn.Module):
    """The reference network behind hgtrain's backbone interface (returns a ``BackboneOutput``)."""

    def __init__(self, config: HourglassConfig) -> None:
        super().__init__()
        self.config = config
        self.net = cornernet_lite.from_config(config)

    def forward(self, x: torch.Tensor) -> BackboneOutput:
        out = self.net(x)
        features, mergs = out if self.config.return_mergs else (out, [])
        return BackboneOutput(features, mergs)


def twin_modules(
    config: BenchmarkConfig,
) -> tuple[HourglassKeypointModule, HourglassKeypointModule]:
    """hgtrain's module, and a copy whose backbone is the reference with the same weights."""
    torch.manual_seed(config.seed)
    ours = build_module(config)
    reference = copy.deepcopy(ours)
    backbone = ReferenceBackbone(ours.backbone.config)
    backbone.net.load_state_dict(ours.backbone.state_dict(), strict=True)
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    reference.model.backbone = backbone.to(device=config.device, memory_format=memory_format)
    return ours, reference.train()


def compare(config: BenchmarkConfig) -> dict[str, Any]:
    """Warm both up, then time ``config.steps`` rounds of one step each, alternating the order."""
    modules = dict(zip(("hgtrain", "reference"), twin_modules(config), strict=True))
    prepared = {name: prepare(config, module) for name, module in modules.items()}
    calls = {name: (lambda s=step, b=batch: s(b)) for name, (step, batch) in prepared.items()}
    times, results, _ = interleave(calls, config.steps, config.warmup, config.device)
    spreads = {name: spread(t) for name, t in times.items()}
    losses = {name: [loss.item() for loss in values] for name, values in results.items()}
    return {
        "config": asdict(config),
        "machine": machine_info(config.device),
        "step_time_s": spreads,
        "images_per_s": {name: throughput(s, config.batch_size) for name, s in spreads.items()},
        **time_ratios(times["hgtrain"], times["reference"]),
        "losses": losses,
        "identical_losses": losses["hgtrain"] == losses["reference"],
    }


def main(args: list[str] | None = None) -> dict[str, Any]:
    """Command line: compare, print a line, and write ``--json`` if given."""
    parser = ToolParser(
        prog="python -m tests.reference.compare", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--backbone", default="squeeze", choices=list_backbones())
    parser.add_argument("--input_size", type=int | None, default=None)
    parser.add_argument("--batch_size", type=int, default=2)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--steps", type=int, default=6, help="timed rounds (one step each side)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--channels_last", type=bool, default=False, help="true: NHWC")
    parser.add_argument("--precision", default="32", choices=["32", "bf16"])
    parser.add_argument("--json", type=Path | None, default=None)
    options = parser.parse_args(args).as_dict()
    json_path = options.pop("json")
    options.pop("config")
    try:
        config = BenchmarkConfig(**options)
    except OptionError as error:
        parser.error(f"--{error}")
    result = compare(config)
    print(f"{versus_summary(result)}; identical losses: {result['identical_losses']}")
    if json_path is not None:
        json_path.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
