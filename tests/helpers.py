"""Small builders shared by the application tests."""

from __future__ import annotations

import torch

from hgtrain.models import HourglassConfig


def tiny_backbone(variant: str = "squeeze") -> HourglassConfig:
    """A tiny hourglass with the structure of a variant, for fast CPU tests at 64 px."""
    base = {
        "cornernet": dict(n=2, dims=[8, 12, 16], modules=[1, 1, 1], stacks=2),
        "saccade": dict(n=2, dims=[8, 12, 16], modules=[1, 1, 1], stacks=3, return_mergs=True),
        "squeeze": dict(
            n=2, dims=[8, 12, 16], modules=[1, 1, 1], stacks=2, block="fire", unpool="transposed"
        ),
    }[variant]
    return HourglassConfig(**base, stem_channels=8, feature_dim=8, name=f"tiny-{variant}")


def tiny_config(variant: str = "cornernet", **overrides) -> HourglassConfig:
    """A few-thousand-parameter hourglass with the structure of the named variant."""
    base = {
        "cornernet": dict(n=3, dims=[8, 8, 12, 16], modules=[2, 2, 2, 2], stacks=2),
        "saccade": dict(
            n=3, dims=[8, 12, 12, 16], modules=[1, 1, 1, 1], stacks=3, return_mergs=True
        ),
        "squeeze": dict(
            n=3,
            dims=[8, 8, 12, 16],
            modules=[2, 2, 2, 2],
            stacks=2,
            block="fire",
            unpool="transposed",
            stem_depth=2,
        ),
    }[variant]
    return HourglassConfig(**{**base, "stem_channels": 4, "feature_dim": 8, **overrides})


def keypoint_batch(batch_size: int = 2, size: int = 64, seed: int = 0):
    """A batch in the DataModule's format: boxes with their top-left / bottom-right corners."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(
        0, 256, (batch_size, 3, size, size), dtype=torch.uint8, generator=generator
    )
    targets = []
    for i in range(batch_size):
        corner = torch.rand(2, generator=generator) * size / 2
        extent = 8 + torch.rand(2, generator=generator) * size / 3
        box = torch.cat([corner, corner + extent])
        targets.append(
            {
                "keypoints": box.view(2, 2),
                "labels": torch.tensor([0, 1]),
                "sizes": extent.expand(2, 2).clone(),
                "boxes": box.view(1, 4),
                "image_id": torch.tensor(i),
            }
        )
    return images, targets
