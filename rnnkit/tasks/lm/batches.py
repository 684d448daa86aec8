"""Language-model batches, in the two forms of SPEC.md.

Stream mode (truncated BPTT, Zaremba et al. 2014; pytorch/examples word_language_model):
the corpus is one token stream, cut into B parallel rows; batch k is the window of ``bptt``
steps starting at ``k * bptt``, and the target is the input shifted by one. The hidden state at
the end of window k is the initial state of window k + 1 (detached by the caller), so a row is
read as one long sequence.

Sentence mode: each line is its own sequence, ``<bos> w_1 .. w_n`` -> ``w_1 .. w_n <eos>``;
lines of similar length are batched together (bucketing) and padded, and the padding is masked
out of the loss (``ignore_index = pad``).

Both are indexable by batch number, so a run resumes at any batch of any epoch. Under DDP,
rank r of W gets every W-th row (stream) or every W-th batch (sentence), so the ranks together
see what one process would.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from rnnkit.data.batch_order import bucketed_batches, rank_share
from rnnkit.data.shuffle import pad_ids, permutation

MODES = ("stream", "sentence")  # data.mode: StreamBatches, SentenceBatches
Batch = tuple[Tensor, Tensor, Tensor | None]  # inputs (B, T), targets (B, T), lengths (B,) or None


class StreamBatches:
    """ids (N,) -> rows (B, N // B), windows of ``bptt``: batch k is (inputs, targets, None),
    each (b, t) with t = min(bptt, L - 1 - k * bptt) and b = the rows of this rank."""

    def __init__(self, ids: Tensor, batch_size: int, bptt: int, rank: int = 0, world_size: int = 1):
        if batch_size % world_size:
            raise ValueError(f"batch_size {batch_size} is not divisible by {world_size} processes")
        columns = ids.numel() // batch_size
        if columns < 2:
            raise ValueError(f"{ids.numel()} tokens are too few for {batch_size} rows")
        rows = ids[: columns * batch_size].view(batch_size, columns)  # (B, L): row b reads on
        self.rows = rows[rank::world_size].contiguous()
        self.bptt = bptt

    def __len__(self) -> int:
        return math.ceil((self.rows.shape[1] - 1) / self.bptt)

    def batch(self, epoch: int, k: int) -> Batch:
        start = k * self.bptt
        steps = min(self.bptt, self.rows.shape[1] - 1 - start)
        return (
            self.rows[:, start : start + steps],
            self.rows[:, start + 1 : start + 1 + steps],
            None,
        )

    def num_tokens(self) -> int:
        return self.rows.shape[0] * (self.rows.shape[1] - 1)


class SentenceBatches:
    """Lines of token ids -> padded batches of similar length.

    Each epoch the lines are shuffled (a generator seeded by ``seed + epoch``, so any epoch can
    be rebuilt on resume), cut into chunks of 100 batches, each chunk sorted by length and split
    into batches, and the batches shuffled: similar lengths, little padding, random order.
    """

    def __init__(
        self,
        lines: list[list[int]],
        batch_size: int,
        pad: int,
        bos: int,
        eos: int,
        shuffle: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ):
        self.lines = [line for line in lines if line]
        if not self.lines:
            raise ValueError("no non-empty lines to batch")
        self.batch_size, self.pad, self.bos, self.eos = batch_size, pad, bos, eos
        self.shuffle, self.seed, self.rank, self.world_size = shuffle, seed, rank, world_size
        self._order_epoch: int | None = None
        self._order: list[list[int]] = []

    def _batches(self, epoch: int) -> list[list[int]]:
        if self._order_epoch != epoch:
            batches = bucketed_batches(
                [len(line) for line in self.lines],
                self.batch_size,
                self.seed + epoch,
                permutation if self.shuffle else None,
            )
            self._order = rank_share(batches, self.rank, self.world_size)
            self._order_epoch = epoch
        return self._order

    def __len__(self) -> int:
        return len(self._batches(0))

    def batch(self, epoch: int, k: int) -> Batch:
        lines = [self.lines[i] for i in self._batches(epoch)[k]]
        lengths = torch.tensor([len(line) + 1 for line in lines])
        inputs = pad_ids([[self.bos, *line] for line in lines], self.pad)  # (B, T)
        targets = pad_ids([[*line, self.eos] for line in lines], self.pad)  # (B, T)
        return inputs, targets, lengths

    def num_tokens(self) -> int:
        return sum(len(line) + 1 for line in self.lines)
