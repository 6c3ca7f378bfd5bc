"""Test-wide settings."""

import torch

# The tests run tiny models, for which a second intra-op thread costs more than it brings, and the
# suite must not be slowed down by oversubscription on a 2-core machine that is also running
# DataLoader workers or DDP processes.
torch.set_num_threads(1)
