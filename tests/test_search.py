"""rnnkit.search: filtering, sampling, greedy and beam search against independent references.

Two fake models drive the decoders: a second-order Markov chain whose logits come from a
(V, V, V) table indexed by the previous and the current token (the previous one lives in
the state, so a beam that reorders its state wrongly scores the wrong continuations), and a
small randomly initialised GRU language model. References (exhaustive enumeration, a
hand-written argmax loop, sequence log-probabilities) call the step function one sequence
at a time, so they share no code with the decoders they check.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from rnnkit.decoding.search import (
    beam_search,
    block_repeated_ngrams,
    filter_logits,
    greedy,
    reorder_state,
    sample,
    sample_next,
)


class MarkovChain:
    """logits of the next token = table[previous token, current token]; state: (prev (1, N, 1),)."""

    def __init__(self, table: Tensor) -> None:
        self.table = table  # (V, V, V)

    @classmethod
    def first_order(cls, probs: list[list[float]]) -> MarkovChain:
        """A chain that ignores the previous token: row i holds p(next | current = i)."""
        logits = torch.tensor(probs).log()  # (V, V)
        return cls(logits.expand(len(probs), -1, -1))

    def step(self, tokens: Tensor, state: tuple[Tensor]) -> tuple[Tensor, tuple[Tensor]]:
        (prev,) = state
        return self.table[prev[0, :, 0], tokens], (tokens.view(1, -1, 1),)

    def start(self, prompts: list[tuple[int, int]]) -> tuple[Tensor, tuple[Tensor]]:
        """Read prompts of two tokens: first_logits (N, V) and the state after them."""
        prev, current = torch.tensor(prompts).T
        return self.table[prev, current], (current.view(1, -1, 1),)


class GRULanguageModel(nn.Module):
    def __init__(self, vocab_size: int = 7, hidden_size: int = 16) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embedding = nn.Embedding(vocab_size, hidden_size)
        self.rnn = nn.GRU(hidden_size, hidden_size, num_layers=2, batch_first=True)
        self.output = nn.Linear(hidden_size, vocab_size)
        with torch.no_grad():  # peakier distributions than the default init: fewer near-ties
            self.output.weight.mul_(4)

    @torch.no_grad()
    def step(self, tokens: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """tokens (N,), state (2, N, H) -> logits (N, V), state."""
        out, state = self.rnn(self.embedding(tokens).unsqueeze(1), state)
        return self.output(out[:, 0]), state

    @torch.no_grad()
    def start(self, prompts: list[list[int]]) -> tuple[Tensor, Tensor]:
        out, state = self.rnn(self.embedding(torch.tensor(prompts)))
        return self.output(out[:, -1]), state


GRU_PROMPTS = [[1, 2, 3], [4, 4, 0], [6, 5, 2]]


def random_chain(vocab_size: int = 4, seed: int = 0) -> MarkovChain:
    generator = torch.Generator().manual_seed(seed)
    return MarkovChain(2 * torch.randn(vocab_size, vocab_size, vocab_size, generator=generator))


def sequence_log_prob(
    step_fn, first_logits: Tensor, state, tokens: list[int], eos: int | None = None
) -> float:
    """log P(tokens [+ eos]) for one input: first_logits (1, V), fed one token at a time."""
    logits, total = first_logits, 0.0
    for i, token in enumerate(tokens + ([] if eos is None else [eos])):
        total += logits.log_softmax(-1)[0, token].item()
        if i < len(tokens):
            logits, state = step_fn(torch.tensor([token]), state)
    return total


def exhaustive(
    chain: MarkovChain, prompt: tuple[int, int], length: int
) -> list[tuple[list[int], float]]:
    """Every sequence of ``length`` tokens with its log-probability, best first."""
    first, state = chain.start([prompt])
    vocab_size = first.shape[-1]
    scored = [
        (list(seq), sequence_log_prob(chain.step, first, state, list(seq)))
        for seq in itertools.product(range(vocab_size), repeat=length)
    ]
    return sorted(scored, key=lambda h: h[1], reverse=True)


def argmax_loop(step_fn, first_logits: Tensor, state, max_tokens: int) -> list[int]:
    """Greedy decoding of one input, written out: first_logits (1, V)."""
    logits, out = first_logits, []
    for _ in range(max_tokens):
        token = int(logits.argmax())
        out.append(token)
        logits, state = step_fn(torch.tensor([token]), state)
    return out


def has_repeated_ngram(tokens: list[int], n: int) -> bool:
    ngrams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return len(set(ngrams)) < len(ngrams)


# --- reorder_state ---------------------------------------------------------------------------


def test_reorder_state_selects_rows_of_every_tensor_along_batch_dim():
    h, c = torch.arange(24.0).view(2, 3, 4), torch.arange(24.0).view(2, 3, 4) + 100
    index = torch.tensor([2, 0, 0, 1])
    h2, [c2] = reorder_state((h, [c]), index)
    assert torch.equal(h2, h[:, [2, 0, 0, 1]]) and torch.equal(c2, c[:, [2, 0, 0, 1]])
    h0, [c0] = reorder_state((h, [c]), torch.tensor([1, 0, 1]), batch_dim=0)
    assert torch.equal(h0, h[[1, 0, 1]]) and torch.equal(c0, c[[1, 0, 1]])
    assert reorder_state(None, index) is None


# --- filter_logits, sample_next ---------------------------------------------------------------


def test_top_k_keeps_exactly_the_k_largest_even_with_ties():
    logits = torch.tensor([[1.0, 3.0, 3.0, 3.0, 0.0], [0.5, -1.0, 2.0, 0.1, 0.7]])
    kept = filter_logits(logits, top_k=2).isfinite()
    assert kept.sum(dim=1).tolist() == [2, 2]
    assert kept[1].tolist() == [False, False, True, False, True]
    assert torch.equal(filter_logits(logits[1:], top_k=2)[kept[1:]], logits[1:][kept[1:]])


@pytest.mark.parametrize(
    "top_p, kept",
    [
        (0.8, [False, True, False, True]),
        (0.81, [True, True, False, True]),
        (0.5, [False, True, False, False]),
        (1e-6, [False, True, False, False]),
        (1.0, [True, True, True, True]),
    ],
)
def test_top_p_keeps_the_smallest_nucleus_with_mass_at_least_p(top_p, kept):
    # probabilities 0.5, 0.3, 0.15, 0.05, shuffled so that the mask has to be unsorted again
    logits = torch.tensor([[0.15, 0.5, 0.05, 0.3]]).log()
    assert filter_logits(logits, top_p=top_p).isfinite()[0].tolist() == kept


def test_top_k_then_top_p_renormalises_within_the_top_k():
    logits = torch.tensor([[0.15, 0.5, 0.05, 0.3]]).log()
    # within the top 2 the probabilities are 0.625 and 0.375, so p = 0.6 keeps one token
    assert filter_logits(logits, top_k=2, top_p=0.6).isfinite()[0].tolist() == [
        False,
        True,
        False,
        False,
    ]


@pytest.mark.parametrize(
    "args, message",
    [
        ({"temperature": -0.1}, "temperature"),
        ({"top_k": -1}, "top_k"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
    ],
)
def test_sampling_arguments_are_checked(args, message):
    with pytest.raises(ValueError, match=message):
        sample_next(torch.zeros(1, 3), **{"temperature": 1.0, "top_k": 0, "top_p": 1.0, **args})


@pytest.mark.parametrize(
    "temperature, top_k, top_p", [(1.0, 0, 1.0), (0.5, 0, 1.0), (2.0, 2, 1.0), (1.0, 0, 0.8)]
)
def test_one_step_frequencies_match_the_filtered_softmax(temperature, top_k, top_p):
    logits = torch.tensor([[1.0, 0.2, -0.5, 0.6, -1.0]])
    draws = 20000
    tokens = sample_next(
        logits.expand(draws, -1), temperature, top_k, top_p, np.random.default_rng(0)
    )
    frequencies = torch.bincount(tokens, minlength=5) / draws
    expected = filter_logits(logits / temperature, top_k, top_p).softmax(-1)[0]
    assert (frequencies - expected).abs().max() < 0.02
    assert frequencies[~expected.bool()].sum() == 0  # filtered tokens are never drawn


def test_temperature_zero_is_argmax():
    logits = torch.randn(6, 9, generator=torch.Generator().manual_seed(0))
    assert torch.equal(sample_next(logits, temperature=0.0), logits.argmax(-1))


@pytest.mark.parametrize("temperature", [2.2250738585072014e-308, 1e-30])
def test_a_tiny_temperature_is_argmax_not_nan(temperature):
    """logits / 1e-308 overflows to inf; unshifted, softmax(inf - inf) was nan (found by the
    server's fuzz test)."""
    logits = 30 * torch.randn(6, 9, generator=torch.Generator().manual_seed(0))
    for top_k, top_p in [(0, 1.0), (3, 0.9)]:
        drawn = sample_next(logits, temperature=temperature, top_k=top_k, top_p=top_p)
        assert torch.equal(drawn, logits.argmax(-1))


# --- sample, greedy ----------------------------------------------------------------------------


def test_sampling_with_a_seeded_generator_is_reproducible():
    model = GRULanguageModel()
    first, state = model.start([GRU_PROMPTS[0]])
    expand = torch.zeros(5, dtype=torch.long)

    def draw(seed):
        return sample(
            model.step,
            first.expand(5, -1),
            reorder_state(state, expand),
            12,
            top_k=5,
            generator=np.random.default_rng(seed),
        )

    assert draw(0) == draw(0)
    assert draw(0) != draw(1)
    assert len({tuple(row) for row in draw(0)}) > 1  # the five rows are independent draws


def test_greedy_and_temperature_zero_sampling_follow_the_argmax():
    model = GRULanguageModel()
    first, state = model.start(GRU_PROMPTS)
    expected = [
        argmax_loop(model.step, first[b : b + 1], state[:, b : b + 1], 10) for b in range(3)
    ]
    assert greedy(model.step, first, state, 10) == expected
    assert sample(model.step, first, state, 10, temperature=0.0, top_k=3) == expected


def counting(step_fn):
    """step_fn that also counts its calls in ``.calls``."""

    def step(tokens, state):
        step.calls += 1
        return step_fn(tokens, state)

    step.calls = 0
    return step


# token i -> i + 1 (mod 5), almost surely; token 3 is eos
STAIRS = MarkovChain.first_order(
    [[0.001 if j != (i + 1) % 5 else 0.996 for j in range(5)] for i in range(5)]
)


def test_eos_ends_each_row_is_not_returned_and_stops_generation():
    first, state = STAIRS.start([(0, 0), (0, 1), (0, 4)])  # rows continue with 1, 2, 0
    step = counting(STAIRS.step)
    assert sample(step, first, state, 20, eos=3, generator=np.random.default_rng(0)) == [
        [1, 2],
        [2],
        [0, 1, 2],
    ]
    assert step.calls == 3  # the call after the last row's eos is never made
    step = counting(STAIRS.step)
    assert greedy(step, first, state, 2, eos=3) == [[1, 2], [2], [0, 1]]
    assert step.calls == 1  # max_tokens ends it too, without a step whose logits would go unused
    beams = beam_search(STAIRS.step, first, state, beam_size=2, max_tokens=20, eos=3)
    assert [hypotheses[0][0] for hypotheses in beams] == [[1, 2], [2], [0, 1, 2]]


# --- beam_search -------------------------------------------------------------------------------


@pytest.mark.parametrize("eos, alpha", [(None, 0.0), (0, 0.0), (0, 1.0)])
def test_beam_size_one_is_greedy_decoding_with_exact_scores(eos, alpha):
    model = GRULanguageModel()
    first, state = model.start(GRU_PROMPTS)
    beams = beam_search(
        model.step, first, state, beam_size=1, max_tokens=15, eos=eos, length_penalty=alpha
    )
    assert [hypotheses[0][0] for hypotheses in beams] == greedy(
        model.step, first, state, 15, eos=eos
    )
    for b, [(tokens, score)] in enumerate(beams):
        ended = eos is not None and len(tokens) < 15
        reference = sequence_log_prob(
            model.step, first[b : b + 1], state[:, b : b + 1], tokens, eos if ended else None
        )
        assert score == pytest.approx(
            reference / ((5 + len(tokens) + ended) / 6) ** alpha, abs=1e-5
        )
    if eos is not None:
        assert any(len(hypotheses[0][0]) < 15 for hypotheses in beams)  # eos did end some input


def test_a_wide_beam_finds_the_exhaustive_n_best_with_exact_scores():
    chain, prompt, length = random_chain(), (1, 2), 4
    first, state = chain.start([prompt])
    # beam 4^3 holds every prefix of 3 tokens, so the search is exhaustive
    [beams] = beam_search(chain.step, first, state, beam_size=64, max_tokens=length, n_best=6)
    best = exhaustive(chain, prompt, length)[:6]
    assert [tokens for tokens, _ in beams] == [tokens for tokens, _ in best]
    assert [score for _, score in beams] == pytest.approx([score for _, score in best], abs=1e-5)


def test_beam_search_finds_the_optimum_that_greedy_misses():
    # from 0 the greedy choice 1 (p 0.55) leads to a uniform next step;
    # 2 (p 0.45) leads to a near-certain path
    chain = MarkovChain.first_order(
        [
            [0.001, 0.55, 0.448, 0.001],
            [0.25] * 4,
            [0.01, 0.01, 0.01, 0.97],
            [0.01, 0.01, 0.01, 0.97],
        ]
    )
    first, state = chain.start([(0, 0)])
    [(best, best_score)] = exhaustive(chain, (0, 0), 4)[:1]
    assert greedy(chain.step, first, state, 4)[0] != best
    [[(tokens, score)]] = beam_search(chain.step, first, state, beam_size=2, max_tokens=4)
    assert tokens == best == [2, 3, 3, 3]
    assert score == pytest.approx(best_score, abs=1e-5)


@pytest.mark.parametrize("make", ["markov", "gru"])
def test_batched_beam_search_equals_each_input_alone(make):
    if make == "markov":
        chain = random_chain(vocab_size=5, seed=1)
        step, (first, state) = chain.step, chain.start([(0, 1), (2, 2), (4, 3)])
    else:
        model = GRULanguageModel()
        step, (first, state) = model.step, model.start(GRU_PROMPTS)
    limits = torch.tensor([6, 9, 4])
    options = {
        "beam_size": 4,
        "eos": 0,
        "n_best": 3,
        "length_penalty": 0.6,
        "block_ngram_repeat": 3,
    }
    batched = beam_search(step, first, state, max_tokens=limits, **options)
    for b in range(3):
        alone = beam_search(
            step,
            first[b : b + 1],
            reorder_state(state, torch.tensor([b])),
            max_tokens=int(limits[b]),
            **options,
        )[0]
        assert [tokens for tokens, _ in batched[b]] == [tokens for tokens, _ in alone]
        assert [score for _, score in batched[b]] == pytest.approx(
            [score for _, score in alone], abs=1e-5
        )
        assert len(batched[b]) == 3
        scores = [score for _, score in batched[b]]
        assert scores == sorted(scores, reverse=True)


def test_per_input_max_tokens_bound_each_input():
    chain = random_chain(vocab_size=5, seed=2)
    first, state = chain.start([(0, 1), (2, 2), (4, 3)])
    beams = beam_search(
        chain.step, first, state, beam_size=3, max_tokens=torch.tensor([2, 5, 3]), n_best=3
    )
    assert [[len(tokens) for tokens, _ in hypotheses] for hypotheses in beams] == [
        [2] * 3,
        [5] * 3,
        [3] * 3,
    ]


def test_beam_size_one_stops_at_the_first_finished_hypothesis_like_greedy():
    # eos = 0 is the greedy first choice; the path 2 3 3 ... is less probable but, with a
    # strong length penalty, would score better if the search went on to max_tokens
    chain = MarkovChain.first_order(
        [[1, 0, 0, 0], [0.6, 0, 0.4, 0], [0.01, 0, 0, 0.99], [0.01, 0, 0, 0.99]]
    )
    first, state = chain.start([(1, 1)])
    longer = (math.log(0.4) + 9 * math.log(0.99)) / (15 / 6) ** 2
    assert longer > math.log(0.6)
    [[(tokens, score)]] = beam_search(
        chain.step, first, state, beam_size=1, max_tokens=10, eos=0, length_penalty=2.0
    )
    assert tokens == greedy(chain.step, first, state, 10, eos=0)[0] == []
    assert score == pytest.approx(math.log(0.6) / 1.0, abs=1e-5)


def test_impossible_hypotheses_are_never_returned():
    first, state = STAIRS.start([(0, 0)])
    # beam 6 over 5 tokens: the sixth candidate of the first step has probability 0
    [hypotheses] = beam_search(STAIRS.step, first, state, beam_size=6, max_tokens=1, n_best=6)
    assert sorted(tokens for tokens, _ in hypotheses) == [[0], [1], [2], [3], [4]]
    assert all(math.isfinite(score) for _, score in hypotheses)


def test_length_penalty_shifts_the_preference_to_the_longer_hypothesis():
    # eos = 0; after the prompt: eos (p 0.4) or 2 (0.6); after 2: eos (0.62) or 3; after 3: eos or 3
    chain = MarkovChain.first_order(
        [[1, 0, 0, 0], [0.4, 0, 0.6, 0], [0.62, 0, 0, 0.38], [0.5, 0, 0, 0.5]]
    )
    first, state = chain.start([(1, 1)])
    short, long = math.log(0.4), math.log(0.6) + math.log(0.62)  # |Y| = 1 and 2, eos counted
    assert long < short and long / (7 / 6) > short / 1
    [raw] = beam_search(chain.step, first, state, beam_size=2, max_tokens=5, eos=0, n_best=2)
    [normalized] = beam_search(
        chain.step, first, state, beam_size=2, max_tokens=5, eos=0, n_best=2, length_penalty=1.0
    )
    assert [tokens for tokens, _ in raw] == [[], [2]]
    assert [score for _, score in raw] == pytest.approx([short, long], abs=1e-5)
    assert [tokens for tokens, _ in normalized] == [[2], []]
    assert [score for _, score in normalized] == pytest.approx([long / (7 / 6), short], abs=1e-5)


def test_block_repeated_ngrams_forbids_the_tokens_that_complete_a_seen_ngram():
    log_probs = torch.zeros(2, 5)
    history = torch.tensor([[1, 2, 3, 1, 2], [4, 0, 4, 1, 4]])
    blocked = block_repeated_ngrams(log_probs, history, 2).isinf()
    assert blocked.tolist() == [
        [False, False, False, True, False],
        [True, True, False, False, False],
    ]
    assert block_repeated_ngrams(log_probs, history, 3).isinf().nonzero().tolist() == [[0, 3]]


def test_block_ngram_repeat_removes_every_repeated_bigram():
    # 1 -> 2 -> 1 -> 2 ... is by far the most probable path
    chain = MarkovChain.first_order(
        [
            [0.2] * 5,
            [0.05, 0.05, 0.8, 0.05, 0.05],
            [0.05, 0.8, 0.05, 0.05, 0.05],
            [0.2] * 5,
            [0.2] * 5,
        ]
    )
    first, state = chain.start([(0, 2)])
    [free] = beam_search(chain.step, first, state, beam_size=3, max_tokens=8, n_best=3)
    [blocked] = beam_search(
        chain.step, first, state, beam_size=3, max_tokens=8, n_best=3, block_ngram_repeat=2
    )
    assert has_repeated_ngram(free[0][0], 2)
    assert blocked and not any(has_repeated_ngram(tokens, 2) for tokens, _ in blocked)


@pytest.mark.parametrize(
    "args, message",
    [
        ({"beam_size": 0}, "beam_size"),
        ({"n_best": 3}, "n_best"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"block_ngram_repeat": -1}, "block_ngram_repeat"),
    ],
)
def test_beam_search_arguments_are_checked(args, message):
    first, state = STAIRS.start([(0, 0)])
    with pytest.raises(ValueError, match=message):
        beam_search(STAIRS.step, first, state, **{"beam_size": 2, "max_tokens": 5, **args})
