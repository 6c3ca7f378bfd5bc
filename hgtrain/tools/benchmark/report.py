"""Reporting: the line printed before timing, the summary lines after it, and Markdown tables of
``--json`` results. Works on the plain dicts the modes return (and their JSON), so that tables can
be made from earlier runs; an inference configuration is the one with an ``export`` option.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from hgtrain.tools.benchmark import inference, training_steps
from hgtrain.tools.benchmark.inference import InferenceConfig
from hgtrain.tools.benchmark.training_steps import BenchmarkConfig

__all__ = [
    "announce",
    "describe_options",
    "describe_setting",
    "format_table",
    "summary",
    "versus_summary",
]

OPTION_FLAGS = ("channels_last", "fused_optimizer", "cudnn_benchmark", "corner_pool")
"""Switches named after the precision and runtime (and checkpointing) when they are on."""


def is_inference(config: dict[str, Any]) -> bool:
    """Whether a configuration (as a dict) is an inference one."""
    return "export" in config


def describe_options(config: dict[str, Any]) -> str:
    """``bf16 compile checkpoint_blocks channels_last ...``: precision, runtime (eager, compile,
    export), the activation checkpointing if any (results from before its modes have
    ``checkpoint_stacks``), then the options that are on."""
    precision = "fp32" if config["precision"] == "32" else config["precision"]
    if is_inference(config):
        runtime = inference.runtime(config)
    else:
        runtime = "compile" if config["compile"] else "eager"
    names = [precision, runtime]
    checkpointing = config.get(
        "activation_checkpointing", "stacks" if config.get("checkpoint_stacks") else "none"
    )
    if checkpointing != "none":
        names.append(f"checkpoint_{checkpointing}")
    return " ".join([*names, *(name for name in OPTION_FLAGS if config.get(name))])


def backbone_name(config: dict[str, Any]) -> str:
    """The backbone's registered name, or its config's name."""
    backbone = config["backbone"]
    return backbone if isinstance(backbone, str) else backbone["name"]


def describe_setting(config: dict[str, Any]) -> str:
    """``squeeze @511 x2 cpu fp32 eager channels_last``: backbone, input, batch, device, options.

    Inference settings have no batch (latency is at batch 1, throughput at ``batch_size``) and end
    in ``inference``.
    """
    if is_inference(config):
        return (
            f"{backbone_name(config)} @{config['input_size']} {config['device']} "
            f"{describe_options(config)} inference"
        )
    return (
        f"{backbone_name(config)} @{config['input_size']} x{config['batch_size']} "
        f"{config['device']} {describe_options(config)}"
    )


def announce(config: BenchmarkConfig | InferenceConfig, option: str | None = None) -> str:
    """The line printed before timing: which configuration runs (both, with ``option``), how long."""
    setting = describe_setting(asdict(config))
    if isinstance(config, InferenceConfig):
        sizes = "batch 1" + (f" and batch {config.batch_size}" if config.batch_size > 1 else "")
        counts = f"{config.warmup} warm-up, {config.steps} timed"
        if option is not None:
            other = describe_setting(asdict(inference.switched_on(config, option)))
            return f"interleaving {setting} and {other} at {sizes} (rounds: {counts})"
        return f"timing {setting} at {sizes} (calls at each: {counts})"
    counts = f"{config.warmup} warm-up, {config.steps} timed"
    if option is not None:
        other = describe_setting(asdict(training_steps.switched_on(config, option)))
        return f"interleaving {setting} and {other} (rounds: {counts})"
    if config.data_workers:
        counts += f"; then the data pipeline, data_workers {config.data_workers}"
    return f"timing {setting} (steps: {counts})"


def summary(result: dict[str, Any]) -> str:
    """A line for the terminal about a result (two with the data pipeline)."""
    if result.get("mode") == "inference":
        return inference_summary(result)
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


def inference_summary(result: dict[str, Any]) -> str:
    """A line for the terminal about an inference result."""
    latency, ips = result["latency_s"], result["images_per_s"]
    return (
        f"{describe_setting(result['config'])}: "
        f"latency {1e3 * latency['median']:.1f} ms (IQR {1e3 * latency['q1']:.1f}-"
        f"{1e3 * latency['q3']:.1f}), {ips['median']:.2f} img/s at batch "
        f"{result['config']['batch_size']} (IQR {ips['q1']:.2f}-{ips['q3']:.2f}), "
        f"{result['gflops_per_s']:.1f} GFLOP/s, {result['keypoints_per_image']:.0f} keypoints/image, "
        f"peak {result['peak_memory_mib']:.0f} MiB = weights {result['state_memory_mib']:.0f} + "
        f"calls {result['call_memory_mib']:.0f}"
    )


def versus_summary(result: dict[str, Any]) -> str:
    """A line for the terminal about an interleaved comparison."""
    if result.get("mode") == "inference":
        return inference_versus_summary(result)
    first, second = result["step_time_s"]
    t, r = result["step_time_s"], result["paired_time_ratio"]
    return (
        f"{describe_setting(result['config'])}: {first} {t[first]['median']:.3f} s/step, {second} "
        f"{t[second]['median']:.3f} s/step; time ratio {second}/{first} {result['time_ratio']:.3f} "
        f"(per round: median {r['median']:.3f}, IQR {r['q1']:.3f}-{r['q3']:.3f})"
        + memory_summary(result, first, second)
    )


def memory_summary(result: dict[str, Any], first: str, second: str) -> str:
    """The peak-memory part of a training comparison's line (none in results without it)."""
    if "memory_ratio" not in result:
        return ""
    peak, step = result["peak_memory_mib"], result["step_memory_mib"]
    return (
        f"; peak memory {first} {peak[first]:.0f} MiB, {second} {peak[second]:.0f} MiB, ratio "
        f"{result['memory_ratio']:.3f} (what a step adds: {step[first]:.0f} and "
        f"{step[second]:.0f} MiB, ratio {result['step_memory_ratio']:.3f})"
    )


def inference_versus_summary(result: dict[str, Any]) -> str:
    """A line for the terminal about an interleaved inference comparison."""
    first, second = result["latency_s"]
    t, r = result["latency_s"], result["paired_latency_ratio"]
    line = (
        f"{describe_setting(result['config'])}: latency {first} {1e3 * t[first]['median']:.1f} ms, "
        f"{second} {1e3 * t[second]['median']:.1f} ms; time ratio {second}/{first} "
        f"{result['latency_ratio']:.3f} (per round: median {r['median']:.3f}, "
        f"IQR {r['q1']:.3f}-{r['q3']:.3f})"
    )
    batch_size = result["config"]["batch_size"]
    if batch_size > 1:
        ips, r = result["images_per_s"], result["paired_time_ratio"]
        line += (
            f"; batch {batch_size}: {first} {ips[first]['median']:.2f} img/s, {second} "
            f"{ips[second]['median']:.2f} img/s; time ratio {result['time_ratio']:.3f} "
            f"(per round: median {r['median']:.3f}, IQR {r['q1']:.3f}-{r['q3']:.3f})"
        )
    return line


def format_table(results: list[dict[str, Any]]) -> str:
    """Markdown tables of results, one row each in the given order: training results, then
    inference results, then the data pipeline of the training results measured with
    ``--data_workers``, each table after a blank line, those that have rows.

    ``vs fp32 eager`` divides a row's images/s (or, for latency, divides the fp32 eager latency by
    the row's) by those of the fp32 eager row without options for the same backbone, input, batch
    and device, when there is one: above 1 is faster.
    """
    training = [r for r in results if r.get("mode") != "inference"]
    tables = [
        table(selected)
        for table, selected in (
            (training_table, training),
            (inference_table, [r for r in results if r.get("mode") == "inference"]),
            (data_table, [r for r in training if "data" in r]),
        )
        if selected
    ]
    return "\n\n".join(tables)


def setting_key(config: dict[str, Any]) -> tuple:
    """What a row must share with its fp32 eager baseline."""
    return backbone_name(config), config["input_size"], config["batch_size"], config["device"]


def training_table(results: list[dict[str, Any]]) -> str:
    """The Markdown table of training results."""
    baselines = {
        setting_key(r["config"]): r["images_per_s"]["median"]
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
        baseline = baselines.get(setting_key(c))
        speedup = f"{ips['median'] / baseline:.2f}x" if baseline else "-"
        rows.append(
            f"| {backbone_name(c)} | {c['input_size']} | {c['batch_size']} | {c['device']} | "
            f"{describe_options(c)} | {ips['median']:.2f} ({ips['q1']:.2f}-{ips['q3']:.2f}) | "
            f"{speedup} | {r['step_time_s']['median']:.3f} | {r['tflops_per_s']:.3f} | "
            f"{r['peak_memory_mib']:.0f} | {r['step_memory_mib']:.0f} |"
        )
    return "\n".join(rows)


def inference_table(results: list[dict[str, Any]]) -> str:
    """The Markdown table of inference results: latency at batch 1, throughput at ``batch``,
    GFLOP/s at ``batch``, and the warm-up's seconds (with exporting and compiling)."""
    baselines = {
        setting_key(r["config"]): (r["latency_s"]["median"], r["images_per_s"]["median"])
        for r in results
        if describe_options(r["config"]) == "fp32 eager"
    }
    rows = [
        "| backbone | input | device | options | latency ms (median, IQR) | vs fp32 eager | batch "
        "| images/s (median, IQR) | vs fp32 eager | GFLOP/s | peak MiB | warm-up s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        c, latency, ips = r["config"], r["latency_s"], r["images_per_s"]
        baseline = baselines.get(setting_key(c))
        faster = ("-", "-")
        if baseline:
            faster = (
                f"{baseline[0] / latency['median']:.2f}x",
                f"{ips['median'] / baseline[1]:.2f}x",
            )
        warmup = r["export_s"] + sum(r["warmup_latency_s"]) + sum(r["warmup_batch_s"])
        rows.append(
            f"| {backbone_name(c)} | {c['input_size']} | {c['device']} | {describe_options(c)} | "
            f"{1e3 * latency['median']:.1f} ({1e3 * latency['q1']:.1f}-{1e3 * latency['q3']:.1f})"
            f" | {faster[0]} | {c['batch_size']} | {ips['median']:.2f} ({ips['q1']:.2f}-"
            f"{ips['q3']:.2f}) | {faster[1]} | {r['gflops_per_s']:.1f} | "
            f"{r['peak_memory_mib']:.0f} | {warmup:.1f} |"
        )
    return "\n".join(rows)


def data_table(results: list[dict[str, Any]]) -> str:
    """The Markdown table of the data pipeline against the model, for training results with a
    ``data`` entry (:func:`~hgtrain.tools.benchmark.training_steps.data_throughput`): samples/s of
    one worker (CPU time), the workers' together against the measured images/s, the workers
    needed, and whether the data pipeline limits training."""
    rows = [
        "| backbone | input | batch | device | options | model images/s | samples/s per worker "
        "(CPU time) | workers | workers' samples/s | data / model | workers needed "
        "| data limits training |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        c, d, model = r["config"], r["data"], r["images_per_s"]["median"]
        rows.append(
            f"| {backbone_name(c)} | {c['input_size']} | {c['batch_size']} | {c['device']} | "
            f"{describe_options(c)} | {model:.2f} | "
            f"{d['samples_per_s_per_worker_cpu_time']:.1f} | {d['workers']} | "
            f"{d['samples_per_s_with_workers']:.1f} | "
            f"{d['samples_per_s_with_workers'] / model:.2f} | {d['workers_needed']} | "
            f"{'yes' if d['limits_training'] else 'no'} |"
        )
    return "\n".join(rows)
