"""FLOPs of a :class:`~hgtrain.models.network.KeypointNet`, counted once for every user.

Counted with ``torch.utils.flop_counter`` on the meta device, so nothing is computed or allocated.
Only convolutions and matrix products count (2 x multiply-adds; the loss and the normalisation
layers add well under 1 %), and activation checkpointing's recomputation is not counted, so
FLOP/s compare across options as model throughput.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor
from torch.utils.flop_counter import FlopCounterMode

from hgtrain.models.network import KeypointNet, KeypointNetConfig

__all__ = ["inference_flops", "training_flops"]


def training_flops(
    config: KeypointNetConfig, batch_size: int, input_size: int | None = None
) -> int:
    """FLOPs of one training step's forward (every stack's heads) and backward."""
    return _count(config, batch_size, input_size, training=True)


def inference_flops(
    config: KeypointNetConfig, batch_size: int, input_size: int | None = None
) -> int:
    """FLOPs of one inference forward (the last stack's heads only), decoding not included."""
    return _count(config, batch_size, input_size, training=False)


def _count(
    config: KeypointNetConfig, batch_size: int, input_size: int | None, training: bool
) -> int:
    size = input_size or config.input_size
    with torch.device("meta"):
        model = KeypointNet(dataclasses.replace(config))
        images = torch.empty(batch_size, 3, size, size)
    counter = FlopCounterMode(display=False)
    with counter:
        if training:
            outputs = model(images)
            sum(t.float().sum() for t in _tensors(outputs)).backward()
        else:
            with torch.no_grad():
                model.eval()(images, last_stack_only=True)
    return counter.get_total_flops()


def _tensors(outputs: Any) -> Iterator[Tensor]:
    """Every tensor in a (nested) head output."""
    if isinstance(outputs, Tensor):
        yield outputs
    else:
        for item in outputs:
            yield from _tensors(item)
