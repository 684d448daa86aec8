"""The order of batches in an epoch, shared by every batcher that buckets by length.

Deterministic from (seed, epoch), so a resumed run rebuilds any epoch exactly; under DDP each
rank takes every W-th batch and all ranks take the same number, so their all-reduces pair up.
"""

from __future__ import annotations

from typing import TypeVar

import torch

T = TypeVar("T")


def permutation(count: int, seed: int) -> list[int]:
    """A random order of range(count), the same for the same seed."""
    return torch.randperm(count, generator=torch.Generator().manual_seed(seed)).tolist()


def rank_share(batches: list[T], rank: int, world_size: int) -> list[T]:
    """Batches rank, rank + W, ... of the first ``len - len % W`` (every rank gets as many)."""
    usable = len(batches) - len(batches) % world_size
    return batches[rank:usable:world_size]
