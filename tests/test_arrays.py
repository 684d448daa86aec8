"""rnnkit.arrays: every operation gives the same on numpy arrays as on torch tensors, and so
does the one search (``rnnkit.search``) run on either: greedy, seeded sampling with top-k and
top-p, ``sample_stream`` with rows stopped from outside, and beam search with n-best, length
penalty and n-gram blocking. This is what lets an ONNX export decode without torch with the
very search that decodes a PyTorch model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit.decoding.arrays import NUMPY, namespace
from rnnkit.decoding.search import (
    Sampling,
    beam_search,
    greedy,
    reorder_state,
    sample,
    sample_stream,
)
from rnnkit.decoding.torch_arrays import TorchArrays

TORCH = TorchArrays("cpu")


def same(got_numpy, got_torch, exact: bool = True) -> None:
    want = got_torch.numpy() if isinstance(got_torch, torch.Tensor) else np.asarray(got_torch)
    assert got_numpy.shape == want.shape
    if exact:
        assert (got_numpy == want).all()
    else:
        assert np.allclose(got_numpy, want, rtol=1e-6, atol=1e-6)


def test_namespace_follows_the_array_kind():
    assert namespace(np.zeros(2)) is NUMPY
    assert isinstance(namespace(torch.zeros(2)), TorchArrays)
    with pytest.raises(TypeError, match="numpy.ndarray or a torch.Tensor"):
        namespace([1, 2])


def test_every_operation_agrees():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 9)).astype(np.float32)
    t = torch.from_numpy(x.copy())
    index = np.array([2, 0, 2])
    for k in (1, 3, 9):
        (nv, ni), (tv, ti) = NUMPY.topk(x, k), TORCH.topk(t, k)
        same(nv, tv)
        same(ni, ti)
    same(*(xp.sort_descending(a)[1] for xp, a in ((NUMPY, x), (TORCH, t))))
    same(*(xp.argsort_stable(a) for xp, a in ((NUMPY, (x > 0)), (TORCH, t > 0))))
    same(*(xp.take(a, xp.asarray(index), 0) for xp, a in ((NUMPY, x), (TORCH, t))))
    same(*(xp.take(a, xp.asarray(index), 1) for xp, a in ((NUMPY, x), (TORCH, t))))
    along = np.argsort(x, axis=-1)[:, :4]
    same(*(xp.take_along(a, xp.asarray(along)) for xp, a in ((NUMPY, x), (TORCH, t))))
    same(*(xp.put_along(a, xp.asarray(along), 0.0) for xp, a in ((NUMPY, x), (TORCH, t))))
    for name in ("softmax", "log_softmax", "cumsum"):
        same(getattr(NUMPY, name)(x), getattr(TORCH, name)(t), exact=False)
    for name in ("argmax", "max"):
        same(getattr(NUMPY, name)(x), getattr(TORCH, name)(t))
    same(NUMPY.where(x > 0, -1.0, x), TORCH.where(t > 0, -1.0, t))
    same(NUMPY.nonzero(x[0] > 0), TORCH.nonzero(t[0] > 0))
    same(NUMPY.argwhere(x > 0), TORCH.argwhere(t > 0))
    same(NUMPY.repeat(x, 3), TORCH.repeat(t, 3))
    same(NUMPY.concat([x, x], 1), TORCH.concat([t, t], 1))
    same(NUMPY.minimum(np.arange(5), 3), TORCH.minimum(torch.arange(5), 3))
    totals_n, totals_t = NUMPY.zeros(3), TORCH.zeros(3)
    NUMPY.add_at(totals_n, np.array([0, 2, 0]), np.array([1, 5, 2]))
    TORCH.add_at(totals_t, torch.tensor([0, 2, 0]), torch.tensor([1, 5, 2]))
    same(totals_n, totals_t)
    assert NUMPY.to_numpy(x) is x and (TORCH.to_numpy(t.bfloat16()).dtype == np.float32)


class TinyRNN:
    """A random recurrent "model" with the same weights in numpy and in torch:
    h' = tanh(E[token] + h W), logits = h' O (float32). State (1, N, H): batch at dim 1."""

    def __init__(self, vocab: int = 11, hidden: int = 8, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.weights = [
            3 * rng.standard_normal(s).astype(np.float32)
            for s in ((vocab, hidden), (hidden, hidden), (hidden, vocab))
        ]

    def step(self, xp_name: str):
        embed, recur, out = (w if xp_name == "numpy" else torch.from_numpy(w) for w in self.weights)
        tanh = np.tanh if xp_name == "numpy" else torch.tanh

        def step(tokens, state):
            h = tanh(embed[tokens] + state[0] @ recur)  # (N, H)
            return h @ out, h[None]

        return step

    def start(self, xp_name: str, n: int):
        rng = np.random.default_rng(n)
        h = rng.standard_normal((1, n, self.weights[0].shape[1])).astype(np.float32)
        tokens = rng.integers(0, self.weights[0].shape[0], n)
        step = self.step(xp_name)
        if xp_name == "torch":
            h, tokens = torch.from_numpy(h), torch.from_numpy(tokens)
        return step, *step(tokens, h)


def both(run):
    """run(step, first_logits, state) on numpy and on torch -> the two results."""
    model = TinyRNN()
    return [run(*model.start(name, 5)) for name in ("numpy", "torch")]


def test_greedy_and_seeded_sampling_agree():
    got, want = both(lambda step, first, state: greedy(step, first, state, 12, eos=3))
    assert got == want and any(len(row) > 1 for row in got)
    for options in [{}, {"temperature": 0.7, "top_k": 4}, {"top_p": 0.8}, {"temperature": 1.5}]:

        def run(step, first, state, options=options):
            rng = np.random.default_rng(7)
            return sample(step, first, state, 15, eos=3, generator=rng, **options)

        got, want = both(run)
        assert got == want


def test_sample_stream_agrees_with_rows_of_their_own_and_a_row_stopped():
    def run(step, first, state):
        settings = [(1.0, 0, 1.0), (0.5, 3, 1.0), (0.0, 0, 1.0), (1.2, 0, 0.7), (0.9, 2, 0.9)]
        rows = [Sampling(*s, np.random.default_rng(i)) for i, s in enumerate(settings)]
        stop: set[int] = set()
        out = []
        for t, (tokens, alive, ended) in enumerate(
            sample_stream(step, first, state, [9, 4, 9, 9, 6], rows, eos=None, stop=stop)
        ):
            if t == 2:
                stop.add(0)
            out.append((tokens.tolist(), alive.tolist(), ended.tolist()))
        return out

    got, want = both(run)
    assert got == want and got[3][1][0] is True and got[4][1][0] is False  # row 0 ends at 3


@pytest.mark.parametrize("batch_dim", [0, 1])
def test_beam_search_agrees(batch_dim):
    def run(step, first, state):
        if batch_dim == 0:  # the same model with its state batch-first, as Seq2Seq's
            inner = step
            state = state[0]

            def step(tokens, state):
                logits, h = inner(tokens, state[None])
                return logits, h[0]

        results = []
        for options in [
            {"beam_size": 1},
            {"beam_size": 4, "n_best": 3, "length_penalty": 1.0},
            {"beam_size": 3, "block_ngram_repeat": 2, "n_best": 2},
        ]:
            results.append(
                beam_search(
                    step,
                    first,
                    state,
                    max_tokens=[6, 9, 12, 3, 8],
                    eos=3,
                    batch_dim=batch_dim,
                    **options,
                )
            )
        return results

    got, want = both(run)
    for g, w in zip(got, want, strict=True):
        assert [[ids for ids, _ in h] for h in g] == [[ids for ids, _ in h] for h in w]
        scores = [[s for h in hyps for _, s in h] for hyps in (g, w)]
        assert scores[0] == pytest.approx(scores[1], rel=1e-4) and len(scores[0]) >= 5


def test_reorder_state_follows_nested_states_of_either_kind():
    state = (np.arange(12.0).reshape(1, 6, 2), [np.arange(6.0)[None, :]])
    got = reorder_state(state, np.array([5, 0]), batch_dim=1)
    assert got[0][0].tolist() == [[10.0, 11.0], [0.0, 1.0]] and got[1][0].tolist() == [[5.0, 0.0]]
    same(got[0], reorder_state(torch.from_numpy(state[0]), torch.tensor([5, 0])))
    with pytest.raises(TypeError, match="arrays, tuples and lists"):
        reorder_state("h", np.array([0]))
