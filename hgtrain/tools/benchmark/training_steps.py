"""Training mode: time full training steps of a backbone with its heads and loss.

A step is what one optimisation step of ``hgtrain fit`` costs without the data loader: the uint8
batch is normalised on the device, the targets are encoded, the focal and offset losses of every
stack are computed (``HourglassKeypointModule.shared_step``), then backward and an Adam step, on a
synthetic batch made once (:mod:`hgtrain.tools.benchmark.workload`).

Reported (:func:`benchmark`): step times after warm-up and images/s, the FLOPs of one step
(:func:`hgtrain.models.flops.training_flops`: forward and backward, no checkpoint recomputation)
and the achieved TFLOP/s, and peak memory (:mod:`hgtrain.tools.benchmark.measure`).
``state_memory_mib`` is what persists between steps (weights, buffers, Adam's moments), counted
exactly; ``step_memory_mib``, the rest of the peak, is what a step adds on top: activations,
gradients (freed by ``zero_grad(set_to_none=True)`` between steps) and workspace, the part that batch
size, checkpointing and precision change. :func:`versus` interleaves a configuration with itself
plus one option.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from hgtrain.cli.arguments import OptionError
from hgtrain.models.backbone import HourglassConfig
from hgtrain.models.checkpointing import CHECKPOINTING_MODES, ActivationCheckpointing
from hgtrain.models.flops import training_flops
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
    synthetic_batch,
    with_option_on,
)
from hgtrain.tools.data_benchmark import benchmark_size, worker_balance
from hgtrain.training.module import Batch, HourglassKeypointModule, onednn_corrupts_nhwc_backward

__all__ = [
    "TRAINING_SIZES",
    "VERSUS",
    "BenchmarkConfig",
    "TrainStep",
    "benchmark",
    "build_module",
    "build_optimizer",
    "data_throughput",
    "prepare",
    "state_bytes",
    "switched_on",
    "versus",
]

TRAINING_SIZES = {"cornernet": 511, "saccade": 255, "squeeze": 511}
"""Input side each variant is trained at in the original configs."""


@dataclass(frozen=True)
class BenchmarkConfig:
    """One training configuration to time. See ``hgtrain benchmark --help`` for each option."""

    backbone: str | HourglassConfig = "squeeze"
    input_size: int | None = None
    batch_size: int = 2
    device: str = "cpu"
    steps: int = 5
    warmup: int = 2
    channels_last: bool = False
    precision: Literal["32", "bf16"] = "32"
    compile: bool = False
    activation_checkpointing: ActivationCheckpointing = "none"
    fused_optimizer: bool = False
    cudnn_benchmark: bool = False
    corner_pool: bool = False
    num_classes: int = 3
    objects_per_image: int = 8
    seed: int = 0
    data_workers: int = 0

    def __post_init__(self) -> None:
        minimums = {"batch_size": 1, "steps": 1, "warmup": 0, "num_classes": 1, "data_workers": 0}
        check_common_options(self, TRAINING_SIZES, minimums)
        if self.activation_checkpointing not in CHECKPOINTING_MODES:
            raise OptionError(
                "activation_checkpointing",
                self.activation_checkpointing,
                f"must be one of {', '.join(CHECKPOINTING_MODES)}",
            )


def check_runnable(config: BenchmarkConfig, versus: str | None = None) -> None:
    """An :class:`OptionError` for a configuration (or its ``--versus`` side) that would train in
    float32 with channels_last where oneDNN corrupts memory
    (:func:`~hgtrain.training.module.onednn_corrupts_nhwc_backward`)."""
    sides = {"channels_last": config}
    if versus is not None:
        sides["versus"] = switched_on(config, versus)
    for option, side in sides.items():
        if (
            side.channels_last
            and side.device == "cpu"
            and side.precision == "32"
            and onednn_corrupts_nhwc_backward()
        ):
            raise OptionError(
                option,
                versus if option == "versus" else True,
                "channels_last in float32 training on this CPU "
                f"({torch.backends.cpu.get_cpu_capability()}, no AVX-512) trips oneDNN: its "
                "backward pass of stride-2 1x1 convolutions in NHWC corrupts memory; add "
                "--precision bf16, or leave channels_last off",
            )


def build_module(config: BenchmarkConfig, device: str | None = None) -> HourglassKeypointModule:
    """The LightningModule of ``hgtrain fit`` for this configuration, in train mode, on ``device``
    (default: the configuration's)."""
    module = HourglassKeypointModule(
        backbone=config.backbone,
        num_classes=config.num_classes,
        class_names=class_names(config.num_classes),
        input_size=config.input_size,
        corner_pool=config.corner_pool,
        activation_checkpointing=config.activation_checkpointing,
    )
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    return module.to(device=device or config.device, memory_format=memory_format).train()


def build_optimizer(module: torch.nn.Module, fused: bool) -> torch.optim.Optimizer:
    """The original optimizer, Adam with lr 2.5e-4; ``fused`` picks the single-kernel version."""
    return torch.optim.Adam(module.parameters(), lr=2.5e-4, fused=True if fused else None)


class TrainStep:
    """One optimisation step: zero grads, forward + loss (under autocast for bf16), backward, step."""

    def __init__(
        self,
        module: HourglassKeypointModule,
        optimizer: torch.optim.Optimizer,
        precision: str = "32",
    ) -> None:
        self.module = module
        self.optimizer = optimizer
        self.precision = precision
        self.device_type = next(module.parameters()).device.type

    def __call__(self, batch: Batch) -> Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        with autocast(self.precision, self.device_type):
            _, losses, _ = self.module.shared_step(batch)
        losses.total.backward()
        self.optimizer.step()
        return losses.total.detach()


def state_bytes(module: torch.nn.Module, optimizer: torch.optim.Optimizer) -> int:
    """Bytes that persist between steps: parameters, buffers and optimizer state."""
    tensors = [*module.parameters(), *module.buffers()]
    tensors += [
        v for state in optimizer.state.values() for v in state.values() if isinstance(v, Tensor)
    ]
    return tensor_bytes(tensors)


def data_throughput(
    input_size: int, workers: int, images_per_s: float, seconds: float = 2.0
) -> dict[str, Any]:
    """Samples/s of one DataLoader worker of the default training pipeline, against the model.

    Measured in this process with one thread, as a worker runs (``hgtrain.tools.data_benchmark``).
    ``workers_needed`` uses the CPU-time rate, what one dedicated core delivers; ``workers``
    workers give about ``workers`` times the per-worker rate while there are that many free cores.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        measured = benchmark_size(input_size, seconds=seconds, runs=3, encode=False)
    finally:
        torch.set_num_threads(threads)
    per_worker = measured["samples_per_s_cpu"]
    return {
        "samples_per_s_per_worker": measured["samples_per_s"],
        "samples_per_s_per_worker_cpu_time": per_worker,
        **worker_balance(per_worker, workers, images_per_s),
    }


def prepare(
    config: BenchmarkConfig, module: HourglassKeypointModule | None = None
) -> tuple[TrainStep, Batch]:
    """The step (module built from ``config`` unless given, Adam, compiled if asked) and its batch.

    Call it with the global seed set: two calls after the same seed build the same weights.
    """
    if module is None:
        module = build_module(config)
    optimizer = build_optimizer(module, config.fused_optimizer)
    if config.compile:
        module.compile()
    images, targets = synthetic_batch(
        config.batch_size,
        config.input_size,
        config.num_classes,
        config.objects_per_image,
        config.seed,
        config.device,
    )
    if config.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    return TrainStep(module, optimizer, config.precision), (images, targets)


def benchmark(config: BenchmarkConfig) -> dict[str, Any]:
    """Time ``config.steps`` training steps after ``config.warmup`` and return the results."""
    torch.backends.cudnn.benchmark = config.cudnn_benchmark
    memory = PeakMemory(config.device)
    torch.manual_seed(config.seed)
    step, batch = prepare(config)
    module, optimizer = step.module, step.optimizer

    def call() -> Tensor:
        return step(batch)

    warmup_times = [time_call(call, config.device)[0] for _ in range(config.warmup)]
    memory.restart()
    times, losses = [], []
    for _ in range(config.steps):
        seconds, loss = time_call(call, config.device)
        times.append(seconds)
        losses.append(loss.item())
    peak = memory.peak()
    state = state_bytes(module, optimizer)

    flops = training_flops(module.model.config, config.batch_size)
    step_time = spread(times)
    images_per_s = throughput(step_time, config.batch_size)
    result = {
        "config": asdict(config),
        "machine": machine_info(config.device),
        "parameters": sum(p.numel() for p in module.parameters()),
        "optimizer": "Adam (fused)" if config.fused_optimizer else "Adam (default implementation)",
        "warmup_step_s": warmup_times,
        "step_time_s": step_time,
        "images_per_s": images_per_s,
        "flops_per_step": flops,
        "tflops_per_s": flops / step_time["median"] / 1e12,
        "peak_memory_mib": peak / MIB,
        "state_memory_mib": state / MIB,
        "step_memory_mib": max(0, peak - state) / MIB,
        "memory_method": memory.method,
        "memory_reliable": memory.reliable,
        "losses": losses,
    }
    if config.data_workers:
        result["data"] = data_throughput(
            config.input_size, config.data_workers, images_per_s["median"]
        )
    return result


VERSUS: dict[str, dict[str, Any]] = {
    "channels_last": {"channels_last": True},
    "checkpoint_stacks": {"activation_checkpointing": "stacks"},
    "checkpoint_blocks": {"activation_checkpointing": "blocks"},
    "fused_optimizer": {"fused_optimizer": True},
    "compile": {"compile": True},
    "bf16": {"precision": "bf16"},
}
"""What each option ``--versus`` can turn on sets for the second side of an interleaved
comparison."""


def switched_on(config: BenchmarkConfig, option: str) -> BenchmarkConfig:
    """``config`` with ``option`` (one of ``VERSUS``) on; an ``OptionError`` if it is on already
    or cannot be."""
    return with_option_on(config, option, VERSUS, "training")


def versus(config: BenchmarkConfig, option: str) -> dict[str, Any]:
    """``config`` against the same configuration with ``option`` on, steps interleaved in one
    process, from the same weights; reports the time ratio and the peak-memory ratio.

    A side's peak is its persistent state (parameters, buffers, Adam's moments) plus the most a
    step adds above what is in use before it (activations, gradients, temporaries; measured per
    step, see :func:`~hgtrain.tools.benchmark.measure.interleave`), so the other side's state does not
    count.
    """
    other = switched_on(config, option)
    torch.backends.cudnn.benchmark = config.cudnn_benchmark
    prepared = {}
    for name, side in (("base", config), (option, other)):
        torch.manual_seed(config.seed)
        prepared[name] = prepare(side)
    calls = {name: (lambda s=step, b=batch: s(b)) for name, (step, batch) in prepared.items()}
    times, losses, added = interleave(
        calls, config.steps, config.warmup, config.device, memory=True
    )
    spreads = {name: spread(t) for name, t in times.items()}
    state = {name: state_bytes(s.module, s.optimizer) / MIB for name, (s, _) in prepared.items()}
    step_memory = {name: statistics.median(added[name]) / MIB for name in calls}
    peak = {name: state[name] + step_memory[name] for name in calls}
    return {
        "config": asdict(config),
        "versus": option,
        "machine": machine_info(config.device),
        "step_time_s": spreads,
        "images_per_s": {name: throughput(s, config.batch_size) for name, s in spreads.items()},
        **compare(times["base"], times[option]),
        "state_memory_mib": state,
        "step_memory_mib": step_memory,
        "peak_memory_mib": peak,
        "memory_ratio": peak[option] / peak["base"],
        "step_memory_ratio": step_memory[option] / step_memory["base"],
        "losses": {name: [loss.item() for loss in values] for name, values in losses.items()},
    }
