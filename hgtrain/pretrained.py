"""``load_backbone``: a pretrained hourglass backbone from a file, in one line.

Accepted files (the format is recognised from the content, never from the name):

- an original CornerNet-Lite checkpoint: a ``torch.save``'d state dict with ``module.hg.*`` keys,
  heads included (``CornerNet_Squeeze_500000.pkl`` and its siblings);
- an ECCV'18 CornerNet checkpoint (``module.kps.*``, ``module.pre.*``, ...);
- a bare hgtrain backbone state dict (``pre.*``, ``hgs.*``, ``cnvs.*``, ...).

Files are read with ``torch.load(weights_only=True)``, so loading cannot run code.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from hgtrain.models.backbone import HourglassBackbone
from hgtrain.models.convert import from_cornernet_lite, infer_config, load_state_exactly


def read_checkpoint(path: str | os.PathLike[str]) -> Any:
    """``torch.load`` a file on the CPU with ``weights_only=True`` and a clear error when it fails."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint at {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch.load fails in many ways on a damaged or foreign file
        raise ValueError(
            f"{path} is not a readable PyTorch checkpoint (truncated, corrupt, or another format): "
            f"{err}"
        ) from err


def backbone_state_dict(content: Any, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The backbone weights, in hgtrain's key layout, out of whatever ``read_checkpoint`` returned."""
    if not isinstance(content, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in content.values()
    ):
        raise ValueError(
            f"{source} holds no state dict of tensors; expected a CornerNet-Lite or CornerNet "
            "checkpoint or an hgtrain backbone state dict."
        )
    if "pre.0.conv.weight" in content:
        return dict(content)
    backbone, _ = from_cornernet_lite(content)
    return backbone


def load_backbone(path: str | os.PathLike[str]) -> HourglassBackbone:
    """Build the backbone that the weights in ``path`` belong to, and load them strictly.

    The architecture (variant, depth, widths, stacks) is inferred from the keys and shapes, so no
    config is needed. The returned module is in training mode, on the CPU.
    """
    source = str(path)
    state = backbone_state_dict(read_checkpoint(path), source)
    backbone = HourglassBackbone(infer_config(state))
    load_state_exactly(backbone, state, source)
    return backbone
