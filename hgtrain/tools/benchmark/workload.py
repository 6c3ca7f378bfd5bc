"""What both modes time besides the network: the synthetic inputs, made once before timing so that
only the network runs in the timed calls (the data pipeline is measured on its own,
``--data_workers``); the class names; and the checks of the options both modes share."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, TypeVar

import torch
from torch import Tensor

from hgtrain.cli.arguments import OptionError
from hgtrain.data.sample import CLASS_NAMES
from hgtrain.models.backbone import HourglassConfig
from hgtrain.models.registry import get_config
from hgtrain.training.module import Batch

__all__ = ["check_common_options", "class_names", "synthetic_batch", "synthetic_images"]


def check_common_options(
    config: Any, default_sizes: Mapping[str, int], minimums: dict[str, int]
) -> None:
    """Fill in a frozen config's ``input_size`` (the variant's entry of ``default_sizes``, else 511)
    and check it and the options both modes have; an :class:`OptionError` names the first bad one.

    ``minimums``: the least value of each of the config's counting options.
    """
    variant = config.backbone
    if not isinstance(variant, HourglassConfig):
        variant = get_config(variant)
    if config.input_size is None:
        object.__setattr__(config, "input_size", default_sizes.get(variant.name, 511))
    try:
        variant.check_input_size(config.input_size, config.input_size)
    except ValueError as error:
        raise OptionError("input_size", config.input_size, str(error)) from None
    for name, minimum in minimums.items():
        if getattr(config, name) < minimum:
            raise OptionError(name, getattr(config, name), f"must be >= {minimum}")
    if config.precision not in ("32", "bf16"):
        raise OptionError("precision", config.precision, "must be '32' or 'bf16'")
    if config.device not in ("cpu", "cuda"):
        raise OptionError("device", config.device, "must be 'cpu' or 'cuda'")
    if config.device == "cuda" and not torch.cuda.is_available():
        raise OptionError("device", "cuda", "torch sees no CUDA device; use --device cpu")


Config = TypeVar("Config")


def with_option_on(
    config: Config, option: str, choices: Mapping[str, Mapping[str, Any]], mode: str
) -> Config:
    """``config`` with the settings ``option`` (a key of ``choices``) stands for, for ``--versus``;
    an ``OptionError`` if it is no choice, is on already, or cannot be."""
    if option not in choices:
        raise OptionError("versus", option, f"must be one of {', '.join(choices)} in {mode} mode")
    try:
        other = replace(config, **choices[option])
    except OptionError as error:
        raise OptionError("versus", option, str(error)) from None
    if other == config:
        raise OptionError(
            "versus",
            option,
            f"{option} is already on; --versus compares a configuration without it",
        )
    return other


def autocast(precision: str, device_type: str) -> contextlib.AbstractContextManager:
    """bf16 autocast on ``device_type`` for ``precision="bf16"``, else nothing."""
    if precision == "bf16":
        return torch.autocast(device_type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def class_names(num_classes: int) -> list[str]:
    """The synthetic set's class names (as ``hgtrain fit`` links them), ``class_N`` past its three."""
    names = [*CLASS_NAMES, *(f"class_{c}" for c in range(len(CLASS_NAMES), num_classes))]
    return names[:num_classes]


def synthetic_batch(
    batch_size: int,
    input_size: int,
    num_classes: int = 3,
    objects_per_image: int = 8,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> Batch:
    """Random uint8 images and random boxes whose corners (classes 0, 1) and centres (class 2; all
    clamped to ``num_classes - 1``) are the keypoints, in the contract's batch format."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (batch_size, 3, input_size, input_size), generator=generator)
    targets = []
    for index in range(batch_size):
        sizes = input_size * (0.05 + 0.4 * torch.rand(objects_per_image, 2, generator=generator))
        corners = (input_size - sizes) * torch.rand(objects_per_image, 2, generator=generator)
        boxes = torch.cat([corners, corners + sizes], dim=1)
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2
        labels = torch.tensor([0, 1, 2]).clamp(max=num_classes - 1)
        targets.append(
            {
                "keypoints": torch.cat([boxes[:, :2], boxes[:, 2:], centres]).to(device),
                "labels": labels.repeat_interleave(objects_per_image).to(device),
                "sizes": sizes.repeat(3, 1).to(device),
                "boxes": boxes.to(device),
                "image_id": torch.tensor(index, device=device),
            }
        )
    return images.to(torch.uint8).to(device), targets


def synthetic_images(
    batch_size: int,
    input_size: int,
    seed: int = 0,
    device: str | torch.device = "cpu",
    channels_last: bool = False,
) -> Tensor:
    """Random float32 RGB images in [0, 1], [B, 3, S, S]: the input of an exported network
    (``hgtrain.weights.deploy``), which the eager network takes too."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(batch_size, 3, input_size, input_size, generator=generator).to(device)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    return images
