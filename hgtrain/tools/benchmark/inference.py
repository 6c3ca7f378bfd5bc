"""Inference mode: time the whole network as deployed, decoding included.

One call takes float32 RGB images in [0, 1] (the input of an exported program, ``hgtrain.weights.deploy``)
and returns decoded keypoints: :class:`~hgtrain.models.network.KeypointNet`'s normalisation,
backbone and last-stack heads, in eval mode under ``torch.inference_mode`` (and bf16 autocast with
``precision="bf16"``), then :meth:`KeypointNet.decode` (sigmoid, max-pool NMS, top-k, offsets) on
the raw outputs. The raw outputs come from one of three runtimes:

* eager: the module itself;
* ``compile``: ``torch.compile`` of it (static shapes: one graph per batch size, both compiled in
  the warm-up);
* ``export``: the ``torch.export`` program's ``.module()`` (:func:`hgtrain.weights.deploy.export_program`,
  dynamic batch), exported in float32 before timing; bf16 runs it under autocast.

Decoding stays eager in all three, as it does after an exported program.

Reported (:func:`benchmark`): latency, the time of one call at batch 1, and throughput, images/s of
calls at ``batch_size`` (median and quartiles of each), inference FLOPs per image
(:func:`hgtrain.models.flops.inference_flops`: convolutions and matrix products of the last-stack
forward; decoding, a few element-wise passes over the heatmaps, is timed but not counted) and the
achieved GFLOP/s, and peak memory
(:mod:`hgtrain.tools.benchmark.measure`): ``state_memory_mib`` is the weights and buffers,
``call_memory_mib`` the rest of the peak. :func:`versus` interleaves a configuration with itself
plus one option.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from hgtrain.cli.arguments import OptionError
from hgtrain.models.backbone import HourglassConfig
from hgtrain.models.flops import inference_flops
from hgtrain.models.network import KeypointNet, KeypointNetConfig, RawOutput
from hgtrain.tools.benchmark.measure import (
    MIB,
    PeakMemory,
    compare,
    interleave,
    machine_info,
    spread,
    tensor_bytes,
    throughput,
    time_call,
)
from hgtrain.tools.benchmark.workload import (
    autocast,
    check_common_options,
    class_names,
    synthetic_images,
    with_option_on,
)
from hgtrain.weights.deploy import export_program, exportable

__all__ = [
    "TEST_SIZES",
    "VERSUS",
    "InferenceConfig",
    "Predictor",
    "benchmark",
    "build_network",
    "prepare",
    "runtime",
    "switched_on",
    "versus",
]

TEST_SIZES = {"cornernet": 511, "saccade": 255, "squeeze": 511}
"""Square input side each variant is tested at in the originals. Saccade's inputs are 255 x 255
(the image downsized to 255 and 192 px, then up to 30 zoomed crops); CornerNet and Squeeze test on
the image itself padded to (h | 127) x (w | 127), which is 511 x 511 for an image up to 511 px a
side (a 640 x 480 COCO image gives 511 x 767, 1.5 times the pixels)."""

Predictions = list[dict[str, Tensor]]


@dataclass(frozen=True)
class InferenceConfig:
    """One inference configuration to time. See ``hgtrain benchmark --help`` for each option."""

    backbone: str | HourglassConfig = "squeeze"
    input_size: int | None = None
    batch_size: int = 4
    device: str = "cpu"
    steps: int = 10
    warmup: int = 2
    channels_last: bool = False
    precision: Literal["32", "bf16"] = "32"
    compile: bool = False
    export: bool = False
    cudnn_benchmark: bool = False
    corner_pool: bool = False
    num_classes: int = 3
    seed: int = 0

    def __post_init__(self) -> None:
        minimums = {"batch_size": 1, "steps": 1, "warmup": 0, "num_classes": 1}
        check_common_options(self, TEST_SIZES, minimums)
        if self.compile and self.export:
            raise OptionError(
                "export", True, "times the exported program as it is; turn compile or export off"
            )


def runtime(config: InferenceConfig | dict[str, Any]) -> str:
    """``eager``, ``compile`` or ``export``: what computes the raw outputs."""
    options = config if isinstance(config, dict) else vars(config)
    return "export" if options["export"] else "compile" if options["compile"] else "eager"


def build_network(config: InferenceConfig) -> KeypointNet:
    """The network for this configuration with random weights, in eval mode, on its device."""
    network = KeypointNet(
        KeypointNetConfig(
            backbone=config.backbone,
            num_classes=config.num_classes,
            class_names=class_names(config.num_classes),
            input_size=config.input_size,
            corner_pool=config.corner_pool,
        )
    )
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    return network.to(device=config.device, memory_format=memory_format).eval()


class Predictor:
    """One inference call: images -> raw outputs (by ``forward``, under bf16 autocast for
    ``precision="bf16"``) -> keypoints decoded by ``network``, all under ``torch.inference_mode``."""

    def __init__(
        self,
        network: KeypointNet,
        forward: Callable[[Tensor], tuple[Tensor, Tensor]],
        precision: str = "32",
    ) -> None:
        self.network = network
        self.forward = forward
        self.precision = precision
        self.device_type = next(network.parameters()).device.type

    def __call__(self, images: Tensor) -> Predictions:
        with torch.inference_mode():
            with autocast(self.precision, self.device_type):
                heatmaps, offsets = self.forward(images)
            return self.network.decode(RawOutput(heatmaps, offsets), tuple(images.shape[-2:]))


def prepare(config: InferenceConfig) -> tuple[Predictor, dict[int, Tensor], float]:
    """The call (network built from ``config``, compiled or exported if asked), its inputs by
    batch size (1 and ``batch_size``), and the seconds the export took (0 without).

    Call it with the global seed set: two calls after the same seed build the same weights.
    """
    network = build_network(config)
    forward: Callable[[Tensor], tuple[Tensor, Tensor]] = exportable(network)
    inputs = {
        n: synthetic_images(n, config.input_size, config.seed, config.device, config.channels_last)
        for n in sorted({1, config.batch_size})
    }
    export_s = 0.0
    if config.compile:
        forward = torch.compile(forward, dynamic=False)
    elif config.export:
        example = synthetic_images(2, config.input_size, config.seed, config.device)
        if config.channels_last:
            example = example.contiguous(memory_format=torch.channels_last)
        start = time.perf_counter()
        forward = export_program(forward, example).module()
        export_s = time.perf_counter() - start
    return Predictor(network, forward, config.precision), inputs, export_s


def benchmark(config: InferenceConfig) -> dict[str, Any]:
    """Time ``config.steps`` calls at batch 1 and at ``batch_size``, in turns (so that a slow patch
    of a shared machine hits both alike), after ``config.warmup`` untimed ones at each, and return
    the results."""
    torch.backends.cudnn.benchmark = config.cudnn_benchmark
    memory = PeakMemory(config.device, timed="calls")
    torch.manual_seed(config.seed)
    predictor, inputs, export_s = prepare(config)
    device, batch_size = config.device, config.batch_size

    calls = {n: lambda n=n: predictor(inputs[n]) for n in inputs}
    warmup = {
        n: [time_call(call, device)[0] for _ in range(config.warmup)] for n, call in calls.items()
    }
    memory.restart()
    times, outputs, _ = interleave(calls, config.steps, 0, device)
    predictions = outputs[batch_size][-1]
    peak = memory.peak()
    network = predictor.network
    state = tensor_bytes([*network.parameters(), *network.buffers()])
    method = memory.method
    if device == "cpu" and runtime(config) != "eager":
        method += f" (includes the {runtime(config)} tracing)"

    flops = inference_flops(network.config, 1)
    latency, batch_time = spread(times[1]), spread(times[batch_size])
    return {
        "mode": "inference",
        "config": asdict(config),
        "machine": machine_info(device),
        "parameters": sum(p.numel() for p in network.parameters()),
        "runtime": runtime(config),
        "export_s": export_s,
        "warmup_latency_s": warmup[1],
        "warmup_batch_s": warmup[batch_size] if batch_size > 1 else [],
        "latency_s": latency,
        "batch_time_s": batch_time,
        "images_per_s": throughput(batch_time, batch_size),
        "flops_per_image": flops,
        "latency_gflops_per_s": flops / latency["median"] / 1e9,
        "gflops_per_s": batch_size * flops / batch_time["median"] / 1e9,
        "keypoints_per_image": sum(len(p["keypoints"]) for p in predictions) / len(predictions),
        "peak_memory_mib": peak / MIB,
        "state_memory_mib": state / MIB,
        "call_memory_mib": max(0, peak - state) / MIB,
        "memory_method": method,
        "memory_reliable": memory.reliable,
    }


VERSUS: dict[str, dict[str, Any]] = {
    "channels_last": {"channels_last": True},
    "compile": {"compile": True},
    "export": {"export": True},
    "bf16": {"precision": "bf16"},
}
"""What each option ``--versus`` can turn on sets for the second side of an interleaved inference
comparison."""


def switched_on(config: InferenceConfig, option: str) -> InferenceConfig:
    """``config`` with ``option`` (one of ``VERSUS``) on; an ``OptionError`` if it is on already
    or cannot be."""
    return with_option_on(config, option, VERSUS, "inference")


def versus(config: InferenceConfig, option: str) -> dict[str, Any]:
    """``config`` against the same configuration with ``option`` on, from the same weights, calls
    interleaved in one process (so no memory figures): at batch 1 (latency) and, when
    ``batch_size`` is larger, at ``batch_size`` (throughput); reports both time ratios."""
    other = switched_on(config, option)
    torch.backends.cudnn.benchmark = config.cudnn_benchmark
    sizes = sorted({1, config.batch_size})
    calls: dict[tuple[str, int], Callable[[], Predictions]] = {}
    for name, side in (("base", config), (option, other)):
        torch.manual_seed(config.seed)
        predictor, inputs, _ = prepare(side)
        for n in sizes:
            calls[name, n] = lambda predictor=predictor, images=inputs[n]: predictor(images)
    times, _, _ = interleave(calls, config.steps, config.warmup, config.device)
    latency = {name: spread(times[name, 1]) for name in ("base", option)}
    batch_time = {name: spread(times[name, config.batch_size]) for name in ("base", option)}
    latency_ratio = compare(times["base", 1], times[option, 1])
    return {
        "mode": "inference",
        "config": asdict(config),
        "versus": option,
        "machine": machine_info(config.device),
        "latency_s": latency,
        "latency_ratio": latency_ratio["time_ratio"],
        "paired_latency_ratio": latency_ratio["paired_time_ratio"],
        "batch_time_s": batch_time,
        "images_per_s": {name: throughput(s, config.batch_size) for name, s in batch_time.items()},
        **compare(times["base", config.batch_size], times[option, config.batch_size]),
    }
