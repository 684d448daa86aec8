"""Parallel text: reading aligned files and TSV pairs, filtering, and token-budget batches."""

from __future__ import annotations

import pytest
import torch

from rnnkit.errors import UserError
from rnnkit.tasks.translate.data import PairBatches, filter_pairs
from rnnkit.tasks.translate.pairs import read_parallel
from rnnkit.tasks.translate.run import source_batches

PAD, BOS, EOS = 0, 3, 2


def test_read_two_aligned_files_keeps_lines_as_they_are(tmp_path):
    (tmp_path / "a.en").write_text("Go.\r\n  Run! \n\nHi.\n", encoding="utf-8")
    (tmp_path / "a.fr").write_text("Va !\r\nCours !\nx\nSalut.", encoding="utf-8")
    assert read_parallel(tmp_path / "a.en", tmp_path / "a.fr") == [
        ("Go.", "Va !"),
        ("  Run! ", "Cours !"),
        ("", "x"),
        ("Hi.", "Salut."),
    ]


def test_read_tsv_takes_the_first_two_columns(tmp_path):
    path = tmp_path / "eng-fra.txt"
    path.write_text("Go.\tVa !\tCC-BY 2.0 (France) #2877272\nRun!\tCours !\n", encoding="utf-8")
    assert read_parallel(path) == [("Go.", "Va !"), ("Run!", "Cours !")]


def test_line_count_mismatch_names_both_files_and_counts(tmp_path):
    (tmp_path / "train.en").write_text("a\nb\nc\n", encoding="utf-8")
    (tmp_path / "train.fr").write_text("x\ny\n", encoding="utf-8")
    with pytest.raises(UserError) as error:
        read_parallel(tmp_path / "train.en", tmp_path / "train.fr")
    message = str(error.value)
    assert "\n" not in message
    assert (
        f"{tmp_path / 'train.en'} has 3 lines" in message
        and f"{tmp_path / 'train.fr'} has 2" in message
    )


def test_tsv_line_without_tab_is_an_error_at_that_line(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("Go.\tVa !\nRun! Cours !\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"pairs\.tsv:2: expected two tab-separated columns$"):
        read_parallel(path)


def test_empty_file_is_reported_as_textio_does(tmp_path):
    (tmp_path / "a.en").write_text("a\n", encoding="utf-8")
    (tmp_path / "a.fr").write_text("", encoding="utf-8")
    with pytest.raises(UserError, match=r"a\.fr: file is empty"):
        read_parallel(tmp_path / "a.en", tmp_path / "a.fr")


def test_filter_pairs_counts_each_reason():
    pairs = [
        ([5], [6, 7]),
        ([], [6]),
        ([5], []),
        ([5] * 4, [6]),
        ([5], [6] * 4),
        ([5] * 3, [6] * 3),
    ]
    kept, dropped = filter_pairs(pairs, max_length=3)
    assert kept == [([5], [6, 7]), ([5] * 3, [6] * 3)]
    assert dropped == {"empty": 2, "too_long": 2}
    kept, dropped = filter_pairs(pairs, max_length=None)
    assert len(kept) == 4 and dropped == {"empty": 2, "too_long": 0}


def make_pairs(n: int = 300) -> list[tuple[list[int], list[int]]]:
    gen = torch.Generator().manual_seed(0)

    def sentence() -> list[int]:
        return torch.randint(
            4, 30, (int(torch.randint(1, 15, (1,), generator=gen)),), generator=gen
        ).tolist()

    return [(sentence(), sentence()) for _ in range(n)]


def all_batches(batches: PairBatches, epoch: int) -> list:
    return [batches.batch(epoch, k) for k in range(len(batches))]


@pytest.mark.parametrize("budget, size", [(60, None), (None, 16)])
def test_every_pair_once_per_epoch_padded_and_shifted(budget, size):
    pairs = make_pairs()
    batches = PairBatches(
        pairs, batch_tokens=budget, batch_size=size, pad=PAD, bos=BOS, eos=EOS, seed=1
    )
    for epoch in range(3):
        seen = []
        for b in all_batches(batches, epoch):
            assert b.source.shape[0] == b.target_in.shape[0] == len(b.indices)
            assert b.source.shape[1] == int(b.source_lengths.max())
            assert b.target_in.shape == b.target_out.shape
            for row, i in enumerate(b.indices):
                src, tgt = pairs[i]
                m, n = len(src) + 1, len(tgt) + 1
                assert int(b.source_lengths[row]) == m
                assert b.source[row, :m].tolist() == [*src, EOS] and torch.all(
                    b.source[row, m:] == PAD
                )
                assert b.target_in[row, :n].tolist() == [BOS, *tgt]
                assert b.target_out[row, :n].tolist() == [*tgt, EOS]
                assert torch.all(b.target_in[row, n:] == PAD) and torch.all(
                    b.target_out[row, n:] == PAD
                )
            seen += b.indices
        assert sorted(seen) == list(range(len(pairs)))
    assert batches.num_target_tokens() == sum(len(t) + 1 for _, t in pairs)


def test_token_budget_is_respected_and_batches_are_bucketed():
    pairs = make_pairs() + [([5] * 40, [6] * 2)]  # 41 source tokens: over budget alone
    batches = PairBatches(pairs, batch_tokens=60, batch_size=8, pad=PAD, bos=BOS, eos=EOS)
    sizes = []
    for b in all_batches(batches, 0):
        longest = max(b.source.shape[1], b.target_in.shape[1])
        assert len(b.indices) == 1 or len(b.indices) * longest <= 60
        sizes.append(len(b.indices))
    assert max(sizes) > 8  # the budget, not batch_size, decides
    in_file_order, start = 0, 0  # the same batch sizes, taken in file order instead
    for size in sizes:
        lengths = [len(src) for src, _ in pairs[start : start + size]]
        in_file_order += sum(max(lengths) - n for n in lengths)
        start += size
    sorted_padding = sum(int((b.source == PAD).sum()) for b in all_batches(batches, 0))
    assert sorted_padding < in_file_order / 4


def test_a_batch_fills_the_budget_exactly():
    pairs = [([5] * 4, [6] * 3)] * 12  # padded lengths 5 and 4: each pair costs 5 tokens
    batches = PairBatches(pairs, batch_tokens=20, batch_size=None, pad=PAD, bos=BOS, eos=EOS)
    assert [len(b.indices) for b in all_batches(batches, 0)] == [4, 4, 4]


def test_batches_rebuild_per_epoch_and_differ_between_epochs():
    pairs = make_pairs()
    a = PairBatches(pairs, batch_tokens=60, batch_size=None, pad=PAD, bos=BOS, eos=EOS, seed=7)
    a.batch(5, 0)  # another epoch cached first must not change what epoch 2 gives
    b = PairBatches(pairs, batch_tokens=60, batch_size=None, pad=PAD, bos=BOS, eos=EOS, seed=7)
    assert len(a) == len(b)
    for k in range(len(a)):
        assert a.batch(2, k).indices == b.batch(2, k).indices
        assert torch.equal(a.batch(2, k).target_out, b.batch(2, k).target_out)
    assert [x.indices for x in all_batches(a, 2)] != [x.indices for x in all_batches(a, 3)]
    c = PairBatches(pairs, batch_tokens=60, batch_size=None, pad=PAD, bos=BOS, eos=EOS, seed=8)
    assert [x.indices for x in all_batches(a, 2)] != [x.indices for x in all_batches(c, 2)]


def test_unshuffled_batches_run_shortest_first_in_file_order():
    pairs = make_pairs()
    batches = PairBatches(
        pairs, batch_tokens=None, batch_size=16, pad=PAD, bos=BOS, eos=EOS, shuffle=False
    )
    order = [i for b in all_batches(batches, 0) for i in b.indices]
    assert order == sorted(range(len(pairs)), key=lambda i: (len(pairs[i][0]), len(pairs[i][1]), i))
    assert order == [i for b in all_batches(batches, 4) for i in b.indices]


def test_ranks_take_disjoint_batches_of_equal_count():
    pairs = make_pairs(301)
    whole = PairBatches(pairs, batch_tokens=60, batch_size=None, pad=PAD, bos=BOS, eos=EOS, seed=3)
    ranks = [
        PairBatches(
            pairs,
            batch_tokens=60,
            batch_size=None,
            pad=PAD,
            bos=BOS,
            eos=EOS,
            seed=3,
            rank=r,
            world_size=2,
        )
        for r in range(2)
    ]
    assert len(ranks[0]) == len(ranks[1]) == len(whole) // 2
    for epoch in range(2):
        every = all_batches(whole, epoch)
        for k in range(len(ranks[0])):  # rank r's batch k is batch 2k + r of the whole epoch
            assert ranks[0].batch(epoch, k).indices == every[2 * k].indices
            assert ranks[1].batch(epoch, k).indices == every[2 * k + 1].indices
        seen = [[i for b in all_batches(part, epoch) for i in b.indices] for part in ranks]
        assert not set(seen[0]) & set(seen[1])
        assert len(pairs) - len(seen[0]) - len(seen[1]) <= max(len(b.indices) for b in every)
    assert len(whole) % 2 == 1  # so rank 0 must drop the odd batch out
    with pytest.raises(IndexError):
        ranks[0].batch(0, len(ranks[0]))


def test_too_few_batches_for_the_ranks_is_an_error():
    with pytest.raises(ValueError, match="too few"):
        PairBatches(
            make_pairs(3), batch_tokens=None, batch_size=8, pad=PAD, bos=BOS, eos=EOS, world_size=2
        )


def test_source_batches_sort_by_length_and_restore_order():
    sources = [[5] * n for n in (4, 1, 7, 2, 2, 9, 3)]
    restored: list[list[int] | None] = [None] * len(sources)
    longest = 0
    for source, lengths, indices in source_batches(sources, batch_size=3, pad=PAD, eos=EOS):
        assert source.shape == (len(indices), int(lengths.max()))
        assert int(lengths.min()) >= longest  # shortest first
        longest = int(lengths.max())
        for row, i in enumerate(indices):
            restored[i] = source[row, : int(lengths[row])].tolist()
    assert restored == [[*src, EOS] for src in sources]
