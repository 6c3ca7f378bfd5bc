"""Samples/s of the synthetic data pipeline in one process: does the loader keep a GPU busy?

Times what one DataLoader worker does for the default DataModule (mixed shapes, photometric
noise, random horizontal flips): render, augment and collate batches, single-threaded as in a
worker. Reported per image size: samples/s by wall clock and by this process's CPU time (the
machine may be shared: CPU time is what other load cannot inflate), each the median of several
timed runs, and, separately, the cost of encoding the CornerNet targets of a batch with
:func:`hgtrain.task.targets.encode_targets` on the CPU (the model encodes them on its device).

Run ``python -m hgtrain.tools.data_benchmark`` (or ``hgtrain data-benchmark``) with ``--sizes``,
``--seconds`` per run, ``--runs`` and ``--json true``, or any of them in a YAML file given with
``--config FILE``.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Sequence
from typing import Any

import torch

from hgtrain.cli.arguments import ToolParser
from hgtrain.data.loading.collate import collate_keypoints
from hgtrain.data.loading.datamodule import KeypointDataModule

__all__ = ["benchmark_size", "main"]

BATCH = 16
STRIDE = 4  # CornerNet and Saccade heatmaps; 511 -> 128


def benchmark_size(
    image_size: int, seconds: float = 2.0, runs: int = 3, encode: bool = True
) -> dict[str, Any]:
    """Time the default training pipeline at ``image_size``; returns the measurements."""
    module = KeypointDataModule(image_size=image_size, num_workers=0, train_length=10**9)
    dataset = module.make_train_dataset()
    batches = _Batches(dataset)
    batches.take(2)  # warm-up: imports, caches
    wall, cpu = [], []
    for _ in range(runs):
        start_wall, start_cpu, count = time.perf_counter(), time.process_time(), 0
        while time.perf_counter() - start_wall < seconds:
            count += len(batches.take(1)[0][0])
        wall.append(count / (time.perf_counter() - start_wall))
        cpu.append(count / max(time.process_time() - start_cpu, 1e-9))
    result = {
        "image_size": image_size,
        "samples_per_s": statistics.median(wall),
        "samples_per_s_cpu": statistics.median(cpu),
        "runs": runs,
        "seconds_per_run": seconds,
    }
    if encode:
        result["encode_ms_per_sample"] = _encode_ms(batches.take(4), module.num_classes, image_size)
    return result


class _Batches:
    """Consecutive collated batches of a dataset."""

    def __init__(self, dataset: torch.utils.data.Dataset) -> None:
        self.dataset = dataset
        self.next_index = 0

    def take(self, count: int) -> list:
        batches = []
        for _ in range(count):
            indices = range(self.next_index, self.next_index + BATCH)
            self.next_index += BATCH
            batches.append(collate_keypoints([self.dataset[i] for i in indices]))
        return batches


def _encode_ms(batches: list, num_classes: int, image_size: int) -> float:
    """Median CPU milliseconds per sample to encode the targets of ``batches``."""
    from hgtrain.task.targets import encode_targets

    output = math.ceil(image_size / STRIDE)
    times = []
    for _, targets in batches:
        start = time.process_time()
        encode_targets(targets, num_classes, (image_size, image_size), (output, output))
        times.append((time.process_time() - start) * 1000 / len(targets))
    return statistics.median(times)


def main(args: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Command line: print samples/s per worker process for each size."""
    parser = ToolParser(prog="hgtrain data-benchmark", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 511])
    parser.add_argument("--seconds", type=float, default=2.0, help="length of one timed run")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per size (median)")
    parser.add_argument(
        "--no_encode", type=bool, default=False, help="true: skip timing target encoding"
    )
    parser.add_argument(
        "--json", type=bool, default=False, help="true: print JSON instead of a table"
    )
    options = parser.parse_args(args)
    parser.check_at_least(options, sizes=16, runs=1)
    if options.seconds <= 0:
        parser.error(f"--seconds={options.seconds}: must be > 0")
    torch.set_num_threads(1)  # as in a DataLoader worker
    results = [
        benchmark_size(size, options.seconds, options.runs, not options.no_encode)
        for size in options.sizes
    ]
    if options.json:
        print(json.dumps(results, indent=1))
    else:
        _print_table(results)
    return results


def _print_table(results: list[dict[str, Any]]) -> None:
    print("synthetic train pipeline, one process (render + noise + flip + collate)")
    print(f"{'size':>5} {'samples/s':>10} {'(CPU time)':>11} {'encode ms/sample':>17}")
    for r in results:
        encode = f"{r['encode_ms_per_sample']:.3f}" if "encode_ms_per_sample" in r else "-"
        print(
            f"{r['image_size']:>5} {r['samples_per_s']:>10.0f} {r['samples_per_s_cpu']:>11.0f} "
            f"{encode:>17}"
        )


if __name__ == "__main__":
    main()
