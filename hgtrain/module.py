"""The LightningModule: hourglass backbone + keypoint heads, trained with the focal loss.

Data flows one way: uint8 images and keypoint dicts from the DataModule -> targets encoded on the
device -> backbone and heads -> loss (training) or decoded keypoints (evaluation) -> point-AP
metrics -> the logger. The Trainer holds the engineering; the config holds the choices.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor

from hgtrain.models.backbone import HourglassBackbone, HourglassConfig
from hgtrain.models.heads import HeadOutput, KeypointHeads
from hgtrain.models.registry import build_backbone, get_config
from hgtrain.task.decode import decode_keypoints
from hgtrain.task.losses import HeatmapLoss, LossOutput
from hgtrain.task.metrics import PointAP
from hgtrain.task.targets import KeypointTargets, encode_merg_targets, encode_targets

Batch = tuple[Tensor, list[dict[str, Tensor]]]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def resolve_backbone_config(backbone: str | HourglassConfig | Mapping[str, Any]) -> HourglassConfig:
    """A config from a registered name, a config, or its plain-dict form (as stored in checkpoints)."""
    if isinstance(backbone, HourglassConfig):
        return backbone
    if isinstance(backbone, Mapping):
        return HourglassConfig(**backbone)
    return get_config(backbone)


class HourglassKeypointModule(L.LightningModule):
    """Trains an hourglass backbone to predict corner-keypoint heatmaps on every stack.

    Args:
        backbone: a registered name (``"squeeze"``, ``"cornernet"``, ``"saccade"``, or their
            aliases) or a full :class:`HourglassConfig`.
        num_classes: keypoint classes (linked from the DataModule by the CLI).
        input_size: side of the square training input in pixels (linked from the DataModule).
        head_kernel: kernel of the heads' first conv; ``None`` picks the original choice (1 for
            fire-block hourglasses as in CornerNet-Squeeze, 3 otherwise).
        head_dim: hidden channels of every head.
        corner_pool: put CornerNet's corner pooling in front of the heads.
        gaussian_iou: CornerNet's ``min_overlap`` for the Gaussian radius of each keypoint.
        sigma: a fixed Gaussian sigma in output cells instead (wins over ``gaussian_iou``).
        min_radius: smallest Gaussian radius in output cells.
        focal_weight, offset_weight, merg_weight: loss weights.
        offset_loss: ``"smooth_l1"`` (CornerNet) or ``"l1"`` (CenterNet).
        merg_targets: Saccade only: ``"keypoints"`` (class-agnostic keypoint maps at every merg
            scale) or ``"attention"`` (the original object-centre attention maps).
        top_k: keypoints kept per image when decoding.
        score_threshold: decoded keypoints below this score are dropped.
        metric_thresholds: distance thresholds (input pixels) of the point-AP metric.
        pixel_mean, pixel_std: input normalisation of [0, 1] RGB images.
        optimizer: optimizer factory; ``None`` is the original Adam with lr 2.5e-4.
        lr_scheduler: scheduler factory; ``None`` is the original schedule, the learning rate divided
            by 10 after ``lr_drop_at`` of all training steps.
        lr_drop_at: fraction of training after which the default schedule drops the learning rate.
    """

    def __init__(
        self,
        backbone: str | HourglassConfig = "squeeze",
        num_classes: int = 3,
        input_size: int = 511,
        head_kernel: int | None = None,
        head_dim: int = 256,
        corner_pool: bool = False,
        gaussian_iou: float | None = 0.3,
        sigma: float | None = None,
        min_radius: int = 0,
        focal_weight: float = 1.0,
        offset_weight: float = 1.0,
        merg_weight: float = 1.0,
        offset_loss: Literal["smooth_l1", "l1"] = "smooth_l1",
        merg_targets: Literal["keypoints", "attention"] = "keypoints",
        top_k: int = 100,
        score_threshold: float = 0.01,
        metric_thresholds: Sequence[float] = (1.0, 2.0, 4.0),
        pixel_mean: Sequence[float] = IMAGENET_MEAN,
        pixel_std: Sequence[float] = IMAGENET_STD,
        optimizer: OptimizerCallable | None = None,
        lr_scheduler: LRSchedulerCallable | None = None,
        lr_drop_at: float = 0.9,
    ) -> None:
        super().__init__()
        config = resolve_backbone_config(backbone)
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler"])
        if not isinstance(self.hparams["backbone"], str):
            self.hparams["backbone"] = config.to_dict()
        config.check_input_size(input_size, input_size)
        self.input_size = input_size
        self.backbone: HourglassBackbone = build_backbone(config)
        head_options = {"head_dim": head_dim, "corner_pool": corner_pool}
        if head_kernel is not None:
            head_options["head_kernel"] = head_kernel
        self.heads = KeypointHeads.for_backbone(self.backbone, num_classes, **head_options)
        self.loss = HeatmapLoss(
            focal_weight=focal_weight,
            offset_weight=offset_weight,
            offset_kind=offset_loss,
            merg_weight=merg_weight,
        )
        self.register_buffer(
            "pixel_mean", torch.tensor(pixel_mean).view(1, 3, 1, 1), persistent=False
        )
        self.register_buffer(
            "pixel_std", torch.tensor(pixel_std).view(1, 3, 1, 1), persistent=False
        )
        self.val_metric = PointAP(num_classes, thresholds=tuple(metric_thresholds))
        self.test_metric = PointAP(num_classes, thresholds=tuple(metric_thresholds))
        self.optimizer_factory = optimizer
        self.scheduler_factory = lr_scheduler

    @property
    def output_size(self) -> int:
        """Side of the heatmaps for the training input size."""
        return self.backbone.config.output_size(self.input_size)

    def normalize(self, images: Tensor) -> Tensor:
        """uint8 (or [0, 1] float) RGB images -> the normalised float input of the backbone."""
        if images.dtype == torch.uint8:
            images = images.float().div_(255)
        return (images - self.pixel_mean) / self.pixel_std

    def forward(self, images: Tensor) -> HeadOutput:
        """Head outputs (logits) of every stack for a batch of images."""
        return self.heads(self.backbone(self.normalize(images)))

    def encode(
        self, targets: list[dict[str, Tensor]], image_size: tuple[int, int], outputs: HeadOutput
    ):
        """Targets at the heads' resolutions, encoded on the device the targets live on."""
        hp = self.hparams
        heatmap_size = tuple(outputs.heatmaps[-1].shape[-2:])
        keypoint_targets = encode_targets(
            targets,
            hp.num_classes,
            image_size,
            heatmap_size,
            gaussian_iou=hp.gaussian_iou,
            sigma=hp.sigma,
            min_radius=hp.min_radius,
        )
        merg_maps = None
        if any(outputs.merg_logits):
            merg_maps = encode_merg_targets(
                targets,
                image_size,
                [tuple(m.shape[-2:]) for m in outputs.merg_logits[0]],
                mode=hp.merg_targets,
                gaussian_iou=hp.gaussian_iou,
                sigma=hp.sigma,
                min_radius=hp.min_radius,
            )
        return keypoint_targets, merg_maps

    def shared_step(self, batch: Batch) -> tuple[HeadOutput, LossOutput, KeypointTargets]:
        images, targets = batch
        outputs = self(images)
        keypoint_targets, merg_maps = self.encode(targets, tuple(images.shape[-2:]), outputs)
        return outputs, self.loss(outputs, keypoint_targets, merg_maps), keypoint_targets

    def decode(self, outputs: HeadOutput, image_size: tuple[int, int]) -> list[dict[str, Tensor]]:
        """Keypoints in input pixels from the last stack's heads."""
        return decode_keypoints(
            outputs.heatmaps[-1],
            outputs.offsets[-1],
            image_size,
            top_k=self.hparams.top_k,
            score_threshold=self.hparams.score_threshold,
        )

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        _, losses, _ = self.shared_step(batch)
        batch_size = batch[0].shape[0]
        self.log("train/loss", losses.total, prog_bar=True, batch_size=batch_size)
        self.log_dict(
            {f"train/{name}": value for name, value in losses.components.items()},
            batch_size=batch_size,
        )
        return losses.total

    def evaluation_step(self, batch: Batch, metric: PointAP, stage: str) -> HeadOutput:
        images, targets = batch
        outputs, losses, _ = self.shared_step(batch)
        self.log(f"{stage}/loss", losses.total, batch_size=images.shape[0], sync_dist=True)
        metric.update(self.decode(outputs, tuple(images.shape[-2:])), targets)
        return outputs

    def validation_step(self, batch: Batch, batch_idx: int) -> HeadOutput:
        return self.evaluation_step(batch, self.val_metric, "val")

    def test_step(self, batch: Batch, batch_idx: int) -> HeadOutput:
        return self.evaluation_step(batch, self.test_metric, "test")

    def on_validation_epoch_end(self) -> None:
        self.log_metric(self.val_metric, "val")

    def on_test_epoch_end(self) -> None:
        self.log_metric(self.test_metric, "test")

    def log_metric(self, metric: PointAP, stage: str) -> None:
        """Log the synced point-AP results (scalars only) and reset the metric."""
        results = metric.compute()
        self.log_dict(
            {f"{stage}/{k}": v for k, v in results.items() if v.numel() == 1},
        )
        metric.reset()

    def predict_step(self, batch: Batch | Tensor, batch_idx: int) -> list[dict[str, Tensor]]:
        """Decoded keypoints (``keypoints`` [k, 2] input pixels, ``scores``, ``labels``) per image."""
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self.decode(self(images), tuple(images.shape[-2:]))

    def configure_optimizers(self) -> dict[str, Any]:
        params = self.parameters()
        optimizer = (
            self.optimizer_factory(params)
            if self.optimizer_factory is not None
            else torch.optim.Adam(params, lr=2.5e-4)
        )
        if self.scheduler_factory is not None:
            scheduler = self.scheduler_factory(optimizer)
        else:
            drop_step = int(self.hparams.lr_drop_at * self.trainer.estimated_stepping_batches)
            scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, [drop_step], gamma=0.1)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }
