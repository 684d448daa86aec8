"""The order of batches in an epoch, shared by every batcher that buckets by length.

Deterministic from (seed, epoch), so a resumed run rebuilds any epoch exactly; under DDP each
rank takes every W-th batch and all ranks take the same number, so their all-reduces pair up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from rnnkit.config import COUNT, key

T = TypeVar("T")


@dataclass
class BatchKeys:
    batch_size: int = key(20, **COUNT)


@dataclass
class EvalBatchKeys:
    eval_batch_size: int = key(10, **COUNT)


Permute = Callable[[int, int], list[int]]  # (count, seed) -> an order of range(count)


def rank_share(batches: list[T], rank: int, world_size: int) -> list[T]:
    """Batches rank, rank + W, ... of the first ``len - len % W`` (every rank gets as many)."""
    usable = len(batches) - len(batches) % world_size
    return batches[rank:usable:world_size]


def bucketed_batches(
    lengths: list[int], batch_size: int, seed: int, permute: Permute | None = None
) -> list[list[int]]:
    """Indices of ``lengths`` cut into batches of similar length (bucketing).

    Shuffled (``permute(n, seed)``, e.g. ``data.shuffle.permutation``), cut into chunks of 100
    batches, each chunk sorted by length and split into batches, the batches shuffled again
    (seed + 1,000,003): little padding, random order. Without ``permute``: input order, chunks
    sorted, batches in that order (decoding, which runs without torch). Callers pass seed + epoch
    so that any epoch can be rebuilt on resume.
    """
    shuffle = permute is not None
    indices = permute(len(lengths), seed) if shuffle else list(range(len(lengths)))
    chunk = 100 * batch_size
    batches = []
    for start in range(0, len(indices), chunk):
        part = sorted(indices[start : start + chunk], key=lambda i: lengths[i])
        batches += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
    if shuffle:
        batches = [batches[i] for i in permute(len(batches), seed + 1_000_003)]
    return batches


class BucketBatches:
    """The batches of example indices of every epoch: ``bucketed_batches`` of the examples'
    lengths (seeded by seed + epoch), this rank's share (``rank_share``); ``indices(epoch, k)``
    is batch k of an epoch, rebuilt identically on resume. Without ``permute``, every epoch is
    the same length-sorted order (evaluation)."""

    def __init__(
        self,
        lengths: list[int],
        batch_size: int,
        permute: Permute | None = None,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if not lengths:
            raise ValueError("no examples to batch")
        self.lengths, self.batch_size, self.permute = lengths, max(1, batch_size), permute
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self._epoch: int | None = None
        self._batches: list[list[int]] = []

    def _order(self, epoch: int) -> list[list[int]]:
        epoch = epoch if self.permute else 0
        if self._epoch != epoch:
            seed = self.seed + epoch
            batches = bucketed_batches(self.lengths, self.batch_size, seed, self.permute)
            self._batches, self._epoch = rank_share(batches, self.rank, self.world_size), epoch
        return self._batches

    def __len__(self) -> int:
        return len(self._order(0))

    def indices(self, epoch: int, k: int) -> list[int]:
        return self._order(epoch)[k]
