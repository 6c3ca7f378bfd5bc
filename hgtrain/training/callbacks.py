"""Callbacks that show what the network learns (in TensorBoard or any other logger), and keep the
run's facts with it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.loggers.logger import DummyLogger, Logger
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only
from torch import Tensor
from torchvision.io import write_png
from torchvision.utils import draw_keypoints, make_grid

from hgtrain.models.heads import HeadOutput

GROUND_TRUTH_COLOUR = (0, 255, 0)
PREDICTION_COLOUR = (255, 0, 0)


def batch_size(batch: Any) -> int:
    """Images in a ``(images, targets)`` batch, for Lightning's ``ThroughputMonitor``."""
    return batch[0].shape[0]


def real_loggers(trainer: L.Trainer) -> list[Logger]:
    """The run's loggers that record something: not the ``DummyLogger`` of ``fast_dev_run``."""
    return [logger for logger in trainer.loggers if not isinstance(logger, DummyLogger)]


def write_image(trainer: L.Trainer, tag: str, image: Tensor, step: int) -> bool:
    """Log a uint8 CHW image with every logger of the run: TensorBoard's ``add_image``, a logger's
    own ``log_image`` (Weights & Biases, Neptune...), otherwise a PNG file under the run folder
    (``<log_dir>/images/<tag>/step_<N>.png``). ``False`` when the run has no logger."""
    loggers = real_loggers(trainer)
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(tag, image, step)
        elif callable(getattr(logger, "log_image", None)):
            logger.log_image(key=tag, images=[image.permute(1, 2, 0).numpy()], step=step)
        else:
            folder = (
                Path(getattr(logger, "log_dir", None) or trainer.log_dir or ".") / "images" / tag
            )
            folder.mkdir(parents=True, exist_ok=True)
            write_png(image, str(folder / f"step_{step}.png"))
    return bool(loggers)


def draw_keypoint_overlay(
    image: Tensor, truth: Tensor, predicted: Tensor, radius: int = 2
) -> Tensor:
    """An RGB uint8 image with ground truth (green) and predictions (red) marked.

    Keypoints are continuous (x, y) in pixels where pixel i covers [i, i + 1); ``draw_keypoints``
    puts a mark centred at integer coordinates, so points are shifted by -0.5 to land where they are.
    """
    image = draw_keypoints(
        image, (truth - 0.5).unsqueeze(0), colors=GROUND_TRUTH_COLOUR, radius=radius
    )
    return draw_keypoints(image, (predicted - 0.5).unsqueeze(0), colors=PREDICTION_COLOUR, radius=1)


def heatmap_grid(maps: list[Tensor], size: tuple[int, int]) -> Tensor:
    """Sigmoid heatmaps (max over channels) of several stacks/scales, resized and side by side."""
    tiles = [
        F.interpolate(
            m.float().sigmoid().amax(dim=0, keepdim=True)[None], size=size, mode="nearest"
        )[0]
        for m in maps
    ]
    return make_grid(tiles, nrow=len(tiles), padding=2, pad_value=1.0)


class KeypointImageLogger(L.Callback):
    """At each validation epoch, logs the first validation images with ground-truth vs predicted
    keypoints, and the heatmaps of every stack (and the Saccade merg maps), with every logger of
    the run (see :func:`write_image`).

    Args:
        num_images: images from the first validation batch to show.
        score_threshold: predictions drawn only above this score.
    """

    def __init__(self, num_images: int = 4, score_threshold: float = 0.3) -> None:
        self.num_images = num_images
        self.score_threshold = score_threshold
        self.warned = False

    @rank_zero_only
    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: HeadOutput,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if batch_idx != 0 or trainer.sanity_checking or trainer.fast_dev_run or not self.num_images:
            return
        images, targets = batch
        count = min(self.num_images, images.shape[0])
        size = tuple(images.shape[-2:])
        predictions = pl_module.decode(outputs, size)
        overlays, heatmaps, mergs = [], [], []
        for i in range(count):
            keep = predictions[i]["scores"] >= self.score_threshold
            overlays.append(
                draw_keypoint_overlay(
                    images[i].cpu(),
                    targets[i]["keypoints"].cpu(),
                    predictions[i]["keypoints"][keep].cpu(),
                )
            )
            heatmaps.append(heatmap_grid([stack[i] for stack in outputs.heatmaps], size))
            if any(outputs.merg_logits):
                mergs.append(
                    heatmap_grid([m[i] for stack in outputs.merg_logits for m in stack], size)
                )
        step = trainer.global_step
        logged = {
            "val/keypoints": make_grid(overlays, nrow=count),
            "val/heatmaps_per_stack": to_uint8(make_grid(heatmaps, nrow=1)),
        }
        if mergs:
            logged["val/merg_maps_per_stack_and_scale"] = to_uint8(make_grid(mergs, nrow=1))
        for tag, image in logged.items():
            if not write_image(trainer, tag, image, step) and not self.warned:
                rank_zero_info("hgtrain: no logger, so KeypointImageLogger draws no images.")
                self.warned = True


def to_uint8(image: Tensor) -> Tensor:
    """A [0, 1] float image as uint8, the form every logger and PNG writer takes."""
    return image.clamp(0, 1).mul(255).round().to(torch.uint8)


class RunFactsLogger(L.Callback):
    """Logs the facts of a run once: parameter counts, world size, the effective (global) batch
    size and the starting learning rate. TensorBoard gets them as hparam metrics beside every model
    **and** data argument (use it with ``TensorBoardLogger(default_hp_metric=False)``); other
    loggers get them as metrics at step 0 (Lightning itself logs their hyperparameters)."""

    @rank_zero_only
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        datamodule = trainer.datamodule
        per_device = getattr(datamodule, "batch_size", None)
        facts = {
            "params/backbone": sum(p.numel() for p in pl_module.backbone.parameters()),
            "params/heads": sum(p.numel() for p in pl_module.heads.parameters()),
            "run/world_size": trainer.world_size,
            "run/learning_rate": trainer.optimizers[0].param_groups[0]["lr"],
        }
        if per_device is not None:
            facts["run/effective_batch_size"] = (
                per_device * trainer.world_size * trainer.accumulate_grad_batches
            )
        arguments = {
            name: value
            for name, value in {**getattr(datamodule, "hparams", {}), **pl_module.hparams}.items()
            if not name.startswith("_")
        }
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.log_hyperparams(arguments, facts)
            else:
                logger.log_metrics(facts, step=0)
