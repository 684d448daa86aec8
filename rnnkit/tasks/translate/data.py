"""Parallel text for sequence-to-sequence translation: reading pairs, filtering them, batching them.

A corpus is either two aligned files (line i of one translates line i of the other) or one TSV
file whose first two columns are a pair, as in the Tatoeba sentence pairs (``English<TAB>French``
in ``/work/shared/data/eng-fra/eng-fra.txt``; further columns, such as attribution, are ignored)::

    pairs = read_parallel("train.en", "train.fr")       # or read_parallel("eng-fra.txt")
    ids = [(src_tok.encode(x), tgt_tok.encode(y)) for x, y in pairs]
    ids, dropped = filter_pairs(ids, max_length=50)     # {"empty": 12, "too_long": 3}
    v = tgt_tok.vocab
    batches = PairBatches(ids, batch_tokens=4096, batch_size=None, pad=v.pad_index, bos=v.bos_index,
                          eos=v.eos_index)
    source, source_lengths, target_in, target_out, indices = batches.batch(epoch, k)

Batches follow fairseq's ``max_tokens`` and Joey NMT's token batching: pairs of similar length
are padded together and a batch holds as many pairs as a token budget allows. Like
``lm_batches.SentenceBatches`` they are indexable by (epoch, k), so a run resumes at any batch, and
under DDP rank r of W takes every W-th batch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from rnnkit.data.batch_order import rank_share
from rnnkit.data.padding import pad_sources
from rnnkit.data.shuffle import pad_ids, permutation, tensors

if TYPE_CHECKING:
    from torch import Tensor

Pair = tuple[list[int], list[int]]  # (source ids, target ids), no specials


def filter_pairs(pairs: list[Pair], max_length: int | None) -> tuple[list[Pair], dict[str, int]]:
    """Drop the pairs with an empty side ("empty") or a side of more than ``max_length`` tokens
    ("too_long"; specials not counted, None for no limit).

    Returns the kept pairs, in order, and how many were dropped for each reason (both keys always
    present; a pair that is both empty and too long counts as empty).
    """
    kept, dropped = [], {"empty": 0, "too_long": 0}
    for src, tgt in pairs:
        if not src or not tgt:
            dropped["empty"] += 1
        elif max_length is not None and max(len(src), len(tgt)) > max_length:
            dropped["too_long"] += 1
        else:
            kept.append((src, tgt))
    return kept, dropped


class PairBatch(NamedTuple):
    """One padded batch of B pairs; S and T are the longest source and target plus one."""

    source: Tensor  # (B, S): x_1 .. x_m <eos>, then pad
    source_lengths: Tensor  # (B,): m + 1
    target_in: Tensor  # (B, T): <bos> y_1 .. y_n, then pad
    target_out: Tensor  # (B, T): y_1 .. y_n <eos>, then pad
    indices: list[int]  # row b is pairs[indices[b]]


class PairBatches:
    """Pairs of token ids -> padded batches of similar lengths, by token budget or pair count.

    Each source gets ``<eos>`` appended, as in Joey NMT, so the encoder reads where the sentence
    ends and even an empty source has one token; the decoder reads ``<bos> y`` and predicts
    ``y <eos>``. One ``eos`` serves both sides: a tokenizer kind puts its specials first in a fixed
    order, so with the same kind on both sides it is the same index in both vocabularies.

    Size: with ``batch_tokens`` (which wins over ``batch_size`` when both are given) a batch of B
    pairs has ``B * max(S, T) <= batch_tokens``, S and T the padded source and target lengths
    (eos/bos included), so neither padded tensor exceeds the budget, as fairseq's ``max_tokens``
    counts; a pair over budget on its own is a batch of one. Otherwise a batch holds
    ``batch_size`` pairs.

    Order: each epoch the pairs are shuffled (a generator seeded by ``seed + epoch``) and then
    stably sorted by (source length, target length), as fairseq's ``ordered_indices`` does, and
    cut into batches that the same generator shuffles. The cut points depend on the lengths alone,
    so every epoch has the same number of batches (the trainer asks for it once, without the epoch,
    and DDP ranks must agree on it) while equal-length pairs meet different partners each epoch.
    With ``shuffle=False`` both shuffles are skipped: pairs in file order among equal lengths,
    batches from shortest to longest, for evaluating or translating with ``indices`` to restore
    the input order.

    DDP: rank r of W takes batches r, r + W, ...; the last ``len % W`` batches of the epoch are
    dropped so that every rank takes the same number.
    """

    def __init__(
        self,
        pairs: list[Pair],
        batch_tokens: int | None,
        batch_size: int | None,
        pad: int,
        bos: int,
        eos: int,
        shuffle: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ):
        if not pairs:
            raise ValueError("no pairs to batch")
        size = batch_tokens if batch_tokens is not None else batch_size
        if size is None or size < 1:
            raise ValueError(
                f"need a positive batch_tokens or batch_size, not {batch_tokens}, {batch_size}"
            )
        self.pairs = pairs
        self.pad, self.bos, self.eos = pad, bos, eos
        self.shuffle, self.seed, self.rank, self.world_size = shuffle, seed, rank, world_size
        self._keys = [(len(src), len(tgt)) for src, tgt in pairs]
        lengths = sorted(self._keys)
        if batch_tokens is not None:
            self._bounds = _cut_by_tokens([max(s, t) + 1 for s, t in lengths], batch_tokens)
        else:
            self._bounds = [
                (i, min(i + batch_size, len(pairs))) for i in range(0, len(pairs), batch_size)
            ]
        if len(self._bounds) < world_size:
            raise ValueError(f"{len(self._bounds)} batches are too few for {world_size} processes")
        self._order_epoch: int | None = None
        self._order: list[list[int]] = []

    def _batches(self, epoch: int) -> list[list[int]]:
        """This rank's batches of the epoch, as lists of indices into ``pairs``."""
        if self._order_epoch != epoch:
            indices = (
                permutation(len(self.pairs), self.seed + epoch)
                if self.shuffle
                else list(range(len(self.pairs)))
            )
            indices.sort(key=self._keys.__getitem__)  # stable: shuffled order among equal lengths
            batches = [indices[start:end] for start, end in self._bounds]
            if self.shuffle:
                batches = [
                    batches[i] for i in permutation(len(batches), self.seed + epoch + 1_000_003)
                ]
            self._order = rank_share(batches, self.rank, self.world_size)
            self._order_epoch = epoch
        return self._order

    def __len__(self) -> int:
        """Batches per epoch for this rank, the same in every epoch."""
        return len(self._bounds) // self.world_size

    def batch(self, epoch: int, k: int) -> PairBatch:
        indices = self._batches(epoch)[k]
        sources = [self.pairs[i][0] for i in indices]
        targets = [self.pairs[i][1] for i in indices]
        source, source_lengths = tensors(*pad_sources(sources, self.pad, self.eos))  # (B, S), (B,)
        target_in = pad_ids([[self.bos, *tgt] for tgt in targets], self.pad)  # (B, T)
        target_out = pad_ids([[*tgt, self.eos] for tgt in targets], self.pad)  # (B, T)
        return PairBatch(source, source_lengths, target_in, target_out, indices)

    def num_target_tokens(self) -> int:
        """Target tokens of all pairs, each ``<eos>`` included: what one epoch predicts over all
        ranks (less the batches that DDP drops)."""
        return sum(len(tgt) + 1 for _, tgt in self.pairs)


def _cut_by_tokens(costs: list[int], budget: int) -> list[tuple[int, int]]:
    """Greedy (start, end) spans of ``costs`` with ``(end - start) * max(costs[start:end]) <=
    budget``, or a single item that alone exceeds it."""
    bounds, start, longest = [], 0, 0
    for i, cost in enumerate(costs):
        if i > start and (i + 1 - start) * max(longest, cost) > budget:
            bounds.append((start, i))
            start, longest = i, 0
        longest = max(longest, cost)
    bounds.append((start, len(costs)))
    return bounds
