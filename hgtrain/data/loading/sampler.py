"""A distributed sampler that encodes the epoch in the index, for never-repeating train streams."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DistributedSampler

__all__ = ["EpochSampler"]


class EpochSampler(DistributedSampler):
    """Yield ``epoch * length + i`` for this rank's share of the positions ``i`` of an epoch.

    Datasets of this package read such an index as (epoch, position), so a synthetic set renders
    new images every epoch and a folder set draws new augmentations, while samples stay pure
    functions of their index: independent of worker count, and disjoint across the ``num_replicas``
    ranks (rank r takes positions r, r + W, r + 2W, ... of the epoch's order; the last
    ``length % W`` positions are dropped so that all ranks run the same number of steps).

    It subclasses ``DistributedSampler`` so that Lightning neither replaces it under DDP nor
    forgets to call :meth:`set_epoch` each epoch. :meth:`resume` skips the start of one epoch, for
    a run that continues from a checkpoint saved in the middle of it.

    Args:
        length: positions per epoch (the dataset's length).
        num_replicas: number of DDP processes (world size).
        rank: this process's rank.
        shuffle: visit positions in a random order (seeded by ``seed`` and the epoch).
        seed: seed of that order.
        fresh_epochs: False repeats epoch 0's indices every epoch (for overfitting checks).
    """

    def __init__(
        self,
        length: int,
        num_replicas: int = 1,
        rank: int = 0,
        shuffle: bool = False,
        seed: int = 0,
        fresh_epochs: bool = True,
    ) -> None:
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank must be in [0, {num_replicas}), got {rank}")
        if length < num_replicas:
            raise ValueError(f"length {length} is smaller than the number of ranks {num_replicas}")
        super().__init__(range(length), num_replicas, rank, shuffle=shuffle, seed=seed)
        self.length = length
        self.fresh_epochs = fresh_epochs
        self.num_samples = length // num_replicas
        self.total_size = self.num_samples * num_replicas
        self.resume_epoch, self.consumed = -1, 0

    def resume(self, epoch: int, consumed: int) -> None:
        """In ``epoch``, leave out the first ``consumed`` indices of this rank's share (those an
        interrupted run trained on already); other epochs are whole."""
        self.resume_epoch, self.consumed = epoch, consumed

    def __iter__(self) -> Iterator[int]:
        epoch = self.epoch if self.fresh_epochs else 0
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            order = torch.randperm(self.length, generator=generator)[: self.total_size].tolist()
        else:
            order = range(self.total_size)
        start = epoch * self.length
        share = order[self.rank : self.total_size : self.num_replicas]
        if self.epoch == self.resume_epoch:
            share = share[self.consumed :]
        return iter([start + p for p in share])

    def __len__(self) -> int:
        return self.num_samples
