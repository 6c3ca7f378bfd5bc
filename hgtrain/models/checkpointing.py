"""Activation checkpointing that leaves training unchanged: a checkpointed part keeps only its input
and recomputes its activations in the backward pass, without folding the batch into the BatchNorm
running statistics a second time.

Which parts are checkpointed is a run-time choice of the backbone (``activation_checkpointing``),
not part of its config: it changes no weights and no state-dict keys.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Literal, TypeVar, get_args

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.checkpoint import checkpoint

__all__ = [
    "CHECKPOINTING_MODES",
    "ActivationCheckpointing",
    "checkpointing_applies",
    "frozen_batchnorm_statistics",
    "recompute_in_backward",
]

ActivationCheckpointing = Literal["none", "stacks", "blocks"]
"""``none``; ``stacks``: each hourglass as a whole; ``blocks``: every block of the backbone on its
own (:class:`~hgtrain.models.blocks.CheckpointableBlock`: the residual or fire blocks of the stem,
the hourglasses and between stacks, and the conv-BN-ReLU layers of the stem and stack outputs)."""

CHECKPOINTING_MODES: tuple[str, ...] = get_args(ActivationCheckpointing)

T = TypeVar("T")


@contextmanager
def frozen_batchnorm_statistics(module: nn.Module) -> Iterator[None]:
    """BatchNorm layers still normalise with batch statistics but leave their running ones as
    they were (momentum 0, batch count restored on exit).

    A checkpointed segment runs its forward twice; without this, the recomputation in the backward
    pass would fold the same batch into the running statistics a second time. (Turning
    ``track_running_stats`` off instead would change what autograd saves, which checkpointing
    rejects.)
    """
    norms = [m for m in module.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    saved = [(norm.momentum, norm.num_batches_tracked.clone()) for norm in norms]
    for norm in norms:
        norm.momentum = 0.0
    try:
        yield
    finally:
        for norm, (momentum, count) in zip(norms, saved, strict=True):
            norm.momentum = momentum
            norm.num_batches_tracked.copy_(count)


def checkpointing_applies(module: nn.Module) -> bool:
    """Whether a forward of ``module`` now would keep activations for a backward pass: training
    mode with grads on (eval and ``no_grad`` calls keep none, so checkpointing has nothing to do)."""
    return module.training and torch.is_grad_enabled()


def recompute_in_backward(
    function: Callable[..., T], module: nn.Module, *inputs: torch.Tensor
) -> T:
    """``function(*inputs)``, keeping only ``inputs`` for the backward pass, which recomputes the
    rest with ``module``'s BatchNorm statistics frozen.

    ``torch.compile`` recomputes only what the backward needs, never the buffer updates, so a
    compiled forward needs no freezing (and could not trace it).
    """
    if torch.compiler.is_compiling():
        return checkpoint(function, *inputs, use_reentrant=False)
    return checkpoint(
        function,
        *inputs,
        use_reentrant=False,
        context_fn=lambda: (nullcontext(), frozen_batchnorm_statistics(module)),
    )
