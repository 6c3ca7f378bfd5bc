"""Measuring, for both benchmark modes: wall-clock time of a call with the device's queue drained,
spreads (median, quartiles), rates, peak memory, interleaved timing of several calls, and what
machine the numbers come from. Nothing here knows about networks or training.

Peak memory:

* CUDA: ``torch.cuda.max_memory_allocated`` since :meth:`PeakMemory.restart` (after the warm-up).
* CPU: the process's peak resident set size (``VmHWM``) minus its size before the model was built.
  It includes the warm-up (and any compilation); ``hgtrain benchmark`` runs one configuration per
  process, so the peak is that configuration's. When the process was bigger before, the figure is
  flagged unreliable.

Interleaved calls (:func:`interleave` with ``memory=True``) also get the peak each call adds above
what was in use just before it: on CUDA from the allocator's peak, reset before the call; on CPU
from ``VmHWM``, reset to the current size through ``/proc/self/clear_refs`` (Linux) after freed
heap memory went back to the system (glibc ``malloc_trim``), so that two configurations in one
process each get their own peak.
"""

from __future__ import annotations

import ctypes
import functools
import platform
import resource
import statistics
import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any, NamedTuple, TypeVar

import torch
from torch import Tensor

__all__ = [
    "MIB",
    "Interleaved",
    "PeakMemory",
    "added_peak",
    "compare",
    "current_rss",
    "interleave",
    "machine_info",
    "peak_rss",
    "release_free_heap",
    "reset_peak_rss",
    "spread",
    "start_peak",
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


class Interleaved(NamedTuple):
    """What :func:`interleave` measured, by call name: seconds and results of every timed call and,
    when asked, the bytes each added at its peak above what was in use before it."""

    times: dict[Any, list[float]]
    results: dict[Any, list[Any]]
    added_peaks: dict[Any, list[int]]


def interleave(
    calls: Mapping[K, Callable[[], Any]],
    rounds: int,
    warmup: int,
    device: str,
    memory: bool = False,
) -> Interleaved:
    """Times and results of several calls run in turn, after ``warmup`` untimed rounds, and with
    ``memory`` the peak memory each timed call adds (measured outside the timed span).

    The order is reversed every other round, so that a slow patch of a shared machine hits each
    alike: the fair way to compare options when absolute times drift.
    """
    for _ in range(warmup):
        for call in calls.values():
            time_call(call, device)
    times: dict[K, list[float]] = {name: [] for name in calls}
    results: dict[K, list[Any]] = {name: [] for name in calls}
    added_peaks: dict[K, list[int]] = {name: [] for name in calls} if memory else {}
    for index in range(rounds):
        for name in list(calls) if index % 2 == 0 else list(reversed(calls)):
            before = start_peak(device) if memory else 0
            seconds, result = time_call(calls[name], device)
            if memory:
                added_peaks[name].append(added_peak(device, before))
            times[name].append(seconds)
            results[name].append(result)
    return Interleaved(times, results, added_peaks)


def start_peak(device: str) -> int:
    """Start counting the peak of the next call; returns the bytes in use now (CUDA: allocated by
    tensors; CPU: the process's resident size, after freed heap memory went back to the system)."""
    if device == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated()
    release_free_heap()
    reset_peak_rss()
    return current_rss()


def added_peak(device: str, before: int) -> int:
    """Bytes above ``before`` (from :func:`start_peak`) at the peak since then."""
    if device == "cuda":
        return max(0, torch.cuda.max_memory_allocated() - before)
    return max(0, peak_rss() - before)


def release_free_heap() -> None:
    """Hand memory the C heap holds but no longer uses back to the system (glibc's
    ``malloc_trim``; nothing elsewhere), so that the resident size is what is in use."""
    malloc_trim = _malloc_trim()
    if malloc_trim is not None:
        malloc_trim(0)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim`` from the symbols already loaded, looked up once (it runs before
    every measured call); ``None`` where the C library has none."""
    return getattr(ctypes.CDLL(None), "malloc_trim", None)


def reset_peak_rss() -> None:
    """Make this process's peak resident size (``VmHWM``) its current size (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError as error:
        raise RuntimeError(
            f"the peak memory of one call needs Linux's /proc/self/clear_refs ({error})"
        ) from error


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
        """Count the peak from now on (CUDA only: on CPU the peak keeps the warm-up's, which
        :func:`interleave` with ``memory=True`` avoids per call)."""
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
