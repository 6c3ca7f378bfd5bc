"""Samples/s of the synthetic data pipeline in one process: does the loader keep a GPU busy?

Times what one DataLoader worker does for the default DataModule (mixed shapes, photometric
noise, random horizontal flips): render, augment and collate batches, single-threaded as in a
worker. Reported per image size: samples/s by wall clock and by this process's CPU time (the
machine may be shared: CPU time is what other load cannot inflate), each the median of several
timed runs, and, separately, the cost of encoding the CornerNet targets of a batch with
:func:`hgtrain.task.targets.encode_targets` on the CPU (the model encodes them on its device).

Then a budget table, one row per original config shipped in the package (``cornernet.yaml``,
``saccade.yaml``, ``squeeze.yaml``; their backbone, ``data.image_size``, ``data.num_workers``,
``trainer.devices`` and ``data.batch_size`` read from the YAML): the CPU-time samples/s of one
worker at the config's image size (each size measured once, a size of ``--sizes`` not again) and
of its workers, against an ESTIMATE of the images/s one GPU trains, ``--gpu_tflops`` divided by
the training FLOPs per image (:func:`hgtrain.models.flops.training_flops`, counted on the meta
device); so the workers per GPU process that keep up (under DDP every rank has its own
DataLoader). The estimate is no measurement: ``hgtrain benchmark --data_workers N`` on the GPU
measures both sides.

Run ``python -m hgtrain.tools.data_benchmark`` (or ``hgtrain data-benchmark``) with ``--sizes``,
``--seconds`` per run, ``--runs``, ``--no_encode true``, ``--budget false`` (no budget table),
``--gpu_tflops`` (default 400: an H100 at about 40 % of its ~990 TFLOP/s dense bf16 peak) and
``--json true`` (``{"sizes": [...], "budget": [...]}`` instead of the tables), or any of them in a
YAML file given with ``--config FILE``.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

import torch
import yaml

from hgtrain.cli.arguments import ToolParser
from hgtrain.data.loading.collate import collate_keypoints
from hgtrain.data.loading.datamodule import KeypointDataModule
from hgtrain.data.sample import CLASS_NAMES
from hgtrain.models.flops import training_flops
from hgtrain.models.network import KeypointNetConfig

__all__ = [
    "BUDGET_CONFIGS",
    "GPU_TFLOPS",
    "benchmark_size",
    "budget",
    "budget_row",
    "main",
    "network_config",
    "shipped_config",
    "worker_balance",
]

BATCH = 16
STRIDE = 4  # CornerNet and Saccade heatmaps; 511 -> 128
BUDGET_CONFIGS = ("cornernet", "saccade", "squeeze")
"""The original configs shipped in ``hgtrain/configs`` that the budget table has a row for."""
GPU_TFLOPS = 400.0
"""Default training TFLOP/s of one GPU for the estimate: an H100 at about 40 % of its ~990 TFLOP/s
dense bf16 peak."""


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


def worker_balance(per_worker: float, workers: int, images_per_s: float) -> dict[str, Any]:
    """``workers`` DataLoader workers of ``per_worker`` samples/s each against a model that trains
    ``images_per_s``: their samples/s together, the workers it needs, whether they limit it."""
    return {
        "workers": workers,
        "samples_per_s_with_workers": workers * per_worker,
        "workers_needed": math.ceil(images_per_s / per_worker),
        "limits_training": workers * per_worker < images_per_s,
    }


def shipped_config(name: str) -> dict[str, Any]:
    """The training config ``<name>.yaml`` shipped in the package, as a dict."""
    return yaml.safe_load((resources.files("hgtrain") / "configs" / f"{name}.yaml").read_text())


def network_config(config: Mapping[str, Any]) -> KeypointNetConfig:
    """The network a training config on the synthetic set trains, as ``hgtrain fit`` builds it:
    its ``model`` options, ``data.image_size`` as input and the synthetic classes."""
    return KeypointNetConfig.from_hparams(
        {
            **config["model"],
            "input_size": config["data"]["image_size"],
            "num_classes": len(CLASS_NAMES),
            "class_names": list(CLASS_NAMES),
        }
    )


def budget_row(
    name: str, config: Mapping[str, Any], measured: Mapping[str, Any], gpu_tflops: float
) -> dict[str, Any]:
    """One config's data budget: its workers per GPU process, at the per-worker rate
    ``measured`` at its image size (:func:`benchmark_size`), against the ESTIMATED images/s of one
    GPU that sustains ``gpu_tflops`` on the config's network, image size and batch per GPU."""
    data = config["data"]
    size, batch = data["image_size"], data["batch_size"]
    flops_per_image = training_flops(network_config(config), batch, size) / batch
    gpu_images_per_s = gpu_tflops * 1e12 / flops_per_image
    per_worker = measured["samples_per_s_cpu"]
    balance = worker_balance(per_worker, data["num_workers"], gpu_images_per_s)
    return {
        "config": name,
        "backbone": config["model"]["backbone"],
        "image_size": size,
        "gpus": config["trainer"]["devices"],
        "batch_per_gpu": batch,
        "samples_per_s_per_worker": measured["samples_per_s"],
        "samples_per_s_per_worker_cpu_time": per_worker,
        **balance,
        "training_flops_per_image": flops_per_image,
        "gpu_tflops": gpu_tflops,
        "gpu_images_per_s_estimate": gpu_images_per_s,
        "data_to_gpu_ratio": balance["samples_per_s_with_workers"] / gpu_images_per_s,
    }


def budget(
    measured: Sequence[Mapping[str, Any]], gpu_tflops: float, seconds: float, runs: int
) -> list[dict[str, Any]]:
    """A :func:`budget_row` for each of :data:`BUDGET_CONFIGS`; an image size without a result in
    ``measured`` is timed once (``seconds`` x ``runs``, no encoding) and shared by its configs."""
    by_size = {r["image_size"]: r for r in measured}
    rows = []
    for name in BUDGET_CONFIGS:
        config = shipped_config(name)
        size = config["data"]["image_size"]
        if size not in by_size:
            by_size[size] = benchmark_size(size, seconds, runs, encode=False)
        rows.append(budget_row(name, config, by_size[size], gpu_tflops))
    return rows


def main(args: Sequence[str] | None = None) -> dict[str, Any]:
    """Command line: print samples/s per worker process for each size, then the budget table.

    Returns what it printed: ``{"sizes": [one result per size], "budget": [one row per config]}``,
    without ``budget`` with ``--budget false``.
    """
    parser = ToolParser(prog="hgtrain data-benchmark", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 511])
    parser.add_argument("--seconds", type=float, default=2.0, help="length of one timed run")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per size (median)")
    parser.add_argument(
        "--no_encode", type=bool, default=False, help="true: skip timing target encoding"
    )
    parser.add_argument(
        "--budget",
        type=bool,
        default=True,
        help="false: leave out the budget table of the original configs (it times their image "
        "sizes that --sizes has not)",
    )
    parser.add_argument(
        "--gpu_tflops",
        type=float,
        default=GPU_TFLOPS,
        help="training TFLOP/s of one GPU for the budget table's ESTIMATE of GPU images/s; the "
        "default 400 is an H100 at about 40 % of its ~990 TFLOP/s dense bf16 peak",
    )
    parser.add_argument(
        "--json", type=bool, default=False, help="true: print JSON instead of the tables"
    )
    options = parser.parse_args(args)
    parser.check_at_least(options, sizes=16, runs=1)
    for name in ("seconds", "gpu_tflops"):
        if options[name] <= 0:
            parser.error(f"--{name}={options[name]}: must be > 0")
    torch.set_num_threads(1)  # as in a DataLoader worker
    sizes = [
        benchmark_size(size, options.seconds, options.runs, not options.no_encode)
        for size in options.sizes
    ]
    results: dict[str, Any] = {"sizes": sizes}
    if options.budget:
        results["budget"] = budget(sizes, options.gpu_tflops, options.seconds, options.runs)
    if options.json:
        print(json.dumps(results, indent=1))
    else:
        _print_table(sizes)
        if options.budget:
            print()
            _print_budget(results["budget"], options.gpu_tflops)
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


def _print_budget(rows: list[dict[str, Any]], gpu_tflops: float) -> None:
    print(
        "budget per GPU process: the original configs' DataLoader workers against an ESTIMATE "
        f"of one GPU at {gpu_tflops:g} TFLOP/s"
    )
    print(
        f"{'config':<10} {'backbone':<10} {'size':>5} {'workers':>7} {'GPUs':>4} {'batch':>5} "
        f"{'samples/s/worker':>16} {'x workers':>9} {'GFLOP/img':>9} {'GPU img/s (est.)':>16} "
        f"{'workers needed':>14} {'data/GPU':>8} {'keeps up':>8}"
    )
    for r in rows:
        print(
            f"{r['config']:<10} {r['backbone']:<10} {r['image_size']:>5} {r['workers']:>7} "
            f"{r['gpus']:>4} {r['batch_per_gpu']:>5} "
            f"{r['samples_per_s_per_worker_cpu_time']:>16.0f} "
            f"{r['samples_per_s_with_workers']:>9.0f} {r['training_flops_per_image'] / 1e9:>9.0f} "
            f"{r['gpu_images_per_s_estimate']:>16.0f} {r['workers_needed']:>14} "
            f"{r['data_to_gpu_ratio']:>8.2f} {'no' if r['limits_training'] else 'yes':>8}"
        )
    for line in (
        "GPU img/s is an ESTIMATE, not a measurement: --gpu_tflops (default 400: an H100 at about",
        "40 % of its ~990 TFLOP/s dense bf16 peak) / the training FLOPs per image (forward and",
        "backward, counted on the meta device); data loading, optimizer step and DDP not counted.",
        "samples/s/worker: this process's CPU-time rate of the default pipeline at the config's",
        "size (its crop options not applied); each worker needs a free core. Measured on the GPU:",
        "hgtrain benchmark --data_workers N.",
    ):
        print(line)


if __name__ == "__main__":
    main()
