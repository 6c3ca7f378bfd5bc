"""hgtrain's training step against the same step on the plain reference backbone, interleaved.

    python -m tests.reference.compare --backbone cornernet --input-size 255 --batch-size 2

Both modules start from the same weights (the reference gets a copy of hgtrain's backbone state and
the same heads) and take the same optimizer steps on the same synthetic batch, so their losses
must stay identical step after step; the timed steps alternate (ABBA order) so that load from
other processes on a shared machine hits both alike. Reports each side's step-time spread, the
ratio of the medians, and the spread of the per-round ratios (reference time / hgtrain time: above
1 means hgtrain is faster). Memory is not compared here: both models live in one process.

Run it from the repository root (the reference is test code, not part of the installed package).
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hgtrain.benchmark import (
    BenchmarkConfig,
    TrainStep,
    build_module,
    build_optimizer,
    machine_info,
    spread,
    synthetic_batch,
    time_step,
)
from hgtrain.models import BackboneOutput, HourglassConfig
from hgtrain.module import HourglassKeypointModule
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
    reference.backbone = backbone.to(device=config.device, memory_format=memory_format)
    return ours, reference.train()


def compare(config: BenchmarkConfig) -> dict[str, Any]:
    """Warm both up, then time ``config.steps`` rounds of one step each, alternating the order."""
    modules = dict(zip(("hgtrain", "reference"), twin_modules(config), strict=True))
    steps = {
        name: TrainStep(module, build_optimizer(module, config.fused_optimizer), config.precision)
        for name, module in modules.items()
    }
    batch = synthetic_batch(
        config.batch_size,
        config.input_size,
        config.num_classes,
        config.objects_per_image,
        config.seed,
        config.device,
    )
    for _ in range(config.warmup):
        for step in steps.values():
            time_step(step, batch, config.device)
    times: dict[str, list[float]] = {name: [] for name in steps}
    losses: dict[str, list[float]] = {name: [] for name in steps}
    for round_index in range(config.steps):
        order = list(steps) if round_index % 2 == 0 else list(reversed(steps))
        for name in order:
            seconds, loss = time_step(steps[name], batch, config.device)
            times[name].append(seconds)
            losses[name].append(loss.item())
    ratios = [r / o for r, o in zip(times["reference"], times["hgtrain"], strict=True)]
    medians = {name: statistics.median(values) for name, values in times.items()}
    return {
        "config": asdict(config),
        "machine": machine_info(config.device),
        "step_time_s": {name: spread(values) for name, values in times.items()},
        "images_per_s": {name: config.batch_size / m for name, m in medians.items()},
        "median_ratio": medians["reference"] / medians["hgtrain"],
        "paired_ratio": spread(ratios),
        "losses": losses,
        "identical_losses": losses["hgtrain"] == losses["reference"],
    }


def main(args: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", default="squeeze")
    parser.add_argument("--input-size", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--steps", type=int, default=6, help="timed rounds (one step each side)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--precision", default="32", choices=["32", "bf16"])
    parser.add_argument("--json", type=Path, default=None)
    options = vars(parser.parse_args(args))
    json_path = options.pop("json")
    result = compare(BenchmarkConfig(**options))
    c, t = result["config"], result["step_time_s"]
    print(
        f"{c['backbone']} @{c['input_size']} x{c['batch_size']} {c['device']}: "
        f"hgtrain {t['hgtrain']['median']:.3f} s/step, reference {t['reference']['median']:.3f} "
        f"s/step, reference/hgtrain {result['median_ratio']:.3f} (paired rounds: median "
        f"{result['paired_ratio']['median']:.3f}, IQR {result['paired_ratio']['q1']:.3f}-"
        f"{result['paired_ratio']['q3']:.3f}); identical losses: {result['identical_losses']}"
    )
    if json_path is not None:
        json_path.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
