"""Tiny hourglass configurations shared by the model tests."""

import pytest

from hgtrain.models import HourglassConfig


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


@pytest.fixture(params=["cornernet", "saccade", "squeeze"])
def tiny(request) -> HourglassConfig:
    return tiny_config(request.param)
