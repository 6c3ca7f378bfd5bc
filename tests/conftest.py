"""Test-wide settings."""

import os

import pytest
import torch

from hgtrain.models import HourglassConfig
from tests.helpers import tiny_config

# The tests run tiny models, for which a second intra-op thread costs more than it brings, and the
# suite must not be slowed down by oversubscription on a 2-core machine that is also running
# DataLoader workers or DDP processes.
torch.set_num_threads(1)
# The processes that tests start (hgtrain commands, DDP ranks) get one OpenMP thread too: beside
# the other pytest-xdist worker, a second thread that spins while it waits for the busy core made
# a test that trains in a subprocess five times slower (102 s instead of 21 s on 2 cores).
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(params=["cornernet", "saccade", "squeeze"])
def tiny(request) -> HourglassConfig:
    """A few-thousand-parameter hourglass of each variant (:func:`tests.helpers.tiny_config`)."""
    return tiny_config(request.param)
