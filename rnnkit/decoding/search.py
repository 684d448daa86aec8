"""Decoding a recurrent model: greedy, sampling (temperature, top-k, top-p) and beam search.

The model is seen through one step function, so that the same code serves a language model
now and an attention decoder later::

    step_fn(tokens: (N,) long, state) -> (logits: (N, V), new_state)

``state`` is any nested tuple/list of arrays whose dimension ``batch_dim`` indexes the N
hypotheses; torch's recurrent states, (L*D, N, H), have it at dim 1. The arrays are torch
tensors (a PyTorch model, on any device) or numpy arrays (an ONNX export in onnxruntime):
every operation goes through ``arrays.namespace``, so this one search serves both, and
decoding an export never imports torch.

Decoding is incremental: the caller has already read the prompt (or the source) and passes
the logits after it, ``first_logits``, together with the state; every step then feeds only
the newest token.

Conventions shared by every function here:

- ``eos`` ends a sequence and is *not* part of the returned tokens, so they can be decoded
  to text as they are; a sequence without ``eos`` ends at ``max_tokens`` tokens.
- Beam scores are log-probabilities ``log P(Y) = sum_t log p(y_t | y_<t)``, where ``Y``
  counts the ``eos`` step when there is one (its probability is part of ``P(Y)``), divided
  by the length penalty of Wu et al. 2016 (GNMT), ``lp(Y) = (5 + |Y|)^alpha / 6^alpha``.

Random draws come from numpy generators (``numpy.random.Generator``) whichever the arrays:
a seed gives the same tokens from either engine.

Sampling: ``tokens = sample(step, first_logits, state, 100, temperature=0.8, top_p=0.9)``;
beam search: ``beam_search(step, first_logits, state, beam_size=5, max_tokens=100, eos=2)``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Container, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from rnnkit.decoding.arrays import Array, namespace
from rnnkit.progress import progress

State = Array | tuple["State", ...] | list["State"] | None
StepFn = Callable[[Array, State], tuple[Array, State]]


def reorder_state(state: State, index: Array, batch_dim: int = 1) -> State:
    """Select hypotheses: ``take(index, batch_dim)`` on every array of a nested tuple/list.

    index: (M,) long rows of the old batch; the result has M rows. Expanding one input to N
    samples (``index = zeros(N)``) and following beam back-pointers are both this one call.
    ``None`` (no state yet) stays ``None``.
    """
    if state is None:
        return None
    if isinstance(state, (tuple, list)):
        items = [reorder_state(s, index, batch_dim) for s in state]
        return (
            type(state)(*items) if hasattr(state, "_fields") else type(state)(items)
        )  # NamedTuple
    try:
        xp = namespace(state)
    except TypeError:
        raise TypeError(
            f"reorder_state: a state holds arrays, tuples and lists, not {type(state).__name__}"
        ) from None
    return xp.take(state, index, batch_dim)


def filter_logits(logits: Array, top_k: int = 0, top_p: float = 1.0) -> Array:
    """Keep the top-k tokens, then the nucleus of the rest; others get ``-inf``.

    logits: (N, V) -> (N, V). ``top_k`` keeps the k largest logits of each row (ties broken by
    ``topk``, so exactly k survive; 0 = off). ``top_p`` (Holtzman et al. 2019, nucleus sampling)
    keeps the smallest set of most probable tokens whose probability mass is at least p
    (1.0 = off). At least one token always survives.
    """
    xp = namespace(logits)
    vocab_size = logits.shape[-1]
    if 0 < top_k < vocab_size:
        values, kept = xp.topk(logits, top_k)  # (N, k) each
        logits = xp.put_along(xp.full_like(logits, float("-inf")), kept, values)
    if top_p < 1.0:
        sorted_logits, order = xp.sort_descending(logits)  # (N, V)
        cumulative = xp.cumsum(xp.softmax(sorted_logits))  # (N, V)
        # A token is needed only while the more probable ones before it hold less than p;
        # comparing the preceding sum itself (not cumulative - prob) keeps the boundary exact.
        first = cumulative[..., :1] < 0  # (N, 1), all False: the most probable token stays
        remove_sorted = xp.concat([first, cumulative[..., :-1] >= top_p], axis=-1)  # (N, V)
        remove = xp.put_along(remove_sorted, order, remove_sorted)  # back to vocabulary order
        logits = xp.where(remove, float("-inf"), logits)
    return logits


def _check_sampling(temperature: float, top_k: int, top_p: float) -> None:
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 = greedy), got {temperature}")
    if top_k < 0:
        raise ValueError(f"top_k must be >= 0 (0 = off), got {top_k}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1] (1 = off), got {top_p}")


def draw(probs: Array, uniforms: np.ndarray) -> Array:
    """Inverse-CDF sampling: probs (N, V) (rows sum to 1), uniforms (N,) in [0, 1) -> (N,).

    Row n takes the first token j whose cumulative probability ``c_j = p_1 + ... + p_j``
    exceeds ``u_n c_V``: token j owns the interval [c_{j-1}, c_j) of length p_j, and a token of
    probability 0 owns none. The sums are float64, and ``u`` comes from numpy whatever the
    arrays, so both engines draw the same tokens from the same seed.
    """
    xp = namespace(probs)
    cumulative = xp.cumsum(probs)  # (N, V) float64
    threshold = xp.asarray(uniforms, "double")  # (N,)
    below = cumulative <= threshold[:, None] * cumulative[:, -1:]  # (N, V)
    return xp.minimum(below.sum(-1), probs.shape[-1] - 1)  # u c_V rounded up to c_V: the last


def sample_next(
    logits: Array,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: np.random.Generator | None = None,
) -> Array:
    """One token per row: logits (N, V) -> (N,) long.

    Draws from ``softmax(filter_logits(logits / temperature))`` (``draw``, one uniform per row
    from ``generator``; None: a fresh unseeded one); temperature < 1 sharpens the
    distribution, > 1 flattens it, and 0 is its limit, greedy decoding (argmax), as is any
    temperature too small for the logits' dtype. The logits are shifted by their maximum first
    (softmax does not change): at a tiny temperature the others then fall to -inf, where the
    unshifted quotient would overflow to inf - inf = nan.
    """
    generator = generator if generator is not None else np.random.default_rng()
    return _sample(logits, temperature, top_k, top_p, generator.random)


def _sample(
    logits: Array,
    temperature: float,
    top_k: int,
    top_p: float,
    uniforms: Callable[[int], np.ndarray],
) -> Array:
    """``sample_next`` with the uniforms of its N rows from ``uniforms(N)``; probabilities in
    fp32 whatever the logits' dtype (bf16 or fp16 models)."""
    _check_sampling(temperature, top_k, top_p)
    xp = namespace(logits)
    logits = xp.asarray(logits, "float")
    if temperature < xp.tiny(logits):
        return xp.argmax(logits)
    shifted = logits - xp.max(logits)  # (N, V), at most 0
    probs = xp.softmax(filter_logits(shifted / temperature, top_k, top_p))  # (N, V)
    return draw(probs, uniforms(logits.shape[0]))


def _cut_at_eos(rows: list[list[int]], eos: int | None) -> list[list[int]]:
    return [row[: row.index(eos)] if eos in row else row for row in rows]


@dataclass(frozen=True)
class Sampling:
    """How one row draws its tokens (see ``sample_next``): temperature (0: greedy), top-k
    (0: off), top-p (1: off), and the row's own seeded ``generator`` (None: a fresh one)."""

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    generator: np.random.Generator | None = None


def _draw(logits: Array, rows: Sequence[Sampling]) -> Array:
    """One token per row: logits (N, V) -> (N,). Rows sharing one ``Sampling`` are drawn in
    one call from its generator. Otherwise the rows with the same settings are still drawn in
    one call, each row's uniform from its own generator, so that what a row draws does not
    depend on which other rows share its batch."""
    if all(r is rows[0] for r in rows):
        s = rows[0]
        return sample_next(logits, s.temperature, s.top_k, s.top_p, s.generator)
    xp = namespace(logits)
    groups: dict[tuple[float, int, float], list[int]] = {}
    for i, r in enumerate(rows):
        groups.setdefault((r.temperature, r.top_k, r.top_p), []).append(i)
    tokens = xp.zeros(len(rows))
    for (temperature, top_k, top_p), members in groups.items():
        own = [rows[i].generator or np.random.default_rng() for i in members]

        def uniforms(n: int, own: list[np.random.Generator] = own) -> np.ndarray:
            return np.array([g.random() for g in own])

        index = xp.asarray(members)
        tokens[index] = _sample(logits[index], temperature, top_k, top_p, uniforms)
    return tokens


def past(deadline: float | None) -> bool:
    """Whether a ``time.monotonic()`` deadline has passed (None: there is none)."""
    return deadline is not None and time.monotonic() >= deadline


def sample_stream(
    step_fn: StepFn,
    first_logits: Array,
    state: State,
    max_tokens: int | Sequence[int],
    rows: Sequence[Sampling],
    eos: int | None = None,
    *,
    stop: Container[int] = (),
    deadline: float | None = None,
    batch_dim: int = 1,
) -> Iterator[tuple[Array, Array, Array]]:
    """Sampling, one step at a time: yields ``(tokens, alive, ended)``, each (N,), per step.

    ``tokens[r]`` is what row r drew; ``alive[r]`` says whether row r was still generating when
    it drew it; ``ended[r]`` that this was its last token. A row ends once it has drawn
    ``max_tokens[r]`` tokens or ``eos`` (which it yields), once its index is in ``stop`` (a
    container the caller may add to while the stream runs: a client gone), or when the
    ``time.monotonic()`` ``deadline`` passes (every row ends). Rows that end leave the batch
    (``reorder_state``): each step feeds only the rows still generating, and no step is run
    whose logits would go unused. first_logits: (N, V); state: N rows at ``batch_dim``.
    """
    n = first_logits.shape[0]
    if len(rows) != n:
        raise ValueError(f"{len(rows)} sampling settings for {n} rows")
    for r in rows:
        _check_sampling(r.temperature, r.top_k, r.top_p)
    xp = namespace(first_logits)
    limits = xp.broadcast(xp.asarray(max_tokens), n)  # (N,)
    live = xp.nonzero(limits > 0)  # (n,) the rows still in the batch
    with xp.no_grad():
        logits = first_logits[live]  # (n, V)
        state = reorder_state(state, live, batch_dim)
    drawn = xp.zeros(n)  # (N,) tokens drawn per row
    while len(live):
        tokens = xp.zeros(n)
        new = _draw(logits, [rows[i] for i in live.tolist()])  # (n,)
        tokens[live] = new
        drawn[live] += 1
        ends = drawn[live] >= limits[live]  # (n,)
        if eos is not None:
            ends |= new == eos
        if past(deadline):
            ends[:] = True
        stopped = [i for i, r in enumerate(live.tolist()) if r in stop]
        ends[stopped] = True
        alive = xp.zeros(n, "bool")
        alive[live] = True
        ended = xp.zeros(n, "bool")
        ended[live] = ends
        yield tokens, alive, ended
        if ends.any():
            keep = xp.nonzero(~ends)  # (n',)
            live, new, state = live[keep], new[keep], reorder_state(state, keep, batch_dim)
        if len(live):
            with xp.no_grad():
                logits, state = step_fn(new, state)


def sample(
    step_fn: StepFn,
    first_logits: Array,
    state: State,
    max_tokens: int,
    *,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    eos: int | None = None,
    generator: np.random.Generator | None = None,
    batch_dim: int = 1,
) -> list[list[int]]:
    """N samples of at most ``max_tokens`` tokens each, ``eos`` excluded, all rows with one
    setting and one ``generator`` (``sample_stream`` gives each row its own).

    first_logits: (N, V), the logits after the prompt; state: the state after the prompt, with
    N rows (to draw several samples from one prompt, expand it first with ``reorder_state``).
    A row stops at ``eos``; generation stops once every row has. See ``sample_next`` for
    ``temperature``, ``top_k``, ``top_p``; a seeded ``generator`` makes the draws reproducible.
    """
    setting = Sampling(temperature, top_k, top_p, generator)
    rows = [setting] * first_logits.shape[0]
    outputs: list[list[int]] = [[] for _ in rows]
    steps = sample_stream(step_fn, first_logits, state, max_tokens, rows, eos, batch_dim=batch_dim)
    for tokens, alive, _ in progress(steps, total=max_tokens, desc="sample"):
        for r in namespace(alive).nonzero(alive).tolist():
            outputs[r].append(int(tokens[r]))
    return _cut_at_eos(outputs, eos)


def greedy(
    step_fn: StepFn,
    first_logits: Array,
    state: State,
    max_tokens: int,
    eos: int | None = None,
    batch_dim: int = 1,
) -> list[list[int]]:
    """The most probable next token at every step: ``sample`` at temperature 0.

    first_logits: (N, V); returns N token lists, ``eos`` excluded; state: N rows at
    ``batch_dim`` (rows that end leave the batch).
    """
    return sample(
        step_fn, first_logits, state, max_tokens, temperature=0.0, eos=eos, batch_dim=batch_dim
    )


def gnmt_length_penalty(length: int, alpha: float) -> float:
    """GNMT's ``lp(Y) = (5 + |Y|)^alpha / 6^alpha`` (Wu et al. 2016); alpha = 0 gives 1.

    Log-probabilities only fall as a hypothesis grows, so raw sums favour short outputs;
    dividing by lp (which grows with |Y|) evens that out, more so for larger alpha.
    """
    return ((5 + length) / 6) ** alpha


def block_repeated_ngrams(log_probs: Array, history: Array, n: int) -> Array:
    """Forbid each hypothesis the tokens that would repeat one of its own n-grams.

    log_probs: (M, V) next-token scores; history: (M, T) tokens generated so far. A token w is
    set to ``-inf`` in row m when ``history[m, -(n-1):] + [w]`` already occurs in
    ``history[m]``. A Python loop over hypotheses: fine for a beam, and the clearest way.
    """
    log_probs = log_probs * 1  # a copy: the caller's stay as they were
    for row, tokens in enumerate(history.tolist()):
        prefix = tokens[len(tokens) - n + 1 :]
        banned = [
            tokens[i + n - 1] for i in range(len(tokens) - n + 1) if tokens[i : i + n - 1] == prefix
        ]
        log_probs[row, banned] = float("-inf")
    return log_probs


def beam_search(
    step_fn: StepFn,
    first_logits: Array,
    state: State,
    beam_size: int,
    max_tokens: int | Sequence[int] | Array,
    *,
    eos: int | None = None,
    length_penalty: float = 0.0,
    n_best: int = 1,
    block_ngram_repeat: int = 0,
    batch_dim: int = 1,
    deadline: float | None = None,
) -> list[list[tuple[list[int], float]]]:
    """Batched beam search: for each of B inputs, the ``n_best`` best (tokens, score), best first.

    first_logits: (B, V); state: batch B at ``batch_dim``; max_tokens: an int, or (B,) per-input
    limits (e.g. a multiple of each source's length). The B*K hypotheses (K = ``beam_size``)
    run as one batch of rows ``b*K + k``. Each step:

    1. every hypothesis ``y_<t`` of input b, with running score ``s = log P(y_<t)``, extends
       to the K*V candidates ``s + log p(w | y_<t)`` (a log-softmax over the logits);
    2. of the best 2K candidates, those ranked in the top K that end in ``eos`` (or reach
       ``max_tokens``) are finished, with score ``log P(Y) / lp(Y)`` (GNMT length penalty,
       alpha = ``length_penalty``; see ``gnmt_length_penalty``); the best K that do not end in
       ``eos`` go on (there are always K: at most K of the 2K candidates are ``eos``);
    3. the state follows the surviving hypotheses' parents (``reorder_state``).

    An input is done once it has K finished hypotheses or reaches its limit; with K = 1 this
    is exactly greedy decoding. ``block_ngram_repeat = n`` forbids a hypothesis any token that
    would repeat one of its n-grams. Once the ``time.monotonic()`` ``deadline`` passes, every
    input finishes as if it had reached its limit. Hypotheses with score ``-inf`` (the empty
    beams of the first step, all tokens blocked) are never returned, so a list may hold fewer
    than n_best.
    """
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    if not 1 <= n_best <= beam_size:
        raise ValueError(f"n_best must be between 1 and beam_size ({beam_size}), got {n_best}")
    if block_ngram_repeat < 0:
        raise ValueError(f"block_ngram_repeat must be >= 0 (0 = off), got {block_ngram_repeat}")
    xp = namespace(first_logits)
    with xp.no_grad():  # decoding never backpropagates: no graph over the steps
        batch_size, vocab_size = first_logits.shape
        max_len = xp.broadcast(xp.asarray(max_tokens), batch_size)  # (B,)
        if (max_len < 1).any():
            raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
        K = beam_size

        # Each input starts as K copies of itself; only copy 0 is live (the others score -inf),
        # or the first step would pick the same token K times.
        logits = xp.repeat(first_logits, K)  # (B*K, V)
        state = reorder_state(state, xp.repeat(xp.arange(batch_size), K), batch_dim)
        scores = xp.full((batch_size, K), float("-inf"))  # (n, K) for n active inputs
        scores[:, 0] = 0.0
        history = xp.zeros(0).reshape(batch_size * K, 0)  # (n*K, t)
        active = xp.arange(batch_size)  # (n,) which input each beam row serves
        finished: list[list[tuple[list[int], float]]] = [[] for _ in range(batch_size)]
        n_finished = xp.zeros(batch_size)  # (B,)
        # 2K candidates hold at least K that do not end in eos; without eos, K are enough.
        width = min(K if eos is None else 2 * K, K * vocab_size)

        for t in range(int(max_len.max())):
            n = active.shape[0]
            log_probs = xp.log_softmax(logits)  # (n*K, V), float32 even for half models
            if block_ngram_repeat:
                log_probs = block_repeated_ngrams(log_probs, history, block_ngram_repeat)
            candidates = (scores[:, :, None] + log_probs.reshape(n, K, vocab_size)).reshape(
                n, K * vocab_size
            )
            top_scores, top_ids = xp.topk(candidates, width)  # (n, width), best first
            tokens = top_ids % vocab_size  # (n, width)
            parents = top_ids // vocab_size + K * xp.arange(n)[:, None]  # rows in n*K
            ends = tokens == (eos if eos is not None else -1)  # (n, width); no eos: never
            at_limit = (max_len[active] == t + 1) | past(deadline)  # (n,)

            in_beam = xp.arange(width) < K  # (width,)
            finishing = (ends | at_limit[:, None]) & in_beam & (top_scores > float("-inf"))
            penalty = gnmt_length_penalty(t + 1, length_penalty)
            for i, j in xp.argwhere(finishing).tolist():  # a few rows per step, not the hot path
                output = history[parents[i, j]].tolist() + (
                    [] if ends[i, j] else [int(tokens[i, j])]
                )
                finished[int(active[i])].append((output, float(top_scores[i, j]) / penalty))

            xp.add_at(n_finished, active, finishing.sum(1))
            done = at_limit | (n_finished[active] >= K)  # (n,)
            if done.all():
                break
            # The best K candidates that go on: a stable sort moves the eos-ending ones behind.
            go_on = xp.argsort_stable(xp.asarray(ends))[:, :K]  # (n, K) positions in the width
            keep = ~done  # finished inputs leave the batch: later steps compute only live beams
            scores = xp.take_along(top_scores, go_on)[keep]  # (n', K)
            parents = xp.take_along(parents, go_on)[keep].reshape(-1)  # (n'*K,)
            next_tokens = xp.take_along(tokens, go_on)[keep].reshape(-1)  # (n'*K,)
            history = xp.concat([history[parents], next_tokens[:, None]], axis=1)  # (n'*K, t+1)
            active = active[keep]
            # With K = 1 every row is its own parent (parents = arange(n)[keep]): the state
            # needs no copy until an input finishes.
            if K > 1 or not keep.all():
                state = reorder_state(state, parents, batch_dim)
            logits, state = step_fn(next_tokens, state)

    return [
        sorted(hypotheses, key=lambda h: h[1], reverse=True)[:n_best] for hypotheses in finished
    ]
