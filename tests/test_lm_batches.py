"""Language-model batches: the stream cut for truncated BPTT, and bucketed padded sentences."""

from __future__ import annotations

import torch

from rnnkit.tasks.lm.batches import SentenceBatches, StreamBatches


def test_stream_rows_windows_and_shift():
    ids = torch.arange(103)
    batches = StreamBatches(ids, batch_size=4, bptt=7)
    assert batches.rows.shape == (4, 25)  # 103 // 4 columns; the 3-token tail is dropped
    assert torch.equal(batches.rows[1], torch.arange(25, 50))  # row b continues the text
    assert len(batches) == 4  # ceil(24 / 7): the last window is shorter
    inputs = torch.cat([batches.batch(0, k)[0] for k in range(len(batches))], dim=1)
    targets = torch.cat([batches.batch(0, k)[1] for k in range(len(batches))], dim=1)
    assert torch.equal(inputs, batches.rows[:, :-1])
    assert torch.equal(targets, batches.rows[:, 1:])
    assert batches.batch(0, 3)[0].shape == (4, 3)
    assert batches.num_tokens() == 4 * 24


def test_stream_ranks_share_the_rows():
    ids = torch.arange(200)
    whole = StreamBatches(ids, batch_size=4, bptt=5)
    parts = [StreamBatches(ids, batch_size=4, bptt=5, rank=r, world_size=2) for r in range(2)]
    assert torch.equal(parts[0].rows, whole.rows[0::2])
    assert torch.equal(parts[1].rows, whole.rows[1::2])
    assert len(parts[0]) == len(whole)


def make_lines(n: int = 53) -> list[list[int]]:
    gen = torch.Generator().manual_seed(0)
    return [
        torch.randint(
            4, 20, (int(torch.randint(1, 12, (1,), generator=gen)),), generator=gen
        ).tolist()
        for _ in range(n)
    ]


def test_sentence_batches_cover_every_line_once_with_bos_eos_and_padding():
    lines = make_lines()
    batches = SentenceBatches(lines, batch_size=8, pad=0, bos=2, eos=3, seed=5)
    seen = []
    for k in range(len(batches)):
        inputs, targets, lengths = batches.batch(1, k)
        assert inputs.shape == targets.shape and inputs.shape[1] == int(lengths.max())
        for row in range(inputs.shape[0]):
            n = int(lengths[row])
            assert inputs[row, 0] == 2 and targets[row, n - 1] == 3
            assert torch.equal(inputs[row, 1:n], targets[row, : n - 1])
            assert torch.all(inputs[row, n:] == 0) and torch.all(targets[row, n:] == 0)
            seen.append(tuple(targets[row, : n - 1].tolist()))
    assert sorted(seen) == sorted(tuple(line) for line in lines)


def test_sentence_batches_are_reproducible_per_epoch_and_bucketed():
    lines = make_lines(400)
    a = SentenceBatches(lines, batch_size=8, pad=0, bos=2, eos=3, seed=5)
    b = SentenceBatches(lines, batch_size=8, pad=0, bos=2, eos=3, seed=5)
    assert all(torch.equal(a.batch(3, k)[0], b.batch(3, k)[0]) for k in range(len(a)))
    assert not all(torch.equal(a.batch(3, k)[0], a.batch(4, k)[0]) for k in range(len(a)))
    padding = sum(int((a.batch(0, k)[0] == 0).sum()) for k in range(len(a)))
    unsorted = SentenceBatches(lines, batch_size=8, pad=0, bos=2, eos=3, shuffle=False)
    # bucketing by length pads far less than batching lines in random order would
    random_padding = 0
    order = torch.randperm(len(lines), generator=torch.Generator().manual_seed(0)).tolist()
    for start in range(0, len(order), 8):
        sizes = [len(lines[i]) + 1 for i in order[start : start + 8]]
        random_padding += sum(max(sizes) - s for s in sizes)
    assert padding < random_padding / 3
    assert len(unsorted) == len(a) == 50


def test_sentence_ranks_take_disjoint_batches():
    lines = make_lines(100)
    parts = [
        SentenceBatches(lines, batch_size=4, pad=0, bos=2, eos=3, seed=1, rank=r, world_size=2)
        for r in range(2)
    ]
    assert len(parts[0]) == len(parts[1]) == 12  # 25 batches, an even 24 used
    taken = [i for p in parts for batch in p._batches(0) for i in batch]
    assert len(taken) == len(set(taken)) == 96
