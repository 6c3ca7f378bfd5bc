"""``KeypointNet``: the whole trained network as a plain ``nn.Module``, with no training code.

Input normalisation, the hourglass backbone and the keypoint heads, built from one
:class:`KeypointNetConfig` (as timm builds a model from its config), and decoding as a method. The
training module (``hgtrain.training.module``) wraps it with targets, loss, metrics and optimiser; inference,
export and ``hgtrain.load_backbone(..., with_heads=True)`` use it alone, without Lightning.

Its state-dict keys are ``backbone.*`` (the original CornerNet-Lite ``module.hg.*`` keys without the
prefix) and ``heads.*``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from hgtrain.models.backbone import HourglassBackbone, HourglassConfig
from hgtrain.models.heads import HeadOutput, KeypointHeads
from hgtrain.models.registry import get_config
from hgtrain.task.decode import decode_keypoints

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "KeypointNet",
    "KeypointNetConfig",
    "RawOutput",
    "resolve_backbone_config",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def resolve_backbone_config(backbone: str | HourglassConfig | Mapping[str, Any]) -> HourglassConfig:
    """A config from a registered name, a config, or its plain-dict form (as stored in checkpoints)."""
    if isinstance(backbone, HourglassConfig):
        return backbone
    if isinstance(backbone, Mapping):
        return HourglassConfig(**backbone)
    return get_config(backbone)


@dataclass
class KeypointNetConfig:
    """Everything that shapes a :class:`KeypointNet` and what its outputs mean.

    Attributes:
        backbone: a registered backbone name (``"squeeze"``, ``"cornernet"``, ``"saccade"`` or an
            alias), a :class:`HourglassConfig`, or its dict form; resolved to a config.
        num_classes: heatmap channels.
        class_names: one name per class (``class_0``... when not given); classes named
            ``top_left`` / ``bottom_right`` get CornerNet's pooled streams with ``corner_pool``.
        input_size: side of the square input the network was trained at.
        head_kernel: first conv of each head; ``None`` picks the original choice (1 for fire-block
            hourglasses as in CornerNet-Squeeze, 3 otherwise).
        head_dim: hidden channels of every head.
        corner_pool: CornerNet's corner pooling in front of the heads.
        pixel_mean, pixel_std: normalisation of [0, 1] RGB input.
        top_k: keypoints kept per image when decoding.
        score_threshold: decoded keypoints at or below this score are dropped.
    """

    backbone: HourglassConfig | str | Mapping[str, Any] = "squeeze"
    num_classes: int = 3
    class_names: list[str] | None = None
    input_size: int = 511
    head_kernel: int | None = None
    head_dim: int = 256
    corner_pool: bool = False
    pixel_mean: list[float] = field(default_factory=lambda: list(IMAGENET_MEAN))
    pixel_std: list[float] = field(default_factory=lambda: list(IMAGENET_STD))
    top_k: int = 100
    score_threshold: float = 0.01

    def __post_init__(self) -> None:
        self.backbone = resolve_backbone_config(self.backbone)
        if self.class_names is None:
            self.class_names = [f"class_{c}" for c in range(self.num_classes)]
        self.class_names = [str(name) for name in self.class_names]
        self.pixel_mean = [float(v) for v in self.pixel_mean]
        self.pixel_std = [float(v) for v in self.pixel_std]

    @classmethod
    def from_hparams(cls, hparams: Mapping[str, Any]) -> KeypointNetConfig:
        """The network part of a training module's hyperparameters (as a checkpoint stores them)."""
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in hparams.items() if k in names and v is not None})

    def to_dict(self) -> dict[str, Any]:
        """Plain lists, numbers and strings: for JSON, YAML and ``torch.load(weights_only=True)``."""
        return {**asdict(self), "backbone": self.backbone.to_dict()}


class RawOutput(NamedTuple):
    """The last stack's raw head outputs, as an exported program returns them.

    heatmaps: [B, C, h, w] logits (apply a sigmoid for scores). offsets: (x, y) sub-cell offsets,
    [B, 2, h, w], or [B, C, 2, h, w] with corner pooling (one per class).
    """

    heatmaps: Tensor
    offsets: Tensor


class KeypointNet(nn.Module):
    """Normalisation, hourglass backbone and keypoint heads on every stack; decoding as a method.

    ``forward`` takes RGB images, uint8 in [0, 255] or float in [0, 1], [B, 3, H, W] with H and W
    that the backbone accepts, and returns every stack's head logits (:class:`HeadOutput`);
    :meth:`predict` returns keypoints in input pixels.
    """

    def __init__(self, config: KeypointNetConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = HourglassBackbone(config.backbone)
        head_options: dict[str, Any] = {
            "head_dim": config.head_dim,
            "corner_pool": config.corner_pool,
            "class_names": config.class_names,
        }
        if config.head_kernel is not None:
            head_options["head_kernel"] = config.head_kernel
        self.heads = KeypointHeads.for_backbone(self.backbone, config.num_classes, **head_options)
        self.register_buffer(
            "pixel_mean", torch.tensor(config.pixel_mean).view(1, 3, 1, 1), persistent=False
        )
        self.register_buffer(
            "pixel_std", torch.tensor(config.pixel_std).view(1, 3, 1, 1), persistent=False
        )

    def set_normalization(self, pixel_mean: Sequence[float], pixel_std: Sequence[float]) -> None:
        """Normalise inputs with this mean and std (of [0, 1] RGB) from now on."""
        self.config.pixel_mean = [float(v) for v in pixel_mean]
        self.config.pixel_std = [float(v) for v in pixel_std]
        self.pixel_mean.copy_(torch.tensor(self.config.pixel_mean).view(1, 3, 1, 1))
        self.pixel_std.copy_(torch.tensor(self.config.pixel_std).view(1, 3, 1, 1))

    def normalize(self, images: Tensor) -> Tensor:
        """uint8 (or [0, 1] float) RGB images -> the normalised float input of the backbone."""
        if images.dtype == torch.uint8:
            images = images.float().div(255)
        return (images - self.pixel_mean) / self.pixel_std

    def forward(self, images: Tensor, last_stack_only: bool = False) -> HeadOutput:
        """Head outputs (logits) of every stack, or of the last one only (inference)."""
        return self.heads(self.backbone(self.normalize(images)), last_stack_only=last_stack_only)

    def raw_outputs(self, images: Tensor) -> RawOutput:
        """The last stack's heatmap logits and offsets: what an exported program computes."""
        outputs = self(images, last_stack_only=True)
        return RawOutput(outputs.heatmaps[-1], outputs.offsets[-1])

    def decode(
        self, outputs: HeadOutput | RawOutput, image_size: tuple[int, int]
    ) -> list[dict[str, Tensor]]:
        """Keypoints (``keypoints`` [k, 2] x, y in input pixels, ``scores``, ``labels``) per image
        from the last stack's heads."""
        heatmaps, offsets = outputs.heatmaps, outputs.offsets
        if isinstance(outputs, HeadOutput):
            heatmaps, offsets = heatmaps[-1], offsets[-1]
        return decode_keypoints(
            heatmaps,
            offsets,
            image_size,
            top_k=self.config.top_k,
            score_threshold=self.config.score_threshold,
        )

    @torch.inference_mode()
    def predict(self, images: Tensor) -> list[dict[str, Tensor]]:
        """Decoded keypoints per image (see :meth:`decode`) for a batch of images."""
        return self.decode(self.raw_outputs(images), tuple(images.shape[-2:]))
