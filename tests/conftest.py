"""Test-wide settings."""

import pytest
import torch

from hgtrain.models import HourglassConfig
from tests.helpers import tiny_config

# The tests run tiny models, for which a second intra-op thread costs more than it brings, and the
# suite must not be slowed down by oversubscription on a 2-core machine that is also running
# DataLoader workers or DDP processes.
torch.set_num_threads(1)


@pytest.fixture(params=["cornernet", "saccade", "squeeze"])
def tiny(request) -> HourglassConfig:
    """A few-thousand-parameter hourglass of each variant (:func:`tests.helpers.tiny_config`)."""
    return tiny_config(request.param)
