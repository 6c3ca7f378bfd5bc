"""A tiny hourglass learns the synthetic corners: the whole pipeline trains, not just runs.

Fast enough for every test run: the quickstart's recipe (one-cycle learning rate, channels_last)
on 64 px boxes, 1024 images, sets generated, trained and tested within 15 seconds."""

import time

import lightning as L
import torch

from hgtrain.data.generator.scene import SceneConfig
from hgtrain.data.loading.datamodule import KeypointDataModule
from hgtrain.models import HourglassConfig
from hgtrain.training.module import HourglassKeypointModule


def test_a_tiny_model_reaches_point_ap_0_9_at_4_px_within_15_seconds(tmp_path):
    L.seed_everything(0)
    data = KeypointDataModule(
        root=str(tmp_path),
        image_size=64,
        scene=SceneConfig(kinds={"box": 1.0}, objects=(1, 3)),
        noise=False,
        train_length=1024,
        val_size=16,
        test_size=128,
        test_sets=["clean"],
        batch_size=16,
        num_workers=0,
    )
    backbone = HourglassConfig(
        n=2, dims=[16, 24, 32], modules=[1, 1, 1], stacks=2, stem_channels=8, feature_dim=16
    )
    model = HourglassKeypointModule(
        backbone=backbone,
        num_classes=data.num_classes,
        input_size=64,
        head_dim=16,
        optimizer=lambda params: torch.optim.Adam(params, lr=8e-3),
        lr_schedule="one_cycle",
        channels_last=True,
    )
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
    )
    start = time.perf_counter()
    data.prepare_data()
    trainer.fit(model, datamodule=data)
    (results,) = trainer.test(model, datamodule=data, verbose=False)
    elapsed = time.perf_counter() - start
    assert results["test_clean/map@4"] >= 0.9, results
    assert elapsed < 15, f"set generation, training and test took {elapsed:.1f} s"
