"""Batch assembly for the ``(image, target)`` pairs of the keypoint datasets."""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["collate_keypoints"]


def collate_keypoints(
    batch: Sequence[tuple[torch.Tensor, dict[str, torch.Tensor]]],
) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
    """Stack the uint8 images into [B, 3, H, W] and keep the per-image target dicts as a list
    (their numbers of keypoints and boxes differ)."""
    images, targets = zip(*batch, strict=True)
    return torch.stack(images), list(targets)
