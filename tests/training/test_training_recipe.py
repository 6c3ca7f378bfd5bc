"""The training choices of the quickstart recipe: learning-rate schedules and channels_last."""

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import BackboneFinetuning
from torch.utils.data import DataLoader

from hgtrain.errors import ConfigError
from tests.checkpoints import fit, tiny_module
from tests.helpers import keypoint_batch


class LearningRates(L.Callback):
    """The learning rate of every optimizer step, as the step ran."""

    def __init__(self) -> None:
        self.rates: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.rates.append(trainer.optimizers[0].param_groups[0]["lr"])


def rates_of(steps: int = 20, **options) -> list[float]:
    rates = LearningRates()
    fit(tiny_module(**options), steps, callbacks=[rates])
    return rates.rates


def test_the_one_cycle_schedule_rises_to_the_optimizer_rate_then_anneals_over_the_run():
    rates = rates_of(
        20,
        optimizer=lambda params: torch.optim.Adam(params, lr=4e-3),
        lr_schedule="one_cycle",
        lr_warmup=0.25,
    )
    peak = rates.index(max(rates))
    assert rates[0] == pytest.approx(4e-3 / 25)
    assert 4 <= peak <= 5 and max(rates) == pytest.approx(4e-3, rel=1e-3)
    assert all(a > b for a, b in zip(rates[peak:], rates[peak + 1 :], strict=False))
    assert rates[-1] < 4e-3 / 100


def test_the_original_step_schedule_divides_the_rate_by_ten_after_lr_drop_at():
    rates = rates_of(20, lr_drop_at=0.5)
    assert rates[:10] == [pytest.approx(2.5e-4)] * 10
    assert rates[10:] == [pytest.approx(2.5e-5)] * 10


@pytest.mark.parametrize(
    ("name", "value"), [("lr_schedule", "cosine"), ("lr_warmup", 0.0), ("lr_warmup", 1.0)]
)
def test_a_bad_schedule_argument_is_named(name, value):
    with pytest.raises(ConfigError, match=f"model.{name}"):
        tiny_module(**{name: value})


def test_channels_last_keeps_the_weights_and_results_in_another_memory_layout():
    contiguous, nhwc = tiny_module(), tiny_module(channels_last=True)
    conv = nhwc.backbone.pre[0].conv.weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    assert all(
        torch.equal(a, b)
        for a, b in zip(contiguous.state_dict().values(), nhwc.state_dict().values(), strict=True)
    )
    images, _ = keypoint_batch()
    contiguous.eval(), nhwc.eval()
    with torch.no_grad():
        expected, got = contiguous(images), nhwc(images)
    torch.testing.assert_close(got.heatmaps[-1], expected.heatmaps[-1], rtol=1e-4, atol=1e-4)


def test_a_channels_last_run_trains_and_saves_weights_that_load_anywhere(tmp_path):
    module = tiny_module(channels_last=True)
    trainer = fit(module, 2)
    trainer.save_checkpoint(tmp_path / "nhwc.ckpt")
    restored = tiny_module()
    state = torch.load(tmp_path / "nhwc.ckpt", weights_only=True)["state_dict"]
    restored.load_state_dict(state)
    assert torch.equal(restored.backbone.pre[0].conv.weight, module.backbone.pre[0].conv.weight)


def test_a_resumed_one_cycle_run_cannot_be_made_longer(tmp_path):
    one_cycle = {"lr_schedule": "one_cycle"}
    fit(tiny_module(**one_cycle), 4).save_checkpoint(tmp_path / "last.ckpt")
    batches = DataLoader([keypoint_batch(seed=i) for i in range(8)], batch_size=None)

    def resume(steps: int) -> L.Trainer:
        trainer = L.Trainer(
            max_steps=steps, accelerator="cpu", logger=False, enable_checkpointing=False
        )
        trainer.fit(tiny_module(**one_cycle), batches, ckpt_path=tmp_path / "last.ckpt")
        return trainer

    with pytest.raises(ConfigError, match="spans 4 steps, this run 8: resume with"):
        resume(8)
    assert resume(4).global_step == 4


def test_one_cycle_with_a_finetuning_callback_is_refused_before_training():
    unfreeze = BackboneFinetuning(unfreeze_backbone_at_epoch=1)
    with pytest.raises(ConfigError, match=r"BackboneFinetuning.*--model\.lr_schedule step"):
        fit(tiny_module(lr_schedule="one_cycle"), 2, callbacks=[unfreeze])


@pytest.mark.parametrize("schedule", ["step", "one_cycle"])
def test_a_run_bounded_only_by_time_names_what_the_built_in_schedule_needs(schedule):
    batches = DataLoader([keypoint_batch(seed=i) for i in range(4)], batch_size=None)
    trainer = L.Trainer(
        max_epochs=-1,
        max_time="00:00:00:30",
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
    )
    with pytest.raises(ConfigError, match=r"no step bound .* set trainer\.max_steps"):
        trainer.fit(tiny_module(lr_schedule=schedule), batches)


def stem_is_channels_last(module) -> bool:
    return module.backbone.pre[0].conv.weight.is_contiguous(memory_format=torch.channels_last)


def test_float32_channels_last_on_a_cpu_without_avx512_trains_in_nchw_and_says_why(monkeypatch):
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    module = tiny_module(channels_last=True)
    with pytest.warns(UserWarning, match=r"channels_last is off for this run: in float32 .*AVX2"):
        fit(module, 1)
    assert not stem_is_channels_last(module)


def test_bf16_training_keeps_channels_last_on_any_cpu(monkeypatch):
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    module = tiny_module(channels_last=True)
    fit(module, 1, precision="bf16-mixed")
    assert stem_is_channels_last(module)


def test_bf16_on_a_cpu_without_native_bf16_says_to_train_in_float32(monkeypatch):
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    with pytest.warns(UserWarning, match=r"no native bf16 .* add --trainer.precision 32-true"):
        fit(tiny_module(), 1, precision="bf16-mixed")
