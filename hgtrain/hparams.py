"""Hyperparameters stored as plain values, readable anywhere without hgtrain's classes."""

from __future__ import annotations

import dataclasses
from typing import Any

from lightning.pytorch.core.mixins import HyperparametersMixin


def plain(value: Any) -> Any:
    """``value`` with dataclasses turned into dicts and tuples into lists, recursively."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value


def make_hparams_plain(owner: HyperparametersMixin) -> None:
    """Make the saved hyperparameters of a module or DataModule plain values, so that
    ``hparams.yaml`` reads with ``yaml.safe_load`` and checkpoints with
    ``torch.load(weights_only=True)``. Both the current and the initial (logged) copy are changed:
    Lightning logs and checkpoints the initial one."""
    for name, value in owner.hparams.items():
        owner.hparams[name] = plain(value)
    owner._hparams_initial = type(owner._hparams_initial)(owner.hparams)
