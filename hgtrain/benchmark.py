"""``hgtrain benchmark``: time full training steps of a backbone with its heads and loss.

A step is what one optimisation step of ``hgtrain fit`` costs without the data loader: the uint8
batch is normalised on the device, the targets are encoded, the focal and offset losses of every
stack are computed (``HourglassKeypointModule.shared_step``), then backward and an Adam step. The
batch is synthetic (random pixels, random boxes and keypoints in the contract's batch format) and
made once, so that only the model is timed; the data pipeline is measured on its own
(``--data_workers N``) and reported next to it. Options take the flag style of the Lightning
subcommands (``--batch_size 8 --channels_last true``), and ``--config FILE`` reads any of them from
a YAML file; before timing, a line says which configuration runs.

Reported: step times after warm-up (median, quartiles, min, max) and images/s, the FLOPs of one
step (convolutions and matrix products of forward and backward, counted with
``torch.utils.flop_counter`` on the meta device, so they cost nothing and exclude checkpoint
recomputation) and the achieved TFLOP/s, and peak memory:

* CUDA: ``torch.cuda.max_memory_allocated`` over the timed steps (the whole training state plus
  the step's activations).
* CPU: the process's peak resident set size (``VmHWM``) minus its size before the model was
  built. ``main`` runs one configuration per process, so the peak is that configuration's; when
  ``benchmark`` is called in a process that was bigger before, the figure is flagged unreliable.

``state_memory_mib`` is what persists between steps (weights, buffers, Adam's moments), counted
exactly; ``step_memory_mib``, the rest of the peak, is what a step adds on top: activations,
gradients (freed by ``zero_grad(set_to_none=True)`` between steps) and workspace, the part that batch
size, checkpointing and precision change.

On a machine shared with other work, ``--versus OPTION`` times a configuration against itself with
one option on, both in one process with their steps interleaved, and reports the time ratio: the
fair way to measure an option's cost or gain when absolute times drift.
"""

from __future__ import annotations

import contextlib
import json
import math
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor
from torch.utils.flop_counter import FlopCounterMode

from hgtrain.arguments import OptionError, ToolParser
from hgtrain.data.benchmark import benchmark_size
from hgtrain.data.sample import CLASS_NAMES
from hgtrain.models.backbone import HourglassConfig
from hgtrain.models.registry import get_config, list_backbones
from hgtrain.module import Batch, HourglassKeypointModule

TRAINING_SIZES = {"cornernet": 511, "saccade": 255, "squeeze": 511}
"""Input side each variant is trained at in the original configs."""

MIB = 2**20


@dataclass(frozen=True)
class BenchmarkConfig:
    """One configuration to time. See ``hgtrain benchmark --help`` for each option."""

    backbone: str | HourglassConfig = "squeeze"
    input_size: int | None = None
    batch_size: int = 2
    device: str = "cpu"
    steps: int = 5
    warmup: int = 2
    channels_last: bool = False
    precision: Literal["32", "bf16"] = "32"
    compile: bool = False
    checkpoint_stacks: bool = False
    fused_optimizer: bool = False
    cudnn_benchmark: bool = False
    corner_pool: bool = False
    num_classes: int = 3
    objects_per_image: int = 8
    seed: int = 0
    data_workers: int = 0

    def __post_init__(self) -> None:
        variant = self.backbone
        if not isinstance(variant, HourglassConfig):
            variant = get_config(variant)
        if self.input_size is None:
            object.__setattr__(self, "input_size", TRAINING_SIZES.get(variant.name, 511))
        try:
            variant.check_input_size(self.input_size, self.input_size)
        except ValueError as error:
            raise OptionError("input_size", self.input_size, str(error)) from None
        minimums = {"batch_size": 1, "steps": 1, "warmup": 0, "num_classes": 1, "data_workers": 0}
        for name, minimum in minimums.items():
            if getattr(self, name) < minimum:
                raise OptionError(name, getattr(self, name), f"must be >= {minimum}")
        if self.precision not in ("32", "bf16"):
            raise OptionError("precision", self.precision, "must be '32' or 'bf16'")
        if self.device not in ("cpu", "cuda"):
            raise OptionError("device", self.device, "must be 'cpu' or 'cuda'")
        if self.device == "cuda" and not torch.cuda.is_available():
            raise OptionError("device", "cuda", "torch sees no CUDA device; use --device cpu")


def synthetic_batch(
    batch_size: int,
    input_size: int,
    num_classes: int = 3,
    objects_per_image: int = 8,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> Batch:
    """Random uint8 images and random boxes whose corners (classes 0, 1) and centres (class 2; all
    clamped to ``num_classes - 1``) are the keypoints, in the contract's batch format."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (batch_size, 3, input_size, input_size), generator=generator)
    targets = []
    for index in range(batch_size):
        sizes = input_size * (0.05 + 0.4 * torch.rand(objects_per_image, 2, generator=generator))
        corners = (input_size - sizes) * torch.rand(objects_per_image, 2, generator=generator)
        boxes = torch.cat([corners, corners + sizes], dim=1)
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2
        labels = torch.tensor([0, 1, 2]).clamp(max=num_classes - 1)
        targets.append(
            {
                "keypoints": torch.cat([boxes[:, :2], boxes[:, 2:], centres]).to(device),
                "labels": labels.repeat_interleave(objects_per_image).to(device),
                "sizes": sizes.repeat(3, 1).to(device),
                "boxes": boxes.to(device),
                "image_id": torch.tensor(index, device=device),
            }
        )
    return images.to(torch.uint8).to(device), targets


def build_module(config: BenchmarkConfig, device: str | None = None) -> HourglassKeypointModule:
    """The LightningModule of ``hgtrain fit`` for this configuration, in train mode, on ``device``
    (default: the configuration's)."""
    names = [*CLASS_NAMES, *(f"class_{c}" for c in range(len(CLASS_NAMES), config.num_classes))]
    module = HourglassKeypointModule(
        backbone=config.backbone,
        num_classes=config.num_classes,
        class_names=names[: config.num_classes],  # the synthetic set's, as hgtrain fit links them
        input_size=config.input_size,
        corner_pool=config.corner_pool,
        checkpoint_stacks=config.checkpoint_stacks,
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

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "bf16":
            return torch.autocast(self.device_type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def __call__(self, batch: Batch) -> Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast():
            _, losses, _ = self.module.shared_step(batch)
        losses.total.backward()
        self.optimizer.step()
        return losses.total.detach()


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_step(step: Callable[[Batch], Tensor], batch: Batch, device: str) -> tuple[float, Tensor]:
    """Wall-clock seconds of one step, the device's queue drained before and after."""
    synchronize(device)
    start = time.perf_counter()
    loss = step(batch)
    synchronize(device)
    return time.perf_counter() - start, loss


def count_flops(config: BenchmarkConfig) -> int:
    """FLOPs (2 x multiply-adds) of one training step's forward and backward at the batch size.

    Counted on the meta device, so nothing is computed or allocated. Only convolutions and matrix
    products count (the loss and the normalisation layers add well under 1 %); checkpoint
    recomputation is not counted, so TFLOP/s compare across options as model throughput.
    """
    with torch.device("meta"):
        module = build_module(replace(config, checkpoint_stacks=False), device="meta")
        images = torch.empty(config.batch_size, 3, config.input_size, config.input_size)
    counter = FlopCounterMode(display=False)
    with counter:
        outputs = module(images)
        surrogate = sum(t.float().sum() for t in flatten_outputs(outputs))
        surrogate.backward()
    return counter.get_total_flops()


def flatten_outputs(outputs: Any) -> Iterator[Tensor]:
    """Every tensor in a (nested) head output."""
    if isinstance(outputs, Tensor):
        yield outputs
    else:
        for item in outputs:
            yield from flatten_outputs(item)


class PeakMemory:
    """Peak memory over a stretch of work: CUDA allocator peak, or the process's peak RSS on CPU."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.baseline = current_rss() if device == "cpu" else 0
        self.reliable = device != "cpu" or peak_rss() <= self.baseline + 16 * MIB

    def restart(self) -> None:
        """Count the peak from now on (CUDA only: a process's peak RSS cannot be reset)."""
        if self.device == "cuda":
            torch.cuda.reset_peak_memory_stats()

    def peak(self) -> int:
        if self.device == "cuda":
            return torch.cuda.max_memory_allocated()
        return max(0, peak_rss() - self.baseline)

    @property
    def method(self) -> str:
        if self.device == "cuda":
            return "torch.cuda.max_memory_allocated over the timed steps"
        return "peak RSS (VmHWM) minus RSS before the model was built"


def current_rss() -> int:
    """Resident set size of this process in bytes (Linux)."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize()


def peak_rss() -> int:
    """Peak resident set size of this process in bytes (Linux).

    Read from ``VmHWM`` in ``/proc/self/status``, the high-water mark of this process's own memory
    map: ``ru_maxrss`` also counts the parent's peak when the process was forked from a big one.
    """
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def state_bytes(module: torch.nn.Module, optimizer: torch.optim.Optimizer) -> int:
    """Bytes that persist between steps: parameters, buffers and optimizer state."""
    tensors = [*module.parameters(), *module.buffers()]
    tensors += [
        v for state in optimizer.state.values() for v in state.values() if isinstance(v, Tensor)
    ]
    return sum(t.numel() * t.element_size() for t in tensors)


def spread(values: list[float]) -> dict[str, float]:
    """Median, quartiles, min and max."""
    ordered = sorted(values)
    q1, median, q3 = (
        statistics.quantiles(ordered, n=4, method="inclusive") if len(ordered) > 1 else ordered * 3
    )
    return {"median": median, "q1": q1, "q3": q3, "min": ordered[0], "max": ordered[-1]}


def machine_info(device: str) -> dict[str, Any]:
    """What the numbers were measured on."""
    info = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
    }
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
        info["cuda"] = torch.version.cuda
        info["cudnn_tf32"] = torch.backends.cudnn.allow_tf32
        info["matmul_precision"] = torch.get_float32_matmul_precision()
    return info


def data_throughput(
    input_size: int, workers: int, images_per_s: float, seconds: float = 2.0
) -> dict[str, Any]:
    """Samples/s of one DataLoader worker of the default training pipeline, against the model.

    Measured in this process with one thread, as a worker runs (``hgtrain.data.benchmark``).
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
        "workers": workers,
        "samples_per_s_with_workers": workers * per_worker,
        "workers_needed": math.ceil(images_per_s / per_worker),
        "limits_training": workers * per_worker < images_per_s,
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


def throughput(step_time: dict[str, float], batch_size: int) -> dict[str, float]:
    """Images/s spread from a step-time spread (the slowest step gives the lowest images/s)."""
    slowest_first = {"median": "median", "q1": "q3", "q3": "q1", "min": "max", "max": "min"}
    return {k: batch_size / step_time[t] for k, t in slowest_first.items()}


def benchmark(config: BenchmarkConfig) -> dict[str, Any]:
    """Time ``config.steps`` training steps after ``config.warmup`` and return the results."""
    torch.backends.cudnn.benchmark = config.cudnn_benchmark
    memory = PeakMemory(config.device)
    torch.manual_seed(config.seed)
    step, batch = prepare(config)
    module, optimizer = step.module, step.optimizer

    warmup_times = [time_step(step, batch, config.device)[0] for _ in range(config.warmup)]
    memory.restart()
    times, losses = [], []
    for _ in range(config.steps):
        seconds, loss = time_step(step, batch, config.device)
        times.append(seconds)
        losses.append(loss.item())
    peak = memory.peak()
    state = state_bytes(module, optimizer)

    flops = count_flops(config)
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


def interleave(
    steps: dict[str, tuple[TrainStep, Batch]], rounds: int, warmup: int, device: str
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Step times and losses of several steps run in turn (order reversed every other round, so
    that a slow patch of a shared machine hits each alike), after ``warmup`` rounds."""
    for _ in range(warmup):
        for step, batch in steps.values():
            time_step(step, batch, device)
    times: dict[str, list[float]] = {name: [] for name in steps}
    losses: dict[str, list[float]] = {name: [] for name in steps}
    for index in range(rounds):
        for name in list(steps) if index % 2 == 0 else list(reversed(steps)):
            seconds, loss = time_step(*steps[name], device)
            times[name].append(seconds)
            losses[name].append(loss.item())
    return times, losses


def paired(times: dict[str, list[float]], batch_size: int) -> dict[str, Any]:
    """Spreads of two interleaved timings, and the second's time over the first's: the ratio of
    medians and the spread of the per-round ratios (above 1: the second is slower)."""
    (first, a), (second, b) = times.items()
    spreads = {first: spread(a), second: spread(b)}
    return {
        "step_time_s": spreads,
        "images_per_s": {name: throughput(s, batch_size) for name, s in spreads.items()},
        "time_ratio": spreads[second]["median"] / spreads[first]["median"],
        "paired_time_ratio": spread([y / x for x, y in zip(a, b, strict=True)]),
    }


VERSUS = ("channels_last", "checkpoint_stacks", "fused_optimizer", "compile", "bf16")
"""Options ``--versus`` can turn on for the second side of an interleaved comparison."""


def switched_on(config: BenchmarkConfig, option: str) -> BenchmarkConfig:
    """``config`` with ``option`` (one of ``VERSUS``) on; an ``OptionError`` if it is on already."""
    if option not in VERSUS:
        raise OptionError("versus", option, f"must be one of {', '.join(VERSUS)}")
    other = (
        replace(config, precision="bf16") if option == "bf16" else replace(config, **{option: True})
    )
    if other == config:
        raise OptionError(
            "versus",
            option,
            f"{option} is already on; --versus compares a configuration without it",
        )
    return other


def versus(config: BenchmarkConfig, option: str) -> dict[str, Any]:
    """``config`` against the same configuration with ``option`` on, steps interleaved in one
    process (so no memory figures), from the same weights."""
    other = switched_on(config, option)
    torch.backends.cudnn.benchmark = config.cudnn_benchmark
    steps = {}
    for name, side in (("base", config), (option, other)):
        torch.manual_seed(config.seed)
        steps[name] = prepare(side)
    times, losses = interleave(steps, config.steps, config.warmup, config.device)
    return {
        "config": asdict(config),
        "versus": option,
        "machine": machine_info(config.device),
        **paired(times, config.batch_size),
        "losses": losses,
    }


def versus_summary(result: dict[str, Any]) -> str:
    """A line for the terminal about an interleaved comparison."""
    first, second = result["step_time_s"]
    t, r = result["step_time_s"], result["paired_time_ratio"]
    return (
        f"{describe_setting(result['config'])}: {first} {t[first]['median']:.3f} s/step, {second} "
        f"{t[second]['median']:.3f} s/step; time ratio {second}/{first} {result['time_ratio']:.3f} "
        f"(per round: median {r['median']:.3f}, IQR {r['q1']:.3f}-{r['q3']:.3f})"
    )


OPTION_FLAGS = (
    "channels_last",
    "checkpoint_stacks",
    "fused_optimizer",
    "cudnn_benchmark",
    "corner_pool",
)


def describe_options(config: dict[str, Any]) -> str:
    """``bf16 compile channels_last ...``: precision, eager or compiled, then the options that are on."""
    parts = ["fp32" if config["precision"] == "32" else config["precision"]]
    parts.append("compile" if config["compile"] else "eager")
    return " ".join(parts + [name for name in OPTION_FLAGS if config[name]])


def backbone_name(config: dict[str, Any]) -> str:
    backbone = config["backbone"]
    return backbone if isinstance(backbone, str) else backbone["name"]


def describe_setting(config: dict[str, Any]) -> str:
    """``squeeze @511 x2 cpu fp32 eager channels_last``: backbone, input, batch, device, options."""
    return (
        f"{backbone_name(config)} @{config['input_size']} x{config['batch_size']} "
        f"{config['device']} {describe_options(config)}"
    )


def announce(config: BenchmarkConfig, option: str | None = None) -> str:
    """The line printed before timing: which configuration runs (both, with ``option``), how long."""
    setting = describe_setting(asdict(config))
    counts = f"{config.warmup} warm-up, {config.steps} timed"
    if option is not None:
        other = describe_setting(asdict(switched_on(config, option)))
        return f"interleaving {setting} and {other} (rounds: {counts})"
    if config.data_workers:
        counts += f"; then the data pipeline, data_workers {config.data_workers}"
    return f"timing {setting} (steps: {counts})"


def summary(result: dict[str, Any]) -> str:
    """A line for the terminal (two with the data pipeline)."""
    ips, t = result["images_per_s"], result["step_time_s"]
    line = (
        f"{describe_setting(result['config'])}: "
        f"{ips['median']:.2f} img/s (IQR {ips['q1']:.2f}-{ips['q3']:.2f}), "
        f"step {t['median']:.3f} s, {result['tflops_per_s']:.3f} TFLOP/s, "
        f"peak {result['peak_memory_mib']:.0f} MiB = state {result['state_memory_mib']:.0f} + "
        f"step {result['step_memory_mib']:.0f}"
    )
    if "data" in result:
        d = result["data"]
        line += (
            f"\ndata: {d['samples_per_s_per_worker_cpu_time']:.1f} samples/s per worker (CPU time; "
            f"{d['samples_per_s_per_worker']:.1f} wall), {d['workers']} workers ~ "
            f"{d['samples_per_s_with_workers']:.1f} samples/s; {d['workers_needed']} needed"
        )
    return line


def format_table(results: list[dict[str, Any]]) -> str:
    """A Markdown table of results, one row each, in the given order.

    ``vs fp32 eager`` divides a row's images/s by those of the fp32 eager row without options for
    the same backbone, input, batch and device, when there is one.
    """

    def setting(c: dict[str, Any]) -> tuple:
        return backbone_name(c), c["input_size"], c["batch_size"], c["device"]

    baselines = {
        setting(r["config"]): r["images_per_s"]["median"]
        for r in results
        if describe_options(r["config"]) == "fp32 eager"
    }
    rows = [
        "| backbone | input | batch | device | options | images/s (median, IQR) | vs fp32 eager "
        "| step s | TFLOP/s | peak MiB | step MiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        c, ips = r["config"], r["images_per_s"]
        baseline = baselines.get(setting(c))
        speedup = f"{ips['median'] / baseline:.2f}x" if baseline else "-"
        rows.append(
            f"| {backbone_name(c)} | {c['input_size']} | {c['batch_size']} | {c['device']} | "
            f"{describe_options(c)} | {ips['median']:.2f} ({ips['q1']:.2f}-{ips['q3']:.2f}) | "
            f"{speedup} | {r['step_time_s']['median']:.3f} | {r['tflops_per_s']:.3f} | "
            f"{r['peak_memory_mib']:.0f} | {r['step_memory_mib']:.0f} |"
        )
    return "\n".join(rows)


def build_parser() -> ToolParser:
    """The command line of ``hgtrain benchmark``."""
    parser = ToolParser(
        prog="hgtrain benchmark",
        description="Time full training steps (forward, loss, backward, Adam) of an hourglass backbone with "
        "its heads on synthetic batches; report images/s, TFLOP/s and peak memory.",
    )
    parser.add_argument("--backbone", default="squeeze", choices=list_backbones())
    parser.add_argument(
        "--input_size",
        type=int | None,
        default=None,
        help="input side in pixels (default: the variant's training size, 511 / 255 / 511)",
    )
    parser.add_argument("--batch_size", type=int, default=2)
    parser.add_argument(
        "--device",
        default="cuda" if torch.cuda.is_available() else "cpu",
        choices=["cpu", "cuda"],
    )
    parser.add_argument("--steps", type=int, default=5, help="timed steps")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
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
        "--checkpoint_stacks",
        type=bool,
        default=False,
        help="true: activation checkpointing per hourglass stack",
    )
    parser.add_argument(
        "--fused_optimizer", type=bool, default=False, help="true: Adam(fused=True)"
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
        help="also time one data-loader worker and compare N of them with the model (0: skip)",
    )
    parser.add_argument(
        "--threads", type=int | None, default=None, help="torch.set_num_threads (CPU)"
    )
    parser.add_argument(
        "--versus",
        choices=VERSUS,
        default=None,
        help="time this configuration against itself with OPTION on, steps interleaved in one "
        "process (for noisy machines; reports the time ratio, no memory)",
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
        help="print a Markdown table of earlier --json results instead of running",
    )
    return parser


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
        config = BenchmarkConfig(**options)
        line = announce(config, namespace.versus)
    except OptionError as error:
        parser.error(f"--{error}")
    if namespace.threads is not None:
        torch.set_num_threads(namespace.threads)
    print(line, flush=True)
    if namespace.versus is None:
        result = benchmark(config)
        print(summary(result))
    else:
        result = versus(config, namespace.versus)
        print(versus_summary(result))
    if namespace.json is not None:
        namespace.json.parent.mkdir(parents=True, exist_ok=True)
        namespace.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
