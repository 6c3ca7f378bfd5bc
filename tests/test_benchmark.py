"""The training-step benchmark, and activation checkpointing, the memory option it measures."""

import copy
import json
import math
import subprocess
import sys
from dataclasses import asdict, replace

import pytest
import torch

import hgtrain.benchmark as tool
from hgtrain import build_backbone
from hgtrain.benchmark import (
    TRAINING_SIZES,
    BenchmarkConfig,
    benchmark,
    build_parser,
    count_flops,
    data_throughput,
    format_table,
    main,
    versus,
)

from .models.conftest import tiny_config


def train_once(backbone: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = backbone(x)
    loss = sum(f.square().mean() for f in out.features)
    loss = loss + sum(m.mean() for stack in out.mergs for m in stack)
    loss.backward()
    return loss.detach()


@pytest.mark.parametrize("variant", ["cornernet", "saccade", "squeeze"])
def test_checkpointed_stacks_give_the_same_loss_gradients_and_statistics(variant):
    torch.manual_seed(0)
    plain = build_backbone(tiny_config(variant)).train()
    checkpointed = copy.deepcopy(plain)
    checkpointed.checkpoint_stacks = True
    x = torch.randn(2, 3, 64, 64)

    assert torch.equal(train_once(plain, x), train_once(checkpointed, x))
    for (name, a), b in zip(plain.named_parameters(), checkpointed.parameters(), strict=True):
        assert torch.equal(a.grad, b.grad), name
    # The recomputation in the backward pass must not count the batch twice.
    for (name, a), b in zip(plain.named_buffers(), checkpointed.buffers(), strict=True):
        assert torch.equal(a, b), name


def test_checkpointing_is_off_in_evaluation_and_without_grad():
    backbone = build_backbone(tiny_config("squeeze"))
    backbone.checkpoint_stacks = True
    calls = []
    backbone.hgs[0].register_forward_pre_hook(lambda *args: calls.append(1))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        backbone.train()(x)
    backbone.eval()(x)
    assert len(calls) == 2
    backbone.train()
    train_once(backbone, x)
    assert len(calls) == 4  # forward, then the recomputation in backward


def test_benchmark_reports_sane_timings_flops_and_memory():
    config = BenchmarkConfig(
        backbone=tiny_config("squeeze"), input_size=64, batch_size=2, steps=3, warmup=1
    )
    result = benchmark(config)
    times, throughput = result["step_time_s"], result["images_per_s"]
    assert 0 < times["min"] <= times["q1"] <= times["median"] <= times["q3"] <= times["max"]
    assert throughput["median"] == pytest.approx(2 / times["median"])
    assert throughput["min"] <= throughput["q1"] <= throughput["median"] <= throughput["max"]
    assert len(result["warmup_step_s"]) == 1 and len(result["losses"]) == 3
    assert all(math.isfinite(loss) for loss in result["losses"])
    assert result["flops_per_step"] > 0
    assert result["tflops_per_s"] == pytest.approx(
        result["flops_per_step"] / times["median"] / 1e12
    )
    # Weights and two Adam moments: three float32 copies of every parameter (plus BN buffers).
    assert result["state_memory_mib"] >= 3 * 4 * result["parameters"] / 2**20
    assert result["peak_memory_mib"] >= 0 and result["memory_method"]


def test_flops_double_with_the_batch_and_ignore_checkpointing():
    base = BenchmarkConfig(backbone=tiny_config("saccade"), input_size=64, batch_size=1)
    one = count_flops(base)
    assert count_flops(replace(base, batch_size=2)) == 2 * one
    assert count_flops(replace(base, checkpoint_stacks=True)) == one


def test_flops_of_a_full_training_step_are_about_three_forwards():
    # Spec section 8: the Squeeze backbone at 511 px costs 74 GFLOPs forward; fwd + bwd ~ 3x.
    flops = count_flops(BenchmarkConfig(backbone="squeeze", input_size=511, batch_size=1))
    assert 3 * 74e9 < flops < 3 * 131e9


def test_command_line_writes_json(tmp_path):
    # A fresh process, as the CPU peak-memory figure is only valid in one (ru_maxrss never drops).
    path = tmp_path / "out" / "result.json"
    command = "--backbone squeeze --input_size 127 --batch_size 2 --steps 1 --warmup 0"
    subprocess.run(
        [sys.executable, "-m", "hgtrain.benchmark", *command.split(), "--json", str(path)],
        check=True,
        timeout=300,
    )
    result = json.loads(path.read_text())
    assert result["config"]["backbone"] == "squeeze"
    assert result["config"]["input_size"] == 127
    assert result["images_per_s"]["median"] > 0
    assert result["memory_reliable"] is True


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(backbone="cornernet", input_size=500), "input_size=500: .*nearest input sizes"),
        (dict(batch_size=0), "batch_size=0: must be >= 1"),
        (dict(precision="16"), "precision=16: must be"),
        (dict(device="tpu"), "device=tpu: must be"),
    ],
)
def test_bad_configurations_are_refused_with_the_fix(options, message):
    with pytest.raises(ValueError, match=message):
        BenchmarkConfig(**options)


def test_default_input_size_is_the_training_size():
    assert [BenchmarkConfig(backbone=name).input_size for name in TRAINING_SIZES] == [511, 255, 511]


def test_data_throughput_compares_workers_with_the_model():
    fast_model = data_throughput(64, workers=2, images_per_s=1e6, seconds=0.2)
    assert fast_model["samples_per_s_per_worker_cpu_time"] > 0
    assert fast_model["samples_per_s_with_workers"] == pytest.approx(
        2 * fast_model["samples_per_s_per_worker_cpu_time"]
    )
    assert fast_model["limits_training"] is True
    assert fast_model["workers_needed"] > 2


def test_table_shows_speedups_against_fp32_eager(tmp_path):
    def result(precision: str, channels_last: bool, images_per_s: float) -> dict:
        config = asdict(BenchmarkConfig(precision=precision, channels_last=channels_last))
        return {
            "config": config,
            "images_per_s": {"median": images_per_s, "q1": images_per_s, "q3": images_per_s},
            "step_time_s": {"median": 2 / images_per_s},
            "tflops_per_s": 0.1,
            "peak_memory_mib": 500.0,
            "step_memory_mib": 100.0,
        }

    paths = []
    for name, r in [("base", result("32", False, 10.0)), ("fast", result("bf16", True, 25.0))]:
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(r))
    table = format_table([json.loads(p.read_text()) for p in paths]).splitlines()
    assert len(table) == 4
    assert "| fp32 eager | 10.00 (10.00-10.00) | 1.00x |" in table[2]
    assert "| bf16 eager channels_last | 25.00 (25.00-25.00) | 2.50x |" in table[3]
    assert main(["--table", *map(str, paths)]) is None


def test_versus_interleaves_two_configurations_from_the_same_weights():
    config = BenchmarkConfig(
        backbone=tiny_config("cornernet"), input_size=64, batch_size=2, steps=2, warmup=1
    )
    result = versus(config, "checkpoint_stacks")
    assert list(result["step_time_s"]) == ["base", "checkpoint_stacks"]
    # Checkpointing recomputes exactly, so both sides take the very same optimisation steps.
    assert result["losses"]["base"] == result["losses"]["checkpoint_stacks"]
    t = result["step_time_s"]
    assert result["time_ratio"] == pytest.approx(
        t["checkpoint_stacks"]["median"] / t["base"]["median"]
    )
    with pytest.raises(ValueError, match="already on"):
        versus(replace(config, checkpoint_stacks=True), "checkpoint_stacks")


def fake_result(config: BenchmarkConfig) -> dict:
    """What ``benchmark`` returns, with made-up numbers: enough for ``summary``."""
    return {
        "config": asdict(config),
        "images_per_s": {"median": 4.0, "q1": 3.0, "q3": 5.0},
        "step_time_s": {"median": 0.5},
        "tflops_per_s": 0.1,
        "peak_memory_mib": 300.0,
        "state_memory_mib": 200.0,
        "step_memory_mib": 100.0,
    }


def test_command_line_takes_a_yaml_config_and_announces_the_configuration(
    tmp_path, monkeypatch, capsys
):
    timed = []

    def fake_benchmark(config):
        timed.append((config, capsys.readouterr().out))
        return fake_result(config)

    monkeypatch.setattr(tool, "benchmark", fake_benchmark)
    path = tmp_path / "benchmark.yaml"
    path.write_text(
        "backbone: saccade\ninput_size: 63\nbatch_size: 3\ndevice: cpu\nsteps: 4\nwarmup: 1\n"
        f"channels_last: true\nprecision: bf16\njson: {tmp_path / 'result.json'}\n"
    )
    result = main(["--config", str(path), "--batch_size", "4"])  # later options win
    ((config, before),) = timed
    assert config == BenchmarkConfig(
        backbone="saccade",
        input_size=63,
        batch_size=4,
        device="cpu",
        steps=4,
        warmup=1,
        channels_last=True,
        precision="bf16",
    )
    assert before == (
        "timing saccade @63 x4 cpu bf16 eager channels_last (steps: 1 warm-up, 4 timed)\n"
    )
    assert capsys.readouterr().out.startswith("saccade @63 x4 cpu bf16 eager channels_last: 4.00")
    assert json.loads((tmp_path / "result.json").read_text()) == result


def test_versus_announces_both_configurations(monkeypatch, capsys):
    def fake_versus(config, option):
        return {
            "config": asdict(config),
            "step_time_s": {"base": {"median": 1.0}, option: {"median": 0.5}},
            "time_ratio": 0.5,
            "paired_time_ratio": {"median": 0.5, "q1": 0.4, "q3": 0.6},
        }

    monkeypatch.setattr(tool, "versus", fake_versus)
    main(["--input_size", "127", "--device", "cpu", "--steps", "3", "--versus", "bf16"])
    announced, summary = capsys.readouterr().out.splitlines()
    assert announced == (
        "interleaving squeeze @127 x2 cpu fp32 eager and squeeze @127 x2 cpu bf16 eager "
        "(rounds: 2 warm-up, 3 timed)"
    )
    assert summary.startswith("squeeze @127 x2 cpu fp32 eager: base 1.000 s/step, bf16 0.500")


def test_switches_take_true_or_false():
    parser = build_parser()
    assert parser.parse_args(["--channels_last", "true"]).channels_last is True
    assert parser.parse_args(["--channels_last", "false"]).channels_last is False
    assert parser.parse_args([]).channels_last is False


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ("--batch_size=-4", "--batch_size=-4: must be >= 1"),
        ("--batch_size abc", "--batch_size: Expected a <class 'int'>. Got value: abc"),
        ("--backbone cornernet --input_size 500", "--input_size=500: Input height 500 does not"),
        ("--channels_last maybe", "--channels_last: Expected a <class 'bool'>. Got value: maybe"),
        ("--precision 16", "argument --precision: invalid choice: '16'"),
        ("--threads 0", "--threads=0: must be >= 1"),
        ("--versus fused_optimizer --fused_optimizer true", "--versus=fused_optimizer: "),
    ],
)
def test_a_bad_value_is_one_line_naming_the_option_and_the_value(args, message, capsys):
    with pytest.raises(SystemExit) as exit:
        main([*args.split(), "--device", "cpu"])
    assert exit.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"hgtrain benchmark: {message}")
