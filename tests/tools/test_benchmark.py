"""The benchmark: training steps, and activation checkpointing, the memory option it measures;
inference with decoding, eager, exported or compiled."""

import copy
import json
import math
import subprocess
import sys
from dataclasses import asdict, replace

import pytest
import torch

from hgtrain import build_backbone
from hgtrain.models import HourglassBackbone
from hgtrain.models.blocks import CheckpointableBlock
from hgtrain.models.flops import inference_flops, training_flops
from hgtrain.tools.benchmark import build_parser, inference, main, training_steps
from hgtrain.tools.benchmark.inference import TEST_SIZES, InferenceConfig, Predictor, build_network
from hgtrain.tools.benchmark.report import describe_setting, format_table
from hgtrain.tools.benchmark.training_steps import (
    TRAINING_SIZES,
    BenchmarkConfig,
    benchmark,
    build_module,
    data_throughput,
    versus,
)
from hgtrain.tools.data_benchmark import worker_balance
from tests.helpers import tiny_backbone, tiny_config


def train_once(backbone: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = backbone(x)
    loss = sum(f.square().mean() for f in out.features)
    loss = loss + sum(m.mean() for stack in out.mergs for m in stack)
    loss.backward()
    return loss.detach()


@pytest.mark.parametrize("mode", ["stacks", "blocks"])
@pytest.mark.parametrize("variant", ["cornernet", "saccade", "squeeze"])
def test_checkpointing_gives_the_same_loss_gradients_and_statistics(variant, mode):
    torch.manual_seed(0)
    plain = build_backbone(tiny_config(variant)).train()
    checkpointed = copy.deepcopy(plain)
    checkpointed.activation_checkpointing = mode
    x = torch.randn(2, 3, 64, 64)

    assert torch.equal(train_once(plain, x), train_once(checkpointed, x))
    for (name, a), b in zip(plain.named_parameters(), checkpointed.parameters(), strict=True):
        assert torch.equal(a.grad, b.grad), name
    # The recomputation in the backward pass must not count the batch twice.
    for (name, a), b in zip(plain.named_buffers(), checkpointed.buffers(), strict=True):
        assert torch.equal(a, b), name


def test_checkpointing_changes_no_state_dict_keys():
    backbone = build_backbone(tiny_config("squeeze"))
    keys = backbone.state_dict().keys()
    for mode in ("stacks", "blocks", "none"):
        backbone.activation_checkpointing = mode
        assert backbone.state_dict().keys() == keys


def test_checkpointing_blocks_covers_every_block_of_the_backbone():
    backbone = HourglassBackbone(tiny_config("cornernet"), activation_checkpointing="blocks")
    blocks = {name: m for name, m in backbone.named_modules() if isinstance(m, CheckpointableBlock)}
    assert {name.split(".")[0] for name in blocks} == {"pre", "hgs", "cnvs", "inters"}
    assert all(block.checkpointed for block in blocks.values())
    backbone.activation_checkpointing = "stacks"
    assert not any(block.checkpointed for block in blocks.values())


def test_an_unknown_checkpointing_mode_is_rejected():
    with pytest.raises(ValueError, match="one of none, stacks, blocks, got 'layers'"):
        build_backbone(tiny_config("squeeze")).activation_checkpointing = "layers"
    with pytest.raises(ValueError, match="activation_checkpointing=layers: must be one of none"):
        BenchmarkConfig(activation_checkpointing="layers")


def count_calls(module: torch.nn.Module, method: str) -> list[int]:
    """Counts the calls of ``module.<method>`` from now on, recomputations included."""
    calls = []
    original = getattr(module, method)

    def counted(*args):
        calls.append(1)
        return original(*args)

    setattr(module, method, counted)
    return calls


@pytest.mark.parametrize(
    ("mode", "part", "method"), [("stacks", "hgs.0", "forward"), ("blocks", "pre.1", "compute")]
)
def test_checkpointing_is_off_in_evaluation_and_without_grad(mode, part, method):
    backbone = HourglassBackbone(tiny_config("squeeze"), activation_checkpointing=mode)
    calls = count_calls(backbone.get_submodule(part), method)
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
    assert result["flops_per_step"] == training_flops(build_module(config).model.config, 2) > 0
    assert result["tflops_per_s"] == pytest.approx(
        result["flops_per_step"] / times["median"] / 1e12
    )
    # Weights and two Adam moments: three float32 copies of every parameter (plus BN buffers).
    assert result["state_memory_mib"] >= 3 * 4 * result["parameters"] / 2**20
    assert result["peak_memory_mib"] >= 0 and result["memory_method"]


def test_flops_double_with_the_batch_and_ignore_checkpointing():
    base = BenchmarkConfig(backbone=tiny_config("saccade"), input_size=64, batch_size=1)
    network = build_module(base).model.config
    one = training_flops(network, 1)
    assert training_flops(network, 2) == 2 * one
    assert (
        training_flops(
            build_module(replace(base, activation_checkpointing="blocks")).model.config, 1
        )
        == one
    )
    assert inference_flops(network, 2) == 2 * inference_flops(network, 1)


def test_flops_of_a_full_training_step_are_about_three_forwards():
    # Spec section 8: the Squeeze backbone at 511 px costs 74 GFLOPs forward, 131 with the heads
    # of both stacks; fwd + bwd ~ 3x. Inference runs the last stack's heads only.
    network = build_module(BenchmarkConfig(backbone="squeeze", input_size=511)).model.config
    assert 3 * 74e9 < training_flops(network, 1) < 3 * 131e9
    assert 74e9 < inference_flops(network, 1) < 131e9


def test_command_line_writes_json(tmp_path):
    # A fresh process, as the CPU peak-memory figure is only valid in one (ru_maxrss never drops).
    path = tmp_path / "out" / "result.json"
    command = "--backbone squeeze --input_size 127 --batch_size 2 --steps 1 --warmup 0"
    subprocess.run(
        [sys.executable, "-m", "hgtrain.tools.benchmark", *command.split(), "--json", str(path)],
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


@pytest.mark.parametrize(
    ("option", "mode"), [("checkpoint_stacks", "stacks"), ("checkpoint_blocks", "blocks")]
)
def test_versus_interleaves_two_configurations_from_the_same_weights(option, mode):
    config = BenchmarkConfig(
        backbone=tiny_config("cornernet"), input_size=64, batch_size=2, steps=2, warmup=1
    )
    result = versus(config, option)
    assert list(result["step_time_s"]) == ["base", option]
    # Checkpointing recomputes exactly, so both sides take the very same optimisation steps.
    assert result["losses"]["base"] == result["losses"][option]
    t = result["step_time_s"]
    assert result["time_ratio"] == pytest.approx(t[option]["median"] / t["base"]["median"])
    peak, state, step = (result[f"{k}_memory_mib"] for k in ("peak", "state", "step"))
    assert state["base"] == state[option] > 0  # the same weights and Adam state
    assert peak["base"] == pytest.approx(state["base"] + step["base"])
    assert result["memory_ratio"] == pytest.approx(peak[option] / peak["base"])
    with pytest.raises(ValueError, match="already on"):
        versus(replace(config, activation_checkpointing=mode), option)


def test_versus_measures_what_block_checkpointing_saves_per_step():
    """Each side's step gets its own peak in one process: the blocks keep only their inputs (the
    heads, 256 channels wide and not checkpointed, keep theirs: a backbone of 64 channels makes
    the blocks' share visible)."""
    backbone = tiny_config("cornernet", dims=[64, 64, 96, 128], feature_dim=64, stem_channels=32)
    config = BenchmarkConfig(backbone=backbone, input_size=256, batch_size=4, steps=2, warmup=1)
    result = versus(config, "checkpoint_blocks")
    step = result["step_memory_mib"]
    assert step["base"] > 200
    assert result["step_memory_ratio"] < 0.85, step
    assert result["memory_ratio"] < 0.9


def test_settings_name_the_checkpointing_mode():
    config = asdict(BenchmarkConfig(activation_checkpointing="blocks", channels_last=True))
    assert (
        describe_setting(config) == "squeeze @511 x2 cpu fp32 eager checkpoint_blocks channels_last"
    )
    # A result written before the modes, with checkpoint_stacks: true.
    earlier = {
        k: v for k, v in asdict(BenchmarkConfig()).items() if k != "activation_checkpointing"
    }
    assert describe_setting({**earlier, "checkpoint_stacks": True}).endswith(
        "eager checkpoint_stacks"
    )


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

    monkeypatch.setattr(training_steps, "benchmark", fake_benchmark)
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

    monkeypatch.setattr(training_steps, "versus", fake_versus)
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
        ("--activation_checkpointing layers", "argument --activation_checkpointing: invalid"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_option_and_the_value(args, message, capsys):
    with pytest.raises(SystemExit) as exit:
        main([*args.split(), "--device", "cpu"])
    assert exit.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"hgtrain benchmark: {message}")


def tiny_inference(**options) -> InferenceConfig:
    """A tiny Squeeze-like network at 64 px, batch 2: a fast inference configuration."""
    defaults = dict(backbone=tiny_backbone("squeeze"), input_size=64, batch_size=2, steps=3)
    return InferenceConfig(**{**defaults, "warmup": 1, **options})


def test_inference_reports_latency_throughput_flops_and_memory():
    config = tiny_inference()
    result = inference.benchmark(config)
    latency, batch, ips = result["latency_s"], result["batch_time_s"], result["images_per_s"]
    assert result["mode"] == "inference" and result["runtime"] == "eager"
    for times in (latency, batch):
        assert 0 < times["min"] <= times["q1"] <= times["median"] <= times["q3"] <= times["max"]
    assert ips["median"] == pytest.approx(2 / batch["median"])
    assert ips["min"] <= ips["q1"] <= ips["median"] <= ips["q3"] <= ips["max"]
    assert len(result["warmup_latency_s"]) == len(result["warmup_batch_s"]) == 1
    flops = inference_flops(build_network(config).config, 1)
    assert result["flops_per_image"] == flops > 0
    assert result["gflops_per_s"] == pytest.approx(2 * flops / batch["median"] / 1e9)
    assert result["latency_gflops_per_s"] == pytest.approx(flops / latency["median"] / 1e9)
    assert 0 < result["keypoints_per_image"] <= 100  # decoded: top_k is 100
    assert result["state_memory_mib"] >= 4 * result["parameters"] / 2**20
    assert result["peak_memory_mib"] >= 0 and result["memory_method"]
    assert result["export_s"] == 0


def test_batch_one_is_timed_once():
    result = inference.benchmark(tiny_inference(batch_size=1, steps=2))
    assert result["batch_time_s"] == result["latency_s"]
    assert result["warmup_batch_s"] == []


def test_an_inference_call_returns_the_decoded_keypoints_of_predict():
    config = tiny_inference()
    torch.manual_seed(0)
    predictor, inputs, _ = inference.prepare(config)
    assert isinstance(predictor, Predictor) and list(inputs) == [1, 2]
    images = inputs[2]
    assert images.dtype == torch.float32 and images.min() >= 0 and images.max() <= 1
    predictions = predictor(images)
    expected = predictor.network.predict(images)
    assert len(predictions) == 2
    for got, want in zip(predictions, expected, strict=True):
        assert 0 < len(got["keypoints"]) <= 100
        assert ((got["keypoints"] >= 0) & (got["keypoints"] <= 64)).all()
        for key in ("keypoints", "scores", "labels"):
            assert torch.equal(got[key], want[key]), key


@pytest.mark.parametrize("option", ["export", "channels_last"])
def test_exported_and_channels_last_calls_agree_with_eager(option):
    config = tiny_inference(batch_size=3)
    results = {}
    for name, side in (("eager", config), (option, replace(config, **{option: True}))):
        torch.manual_seed(0)
        predictor, inputs, export_s = inference.prepare(side)
        assert (export_s > 0) == (name == "export")
        results[name] = [predictor(images) for images in inputs.values()]
    for eager, other in zip(results["eager"], results[option], strict=True):
        for a, b in zip(eager, other, strict=True):
            assert torch.equal(a["labels"], b["labels"])
            torch.testing.assert_close(a["keypoints"], b["keypoints"])
            torch.testing.assert_close(a["scores"], b["scores"])


@pytest.mark.slow
def test_compiled_calls_agree_with_eager():
    config = tiny_inference(batch_size=1)
    results = []
    for side in (config, replace(config, compile=True)):
        torch.manual_seed(0)
        predictor, inputs, _ = inference.prepare(side)
        results.append(predictor(inputs[1])[0])
    eager, compiled = results
    assert torch.equal(eager["labels"], compiled["labels"])
    torch.testing.assert_close(eager["keypoints"], compiled["keypoints"])


def test_inference_versus_interleaves_both_batch_sizes():
    config = tiny_inference(steps=2)
    result = inference.versus(config, "bf16")
    assert result["mode"] == "inference" and result["versus"] == "bf16"
    latency, batch = result["latency_s"], result["batch_time_s"]
    assert list(latency) == list(batch) == ["base", "bf16"]
    assert result["latency_ratio"] == pytest.approx(
        latency["bf16"]["median"] / latency["base"]["median"]
    )
    assert result["time_ratio"] == pytest.approx(batch["bf16"]["median"] / batch["base"]["median"])
    assert result["images_per_s"]["base"]["median"] == pytest.approx(2 / batch["base"]["median"])
    with pytest.raises(ValueError, match="already on"):
        inference.versus(replace(config, precision="bf16"), "bf16")
    with pytest.raises(ValueError, match="versus=compile: export=True: "):
        inference.versus(replace(config, export=True), "compile")
    with pytest.raises(ValueError, match="versus=fused_optimizer: must be one of"):
        inference.versus(config, "fused_optimizer")


def test_default_inference_input_size_is_the_test_size():
    assert [InferenceConfig(backbone=name).input_size for name in TEST_SIZES] == [511, 255, 511]


def test_inference_command_line_times_a_registered_network_and_writes_json(tmp_path, capsys):
    path = tmp_path / "inference.json"
    command = "--mode inference --backbone squeeze --input_size 127 --batch_size 2 --steps 1"
    result = main([*command.split(), "--warmup", "0", "--device", "cpu", "--json", str(path)])
    announced, summary = capsys.readouterr().out.splitlines()
    assert announced == (
        "timing squeeze @127 cpu fp32 eager inference at batch 1 and batch 2 "
        "(calls at each: 0 warm-up, 1 timed)"
    )
    assert summary.startswith("squeeze @127 cpu fp32 eager inference: latency ")
    assert "img/s at batch 2" in summary
    assert json.loads(path.read_text()) == result
    assert result["config"]["backbone"] == "squeeze" and result["keypoints_per_image"] > 0


def fake_inference_result(config: InferenceConfig, latency: float, images_per_s: float) -> dict:
    """What ``inference.benchmark`` returns, with made-up numbers: enough for the reports."""
    return {
        "mode": "inference",
        "config": asdict(config),
        "latency_s": {"median": latency, "q1": latency, "q3": latency},
        "images_per_s": {"median": images_per_s, "q1": images_per_s, "q3": images_per_s},
        "gflops_per_s": 50.0,
        "keypoints_per_image": 100.0,
        "peak_memory_mib": 400.0,
        "state_memory_mib": 120.0,
        "call_memory_mib": 280.0,
        "export_s": 1.5,
        "warmup_latency_s": [0.5],
        "warmup_batch_s": [1.0],
    }


def test_tables_show_training_and_inference_rows(tmp_path):
    squeeze = InferenceConfig(input_size=127, device="cpu")
    results = [
        fake_result(BenchmarkConfig(input_size=127)),
        fake_inference_result(squeeze, 0.100, 20.0),
        fake_inference_result(replace(squeeze, export=True, channels_last=True), 0.080, 30.0),
    ]
    paths = []
    for index, result in enumerate(results):
        paths.append(tmp_path / f"{index}.json")
        paths[-1].write_text(json.dumps(result))
    training_table, inference_table = format_table(results).split("\n\n")
    assert len(training_table.splitlines()) == 3
    header, _, base, exported = inference_table.splitlines()
    assert header.startswith("| backbone | input | device | options | latency ms")
    assert base == (
        "| squeeze | 127 | cpu | fp32 eager | 100.0 (100.0-100.0) | 1.00x | 4 | "
        "20.00 (20.00-20.00) | 1.00x | 50.0 | 400 | 3.0 |"
    )
    assert "| fp32 export channels_last | 80.0 (80.0-80.0) | 1.25x | 4 | 30.00" in exported
    assert main(["--table", *map(str, paths)]) is None


def test_tables_show_the_data_pipeline_of_runs_with_data_workers(tmp_path, capsys):
    # gpu_check.sh writes table.md with --table from runs timed with --data_workers
    base = BenchmarkConfig(input_size=127)
    fast = replace(base, precision="bf16", channels_last=True, data_workers=2)
    with_data = {
        **fake_result(fast),  # 4 images/s
        "data": {
            "samples_per_s_per_worker": 1.6,
            "samples_per_s_per_worker_cpu_time": 1.5,
            **worker_balance(1.5, workers=2, images_per_s=4.0),
        },
    }
    results = [fake_result(base), with_data, fake_inference_result(InferenceConfig(), 0.1, 20.0)]
    training_table, inference_table, data_table = format_table(results).split("\n\n")
    assert len(training_table.splitlines()) == 4 and len(inference_table.splitlines()) == 3
    header, _, row = data_table.splitlines()
    assert header == (
        "| backbone | input | batch | device | options | model images/s | samples/s per worker "
        "(CPU time) | workers | workers' samples/s | data / model | workers needed "
        "| data limits training |"
    )
    assert (
        row
        == "| squeeze | 127 | 2 | cpu | bf16 eager channels_last | 4.00 | 1.5 | 2 | 3.0 | 0.75 | 3 | yes |"
    )
    paths = []
    for index, result in enumerate(results):
        paths.append(tmp_path / f"{index}.json")
        paths[-1].write_text(json.dumps(result))
    main(["--table", *map(str, paths)])
    assert capsys.readouterr().out.rstrip("\n").endswith(row)
    assert "data limits training" not in format_table(results[:1] + results[2:])


def test_inference_versus_announces_both_configurations(monkeypatch, capsys):
    def fake_versus(config, option):
        times = {"base": {"median": 0.2, "q1": 0.2, "q3": 0.2}, option: {"median": 0.1}}
        ratio = {"median": 0.5, "q1": 0.4, "q3": 0.6}
        return {
            "mode": "inference",
            "config": asdict(config),
            "latency_s": times,
            "latency_ratio": 0.5,
            "paired_latency_ratio": ratio,
            "images_per_s": {"base": {"median": 20.0}, option: {"median": 40.0}},
            "time_ratio": 0.5,
            "paired_time_ratio": ratio,
        }

    monkeypatch.setattr(inference, "versus", fake_versus)
    command = "--mode inference --input_size 127 --device cpu --steps 3 --versus export"
    main(command.split())
    announced, summary = capsys.readouterr().out.splitlines()
    assert announced == (
        "interleaving squeeze @127 cpu fp32 eager inference and squeeze @127 cpu fp32 export "
        "inference at batch 1 and batch 4 (rounds: 2 warm-up, 3 timed)"
    )
    assert summary == (
        "squeeze @127 cpu fp32 eager inference: latency base 200.0 ms, export 100.0 ms; time "
        "ratio export/base 0.500 (per round: median 0.500, IQR 0.400-0.600); batch 4: base 20.00 "
        "img/s, export 40.00 img/s; time ratio 0.500 (per round: median 0.500, IQR 0.400-0.600)"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ("--mode serving", "argument --mode: invalid choice: 'serving'"),
        ("--mode inference --batch_size 0", "--batch_size=0: must be >= 1"),
        ("--mode inference --fused_optimizer true", "--fused_optimizer=True: training mode only"),
        ("--mode inference --data_workers 2", "--data_workers=2: training mode only"),
        (
            "--mode inference --activation_checkpointing blocks",
            "--activation_checkpointing=blocks: training mode only",
        ),
        ("--export true", "--export=True: inference mode only; not with --mode training"),
        ("--mode inference --compile true --export true", "--export=True: times the exported"),
        ("--mode inference --versus checkpoint_stacks", "--versus=checkpoint_stacks: must be"),
        ("--mode inference --export true --versus export", "--versus=export: export is already"),
    ],
)
def test_a_bad_inference_value_is_one_line_naming_the_option(args, message, capsys):
    with pytest.raises(SystemExit) as exit:
        main([*args.split(), "--device", "cpu"])
    assert exit.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"hgtrain benchmark: {message}")


def test_float32_channels_last_training_is_refused_where_onednn_corrupts_memory(monkeypatch):
    monkeypatch.setattr(training_steps, "onednn_corrupts_nhwc_backward", lambda: True)
    with pytest.raises(ValueError, match=r"^channels_last=True: .* trips oneDNN"):
        training_steps.check_runnable(BenchmarkConfig(channels_last=True))
    with pytest.raises(ValueError, match=r"^versus=channels_last: .*add --precision bf16"):
        training_steps.check_runnable(BenchmarkConfig(), "channels_last")
    training_steps.check_runnable(BenchmarkConfig(channels_last=True, precision="bf16"))
    monkeypatch.setattr(training_steps, "onednn_corrupts_nhwc_backward", lambda: False)
    training_steps.check_runnable(BenchmarkConfig(channels_last=True), "bf16")
