"""Measuring, for both benchmark modes: wall-clock time of a call with the device's queue drained,
spreads (median, quartiles), rates, peak memory, interleaved timing of several calls, and what
machine the numbers come from. Nothing here knows about networks or training.

Peak memory:

* CUDA: ``torch.cuda.max_memory_allocated`` since :meth:`PeakMemory.restart` (after the warm-up).
* CPU: the process's peak resident set size (``VmHWM``) minus its size before the model was built.
  A process's peak cannot be reset, so it includes the warm-up (and any compilation); ``hgtrain
  benchmark`` runs one configuration per process, so the peak is that configuration's. When the
  process was bigger before, the figure is flagged unreliable.
"""

from __future__ import annotations

import platform
import resource
import statistics
import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any, TypeVar

import torch
from torch import Tensor

__all__ = [
    "MIB",
    "PeakMemory",
    "compare",
    "current_rss",
    "interleave",
    "machine_info",
    "peak_rss",
    "spread",
    "synchronize",
    "tensor_bytes",
    "throughput",
    "time_call",
]

MIB = 2**20
T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


def synchronize(device: str) -> None:
    """Wait for the device's queued work (a no-op on CPU)."""
    if device == "cuda":
        torch.cuda.synchronize()


def time_call(call: Callable[[], T], device: str) -> tuple[float, T]:
    """Wall-clock seconds of ``call()``, the device's queue drained before and after, and its result."""
    synchronize(device)
    start = time.perf_counter()
    result = call()
    synchronize(device)
    return time.perf_counter() - start, result


def spread(values: list[float]) -> dict[str, float]:
    """Median, quartiles, min and max."""
    ordered = sorted(values)
    q1, median, q3 = (
        statistics.quantiles(ordered, n=4, method="inclusive") if len(ordered) > 1 else ordered * 3
    )
    return {"median": median, "q1": q1, "q3": q3, "min": ordered[0], "max": ordered[-1]}


def throughput(call_time: dict[str, float], batch_size: int) -> dict[str, float]:
    """Images/s spread from a call-time spread (the slowest call gives the lowest images/s)."""
    slowest_first = {"median": "median", "q1": "q3", "q3": "q1", "min": "max", "max": "min"}
    return {k: batch_size / call_time[t] for k, t in slowest_first.items()}


def compare(first: list[float], second: list[float]) -> dict[str, Any]:
    """The second's time over the first's, from interleaved rounds: the ratio of medians and the
    spread of the per-round ratios (above 1: the second is slower)."""
    return {
        "time_ratio": spread(second)["median"] / spread(first)["median"],
        "paired_time_ratio": spread([b / a for a, b in zip(first, second, strict=True)]),
    }


def interleave(
    calls: Mapping[K, Callable[[], Any]], rounds: int, warmup: int, device: str
) -> tuple[dict[K, list[float]], dict[K, list[Any]]]:
    """Times and results of several calls run in turn, after ``warmup`` untimed rounds.

    The order is reversed every other round, so that a slow patch of a shared machine hits each
    alike: the fair way to compare options when absolute times drift.
    """
    for _ in range(warmup):
        for call in calls.values():
            time_call(call, device)
    times: dict[K, list[float]] = {name: [] for name in calls}
    results: dict[K, list[Any]] = {name: [] for name in calls}
    for index in range(rounds):
        for name in list(calls) if index % 2 == 0 else list(reversed(calls)):
            seconds, result = time_call(calls[name], device)
            times[name].append(seconds)
            results[name].append(result)
    return times, results


class PeakMemory:
    """Peak memory over a stretch of work: CUDA allocator peak, or the process's peak RSS on CPU.

    Make it before the model is built: on CPU it keeps the process's size then as the baseline.
    ``timed`` names what is timed (``steps``, ``calls``), for :attr:`method`.
    """

    def __init__(self, device: str, timed: str = "steps") -> None:
        self.device = device
        self.timed = timed
        self.baseline = current_rss() if device == "cpu" else 0
        self.reliable = device != "cpu" or peak_rss() <= self.baseline + 16 * MIB

    def restart(self) -> None:
        """Count the peak from now on (CUDA only: a process's peak RSS cannot be reset)."""
        if self.device == "cuda":
            torch.cuda.reset_peak_memory_stats()

    def peak(self) -> int:
        """Bytes at the peak (CPU: above the baseline)."""
        if self.device == "cuda":
            return torch.cuda.max_memory_allocated()
        return max(0, peak_rss() - self.baseline)

    @property
    def method(self) -> str:
        """How :meth:`peak` was measured, for the results."""
        if self.device == "cuda":
            return f"torch.cuda.max_memory_allocated over the timed {self.timed}"
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


def tensor_bytes(tensors: Iterable[Tensor]) -> int:
    """Bytes of the tensors' elements."""
    return sum(t.numel() * t.element_size() for t in tensors)


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
