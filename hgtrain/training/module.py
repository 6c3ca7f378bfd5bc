"""The LightningModule: trains a :class:`~hgtrain.models.network.KeypointNet` with the focal loss.

The network (normalisation, hourglass backbone, keypoint heads, decoding) is a plain ``nn.Module``
held as ``self.model``; this module adds what training needs. Data flows one way: uint8 images
and keypoint dicts from the DataModule -> targets encoded on the device -> the network -> loss
(training) or decoded keypoints (evaluation) -> point-AP metrics -> the logger. The Trainer holds
the engineering; the config holds the choices.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.accelerators import CPUAccelerator
from lightning.pytorch.callbacks import BaseFinetuning
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn
from torch.optim.lr_scheduler import LRScheduler, MultiStepLR, OneCycleLR

from hgtrain.errors import ConfigError, check
from hgtrain.hparams import make_hparams_plain
from hgtrain.models.backbone import HourglassBackbone, HourglassConfig
from hgtrain.models.checkpointing import CHECKPOINTING_MODES, ActivationCheckpointing
from hgtrain.models.flops import inference_flops, training_flops
from hgtrain.models.heads import HeadOutput, KeypointHeads
from hgtrain.models.network import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    KeypointNet,
    KeypointNetConfig,
    resolve_backbone_config,
)
from hgtrain.task.losses import HeatmapLoss, LossOutput
from hgtrain.task.metrics import PointAP
from hgtrain.task.targets import KeypointTargets, encode_merg_targets, encode_targets
from hgtrain.weights.pretrained import load_backbone_weights, upgrade_state_keys

Batch = tuple[Tensor, list[dict[str, Tensor]]]


def bf16_is_emulated(trainer: L.Trainer) -> bool:
    """Whether a bf16-mixed run on the CPU lacks native bf16 (AVX512-BF16 or AMX), where oneDNN
    emulates it: 0.76 training steps/s of the quickstart on a 2-core AVX2 machine, against 4.0 in
    float32."""
    if not isinstance(trainer.accelerator, CPUAccelerator) or "bf16" not in str(trainer.precision):
        return False
    try:
        return not torch.ops.mkldnn._is_mkldnn_bf16_supported()
    except (AttributeError, RuntimeError):  # a torch without the check: assume native
        return False


def onednn_corrupts_nhwc_backward() -> bool:
    """Whether oneDNN's float32 backward pass of stride-2 1x1 convolutions in NHWC corrupts the
    heap on this CPU: seen with torch 2.14.1's oneDNN 3.12 on AVX2 machines (crashes or hangs
    within a few steps, with 1 or 2 threads); bf16 autocast, NCHW and AVX-512 machines are not
    affected."""
    return (
        torch.backends.mkldnn.is_available()
        and torch.backends.mkldnn.enabled
        and not torch.backends.cpu.get_cpu_capability().startswith("AVX512")
    )


def channels_last_trips_onednn(trainer: L.Trainer) -> bool:
    """Whether channels_last training under ``trainer`` would hit
    :func:`onednn_corrupts_nhwc_backward`: float32 on such a CPU."""
    return (
        isinstance(trainer.accelerator, CPUAccelerator)
        and str(trainer.precision) in ("32-true", "32", "64-true", "64")
        and onednn_corrupts_nhwc_backward()
    )


def checked_backbone_config(
    backbone: str | HourglassConfig | Mapping[str, Any], input_size: int
) -> HourglassConfig:
    """The backbone's config, checked to take ``input_size``; a :class:`ConfigError` otherwise."""
    try:
        config = resolve_backbone_config(backbone)
    except (TypeError, ValueError) as error:
        shown = backbone if isinstance(backbone, str) else "{...}"
        raise ConfigError("model", "backbone", shown, str(error)) from None
    try:
        config.check_input_size(input_size, input_size)
    except ValueError as error:
        raise ConfigError("model", "input_size", input_size, str(error)) from None
    return config


def check_arguments(hparams: Mapping[str, Any]) -> None:
    """A :class:`ConfigError` naming the first argument of the module with an unusable value."""
    rules = {
        "num_classes": (hparams["num_classes"] >= 1, "must be >= 1"),
        "head_dim": (hparams["head_dim"] >= 1, "must be >= 1"),
        "top_k": (hparams["top_k"] >= 1, "must be >= 1"),
        "min_radius": (hparams["min_radius"] >= 0, "must be >= 0"),
        "score_threshold": (0 <= hparams["score_threshold"] < 1, "must be in [0, 1)"),
        "lr_drop_at": (0 < hparams["lr_drop_at"] <= 1, "must be in (0, 1]"),
        "lr_schedule": (
            hparams["lr_schedule"] in ("step", "one_cycle"),
            "must be 'step' or 'one_cycle'",
        ),
        "lr_warmup": (0 < hparams["lr_warmup"] < 1, "must be in (0, 1)"),
        "metric_thresholds": (
            len(hparams["metric_thresholds"]) > 0 and min(hparams["metric_thresholds"]) > 0,
            "must be one or more distances > 0 (input pixels)",
        ),
        "gaussian_iou": (
            hparams["gaussian_iou"] is None or 0 < hparams["gaussian_iou"] < 1,
            "must be in (0, 1), or null with a sigma",
        ),
        "sigma": (hparams["sigma"] is None or hparams["sigma"] > 0, "must be > 0 (output cells)"),
        "pixel_mean": (
            hparams["pixel_mean"] is None or len(hparams["pixel_mean"]) == 3,
            "must be 3 values (R, G, B)",
        ),
        "pixel_std": (
            hparams["pixel_std"] is None
            or (len(hparams["pixel_std"]) == 3 and min(hparams["pixel_std"]) > 0),
            "must be 3 values (R, G, B), all > 0",
        ),
        "activation_checkpointing": (
            hparams["activation_checkpointing"] in CHECKPOINTING_MODES,
            f"must be one of {', '.join(CHECKPOINTING_MODES)}",
        ),
    }
    for name, (holds, rule) in rules.items():
        check(holds, "model", name, hparams[name], rule)


class HourglassKeypointModule(L.LightningModule):
    """Trains an hourglass backbone to predict corner-keypoint heatmaps on every stack.

    Args:
        backbone: a registered name (``"squeeze"``, ``"cornernet"``, ``"saccade"``, or their
            aliases) or a full :class:`HourglassConfig`.
        backbone_weights: start from pretrained backbone weights: a file written by
            ``hgtrain export``, an hgtrain training checkpoint, or original CornerNet-Lite weights
            (see :func:`hgtrain.load_backbone`). The architecture must be ``backbone``'s; loading
            is strict. Not saved in the hyperparameters: a checkpoint of this module holds its own
            weights, and restoring it must not need the pretrained file.
        freeze_backbone: train the heads only: the backbone gets no gradients and stays in eval
            mode (fixed BatchNorm statistics) throughout. To unfreeze it after some epochs, leave
            this off and add Lightning's ``BackboneFinetuning`` callback instead.
        num_classes: keypoint classes (linked from the DataModule by the CLI).
        class_names: names of the keypoint classes, for per-class metrics (linked from the
            DataModule); ``class_0``, ``class_1``... when not given.
        input_size: side of the square training input in pixels (linked from the DataModule).
        head_kernel: kernel of the heads' first conv; ``None`` picks the original choice (1 for
            fire-block hourglasses as in CornerNet-Squeeze, 3 otherwise).
        head_dim: hidden channels of every head.
        corner_pool: CornerNet's corner pooling in front of the heads: classes named
            ``top_left`` / ``bottom_right`` get the original's pooled streams, each with its own
            heatmap and offset head (:class:`~hgtrain.models.heads.KeypointHeads`).
        gaussian_iou: CornerNet's ``min_overlap`` for the Gaussian radius of each keypoint.
        sigma: a fixed Gaussian sigma in output cells instead (wins over ``gaussian_iou``).
        min_radius: smallest Gaussian radius in output cells.
        focal_weight: weight of the focal (heatmap) loss.
        offset_weight: weight of the offset loss.
        merg_weight: weight of the merg-map loss (``1 / stacks`` is CornerNet-Saccade's attention
            weight, which the original divides by the stacks twice).
        offset_loss: ``"smooth_l1"`` (CornerNet) or ``"l1"`` (CenterNet).
        loss_normalization: ``"all"``: the focal and offset sums are divided by all keypoints;
            ``"per_class"``: each class's sums by that class's keypoints, then added, as the
            original adds its top-left and bottom-right losses (twice ``"all"`` on box corners).
        merg_targets: Saccade only: ``"keypoints"`` (class-agnostic keypoint maps at every merg
            scale) or ``"attention"`` (the original object-centre attention maps).
        top_k: keypoints kept per image when decoding.
        score_threshold: decoded keypoints below this score are dropped.
        metric_thresholds: distance thresholds (input pixels) of the point-AP metric.
        pixel_mean: input normalisation of [0, 1] RGB images, the mean; ``None``: the one the
            ``backbone_weights`` were trained with when the file records it (original CornerNet-Lite
            weights: their mean and std in RGB order), else ImageNet's. The values used are saved.
        pixel_std: the standard deviation of that normalisation, chosen the same way.
        optimizer: optimizer factory; ``None`` is the original Adam with lr 2.5e-4.
        lr_scheduler: scheduler factory, stepped after every optimizer step; ``None`` uses
            ``lr_schedule``.
        lr_schedule: the built-in per-step schedule when no ``lr_scheduler`` is given, both sized
            to the run's ``estimated_stepping_batches``: ``"step"``, the original, divides the
            learning rate by 10 after ``lr_drop_at`` of all training steps; ``"one_cycle"``
            (``OneCycleLR``) rises from 1/25 of the optimizer's learning rate to it over the first
            ``lr_warmup`` of the steps, then anneals to almost zero (fast short runs: the
            quickstart).
        lr_drop_at: fraction of training after which the ``"step"`` schedule drops the rate.
        lr_warmup: fraction of training the ``"one_cycle"`` schedule spends rising.
        channels_last: keep the network's weights, and so its activations, in NHWC layout
            (``torch.channels_last``): faster convolutions with oneDNN on CPUs and on tensor-core
            GPUs; the same weights and state-dict (see ``hgtrain benchmark --versus
            channels_last``).
        activation_checkpointing: recompute activations in the backward pass instead of keeping
            them, per ``"stacks"`` (each hourglass) or per ``"blocks"`` (every block of the
            backbone: the most memory saved); less memory for more time, the same training
            (:class:`~hgtrain.models.backbone.HourglassBackbone`).
    """

    def __init__(
        self,
        backbone: str | HourglassConfig = "squeeze",
        backbone_weights: str | None = None,
        freeze_backbone: bool = False,
        num_classes: int = 3,
        class_names: Sequence[str] | None = None,
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
        loss_normalization: Literal["all", "per_class"] = "all",
        merg_targets: Literal["keypoints", "attention"] = "keypoints",
        top_k: int = 100,
        score_threshold: float = 0.01,
        metric_thresholds: Sequence[float] = (1.0, 2.0, 4.0),
        pixel_mean: Sequence[float] | None = None,
        pixel_std: Sequence[float] | None = None,
        optimizer: OptimizerCallable | None = None,
        lr_scheduler: LRSchedulerCallable | None = None,
        lr_schedule: Literal["step", "one_cycle"] = "step",
        lr_drop_at: float = 0.9,
        lr_warmup: float = 0.15,
        channels_last: bool = False,
        activation_checkpointing: ActivationCheckpointing = "none",
    ) -> None:
        super().__init__()
        config = checked_backbone_config(backbone, input_size)
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler", "backbone_weights"])
        if not isinstance(self.hparams["backbone"], str):
            self.hparams["backbone"] = config.to_dict()
        check_arguments(self.hparams)
        self.input_size = input_size
        self.model = KeypointNet(
            KeypointNetConfig.from_hparams({**self.hparams, "backbone": config})
        )
        pretrained = None
        if backbone_weights is not None:
            try:
                stored = load_backbone_weights(
                    self.backbone, backbone_weights, pixel_mean, pixel_std
                )
            except (OSError, ValueError) as error:
                raise ConfigError(
                    "model", "backbone_weights", backbone_weights, str(error)
                ) from None
            pretrained = stored.normalization
        normalization = pretrained or {"pixel_mean": IMAGENET_MEAN, "pixel_std": IMAGENET_STD}
        pixel_mean = normalization["pixel_mean"] if pixel_mean is None else pixel_mean
        pixel_std = normalization["pixel_std"] if pixel_std is None else pixel_std
        self.model.set_normalization(pixel_mean, pixel_std)
        self.hparams["pixel_mean"], self.hparams["pixel_std"] = pixel_mean, pixel_std
        make_hparams_plain(self)
        self.model.backbone.activation_checkpointing = activation_checkpointing
        if channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.freeze_backbone = freeze_backbone
        if freeze_backbone:
            self.backbone.requires_grad_(False)
            self.backbone.eval()
        self.loss = HeatmapLoss(
            focal_weight=focal_weight,
            offset_weight=offset_weight,
            offset_kind=offset_loss,
            merg_weight=merg_weight,
            normalization=loss_normalization,
        )
        self.val_metric = self.make_metric()
        self.test_metrics = nn.ModuleList()
        self.test_set_names: list[str] = []
        self.optimizer_factory = optimizer
        self.scheduler_factory = lr_scheduler

    @property
    def backbone(self) -> HourglassBackbone:
        """The network's backbone (the attribute Lightning's ``BackboneFinetuning`` unfreezes)."""
        return self.model.backbone

    @property
    def heads(self) -> KeypointHeads:
        """The network's keypoint heads."""
        return self.model.heads

    def train(self, mode: bool = True) -> HourglassKeypointModule:
        """Switch modes as usual, but keep a frozen backbone in eval mode."""
        super().train(mode)
        if self.freeze_backbone:
            self.backbone.eval()
        return self

    def setup(self, stage: str) -> None:
        """Count the FLOPs of a batch (a training step in ``fit``, the network's inference
        otherwise), for the throughput logged by ``ThroughputMonitor``; say when bf16 is emulated
        (:func:`bf16_is_emulated`); train in NCHW where channels_last would trip oneDNN
        (:func:`channels_last_trips_onednn`)."""
        batch_size = getattr(self.trainer.datamodule, "batch_size", None)
        if batch_size is not None:
            count = training_flops if stage == "fit" else inference_flops
            self.flops_per_batch = count(self.model.config, batch_size)
        if stage == "fit" and bf16_is_emulated(self.trainer):
            rank_zero_warn(
                "hgtrain: this CPU has no native bf16 (torch sees "
                f"{torch.backends.cpu.get_cpu_capability()}), so bf16-mixed runs emulated, several "
                "times slower than float32 (the quickstart: about 5x): add --trainer.precision "
                "32-true"
            )
        if (
            stage == "fit"
            and self.hparams.channels_last
            and channels_last_trips_onednn(self.trainer)
        ):
            self.model.to(memory_format=torch.contiguous_format)
            rank_zero_warn(
                "hgtrain: model.channels_last is off for this run: in float32 on a CPU without "
                f"AVX-512 ({torch.backends.cpu.get_cpu_capability()}), oneDNN's backward pass of "
                "the strided 1x1 convolutions corrupts memory (torch "
                f"{torch.__version__.split('+')[0]}); --model.channels_last false says the same "
                "without this warning"
            )

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Read checkpoints written before the network moved under ``model.`` (``backbone.*``)."""
        checkpoint["state_dict"] = upgrade_state_keys(checkpoint["state_dict"])

    def make_metric(self) -> PointAP:
        """A point-AP metric for one evaluation set."""
        hp = self.hparams
        return PointAP(
            hp.num_classes, thresholds=tuple(hp.metric_thresholds), class_names=hp.class_names
        )

    @property
    def output_size(self) -> int:
        """Side of the heatmaps for the training input size."""
        return self.backbone.config.output_size(self.input_size)

    def forward(self, images: Tensor) -> HeadOutput:
        """Head outputs (logits) of every stack for a batch of uint8 or [0, 1] RGB images."""
        return self.model(images)

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
        return self.model.decode(outputs, image_size)

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
        self.log(
            f"{stage}/loss",
            losses.total,
            batch_size=images.shape[0],
            sync_dist=True,
            add_dataloader_idx=False,
        )
        metric.update(self.decode(outputs, tuple(images.shape[-2:])), targets)
        return outputs

    def validation_step(self, batch: Batch, batch_idx: int) -> HeadOutput:
        return self.evaluation_step(batch, self.val_metric, "val")

    def on_test_start(self) -> None:
        """One metric per test set, named after the DataModule's test sets (e.g. ``test_noisy``)."""
        count = len(self.trainer.num_test_batches)
        names = getattr(self.trainer.datamodule, "test_set_names", None)
        if names is None or len(names) != count:
            names = ["test"] if count == 1 else [f"test_{i}" for i in range(count)]
        self.test_set_names = list(names)
        self.test_metrics = nn.ModuleList(self.make_metric() for _ in names).to(self.device)

    def test_step(self, batch: Batch, batch_idx: int, dataloader_idx: int = 0) -> HeadOutput:
        return self.evaluation_step(
            batch, self.test_metrics[dataloader_idx], self.test_set_names[dataloader_idx]
        )

    def on_validation_epoch_end(self) -> None:
        self.log_metric(self.val_metric, "val")

    def on_test_epoch_end(self) -> None:
        for name, metric in zip(self.test_set_names, self.test_metrics, strict=True):
            self.log_metric(metric, name)

    def log_metric(self, metric: PointAP, stage: str) -> None:
        """Log the synced point-AP results (scalars only) and reset the metric.

        An epoch whose images hold no keypoints logs NaN AP values (see :class:`PointAP`), which
        the best checkpoint never takes (:class:`~hgtrain.training.checkpoints.BestCheckpoint`), and
        warns (not in the sanity check).
        """
        results = metric.compute()
        if results["map"].isnan() and not self.trainer.sanity_checking:
            rank_zero_warn(
                f"hgtrain: the {stage} images of this epoch hold no keypoints, so {stage}/map and "
                "the other AP values are NaN (undefined), never a best checkpoint"
            )
        scalars = {f"{stage}/{k}": v for k, v in results.items() if v.numel() == 1}
        self.log_dict(scalars, add_dataloader_idx=False)
        metric.reset()

    def predict_step(self, batch: Batch | Tensor, batch_idx: int) -> list[dict[str, Tensor]]:
        """Decoded keypoints (``keypoints`` [k, 2] input pixels, ``scores``, ``labels``) per image."""
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self.model.predict(images) if len(images) else []

    def configure_optimizers(self) -> dict[str, Any]:
        params = [p for p in self.parameters() if p.requires_grad]
        optimizer = (
            self.optimizer_factory(params)
            if self.optimizer_factory is not None
            else torch.optim.Adam(params, lr=2.5e-4)
        )
        scheduler = (
            self.scheduler_factory(optimizer)
            if self.scheduler_factory is not None
            else self.built_in_schedule(optimizer)
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    def on_train_start(self) -> None:
        """Refuse, before the first step, what a one-cycle schedule cannot follow and would fail
        on in the middle of training: parameter groups added by a finetuning callback (it knows
        only the groups it was built with), and a resumed run made longer (its schedule, restored
        from the checkpoint, ends at the steps it was built for). A resumed ``step`` schedule
        drops at ``lr_drop_at`` of this run's steps (:meth:`move_the_drop`)."""
        scheduler = self.lr_schedulers()
        if isinstance(scheduler, MultiStepLR) and self.scheduler_factory is None:
            self.move_the_drop(scheduler)
        if not isinstance(scheduler, OneCycleLR):
            return
        if any(isinstance(c, BaseFinetuning) for c in self.trainer.callbacks):
            raise ConfigError(
                "model",
                "lr_schedule",
                "one_cycle",
                "cannot schedule the parameter groups a finetuning callback (BackboneFinetuning) "
                "adds when it unfreezes: use --model.lr_schedule step",
            )
        steps = self.run_steps()
        if scheduler.total_steps != steps:
            raise ConfigError(
                "model",
                "lr_schedule",
                "one_cycle",
                f"the schedule resumed from the checkpoint spans {scheduler.total_steps} steps, "
                f"this run {steps}: resume with the trainer.max_epochs / max_steps the run started "
                "with, or train on from its weights in a new run (--config finetune.yaml "
                "--model.backbone_weights CKPT)",
            )

    def built_in_schedule(self, optimizer: torch.optim.Optimizer) -> LRScheduler:
        """The ``lr_schedule`` chosen, over all of this run's optimizer steps; a ConfigError for
        a run without a step bound (``trainer.max_time`` alone), which it cannot be laid over."""
        hp, steps = self.hparams, self.run_steps()
        if hp.lr_schedule == "one_cycle":
            peak = [group["lr"] for group in optimizer.param_groups]
            return OneCycleLR(optimizer, peak, total_steps=steps, pct_start=hp.lr_warmup)
        return MultiStepLR(optimizer, [self.drop_step()], gamma=0.1)

    def run_steps(self) -> int:
        """This run's optimizer steps, which the built-in schedules are laid over."""
        steps = self.trainer.estimated_stepping_batches
        if math.isinf(steps):
            raise ConfigError(
                "model",
                "lr_schedule",
                self.hparams.lr_schedule,
                "is laid over the run's steps, and this run has no step bound (trainer.max_epochs "
                "-1 and trainer.max_steps -1): set trainer.max_steps or trainer.max_epochs (with "
                "trainer.max_time, the run stops at whichever comes first), or give "
                "model.lr_scheduler",
            )
        return int(steps)

    def drop_step(self) -> int:
        """The optimizer step after which the ``step`` schedule divides the rate by 10."""
        return int(self.hparams.lr_drop_at * self.run_steps())

    def move_the_drop(self, scheduler: MultiStepLR) -> None:
        """Put the drop of a resumed ``step`` schedule at :meth:`drop_step` of this run.

        Lightning restores the scheduler from the checkpoint, milestone included, so a run resumed
        with another ``max_steps`` or ``max_epochs`` would drop where the first run would have.
        The rates follow the moved drop: one taken that now lies ahead is undone (the rate rises
        10x until it), one now passed is taken.
        """
        milestone = self.drop_step()
        if list(scheduler.milestones.elements()) == [milestone]:
            return
        step = scheduler.last_epoch
        taken = sum(n for at, n in scheduler.milestones.items() if at <= step)
        factor = scheduler.gamma ** (int(milestone <= step) - taken)
        scheduler.milestones = Counter([milestone])
        for group in scheduler.optimizer.param_groups:
            group["lr"] *= factor
