"""Decoding a recurrent model: greedy, sampling (temperature, top-k, top-p) and beam search.

The model is seen through one step function, so that the same code serves a language model
now and an attention decoder later::

    step_fn(tokens: (N,) long, state) -> (logits: (N, V), new_state)

``state`` is any nested tuple/list of tensors whose dimension ``batch_dim`` indexes the N
hypotheses; torch's recurrent states, (L*D, N, H), have it at dim 1. Decoding is incremental:
the caller has already read the prompt (or the source) and passes the logits after it,
``first_logits``, together with the state; every step then feeds only the newest token.

Conventions shared by every function here:

- ``eos`` ends a sequence and is *not* part of the returned tokens, so they can be decoded
  to text as they are; a sequence without ``eos`` ends at ``max_tokens`` tokens.
- Beam scores are log-probabilities ``log P(Y) = sum_t log p(y_t | y_<t)``, where ``Y``
  counts the ``eos`` step when there is one (its probability is part of ``P(Y)``), divided
  by the length penalty of Wu et al. 2016 (GNMT), ``lp(Y) = (5 + |Y|)^alpha / 6^alpha``.

Sampling: ``tokens = sample(step, first_logits, state, 100, temperature=0.8, top_p=0.9)``;
beam search: ``beam_search(step, first_logits, state, beam_size=5, max_tokens=100, eos=2)``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Container, Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .progress import progress

State = Tensor | tuple["State", ...] | list["State"] | None
StepFn = Callable[[Tensor, State], tuple[Tensor, State]]


def reorder_state(state: State, index: Tensor, batch_dim: int = 1) -> State:
    """Select hypotheses: ``index_select(batch_dim, index)`` on every tensor of a nested tuple/list.

    index: (M,) long rows of the old batch; the result has M rows. Expanding one input to N
    samples (``index = zeros(N)``) and following beam back-pointers are both this one call.
    ``None`` (no state yet) stays ``None``.
    """
    if state is None:
        return None
    if isinstance(state, Tensor):
        return state.index_select(batch_dim, index)
    if isinstance(state, (tuple, list)):
        items = [reorder_state(s, index, batch_dim) for s in state]
        return (
            type(state)(*items) if hasattr(state, "_fields") else type(state)(items)
        )  # NamedTuple
    raise TypeError(
        f"reorder_state: a state holds tensors, tuples and lists, not {type(state).__name__}"
    )


def filter_logits(logits: Tensor, top_k: int = 0, top_p: float = 1.0) -> Tensor:
    """Keep the top-k tokens, then the nucleus of the rest; others get ``-inf``.

    logits: (N, V) -> (N, V). ``top_k`` keeps the k largest logits of each row (ties broken by
    ``topk``, so exactly k survive; 0 = off). ``top_p`` (Holtzman et al. 2019, nucleus sampling)
    keeps the smallest set of most probable tokens whose probability mass is at least p
    (1.0 = off). At least one token always survives.
    """
    vocab_size = logits.shape[-1]
    if 0 < top_k < vocab_size:
        keep = torch.zeros_like(logits, dtype=torch.bool)
        keep.scatter_(-1, logits.topk(top_k, dim=-1).indices, True)
        logits = logits.masked_fill(~keep, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)  # (N, V)
        cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)  # (N, V)
        # A token is needed only while the more probable ones before it hold less than p;
        # comparing the preceding sum itself (not cumulative - prob) keeps the boundary exact.
        remove_sorted = torch.zeros_like(cumulative, dtype=torch.bool)
        remove_sorted[..., 1:] = cumulative[..., :-1] >= top_p
        remove = remove_sorted.scatter(-1, order, remove_sorted)  # back to vocabulary order
        logits = logits.masked_fill(remove, float("-inf"))
    return logits


def _check_sampling(temperature: float, top_k: int, top_p: float) -> None:
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 = greedy), got {temperature}")
    if top_k < 0:
        raise ValueError(f"top_k must be >= 0 (0 = off), got {top_k}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1] (1 = off), got {top_p}")


def sample_next(
    logits: Tensor,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """One token per row: logits (N, V) -> (N,) long.

    Draws from ``softmax(filter_logits(logits / temperature))``; temperature < 1 sharpens the
    distribution, > 1 flattens it, and 0 is its limit, greedy decoding (argmax), as is any
    temperature too small for the logits' dtype. The logits are shifted by their maximum first
    (softmax does not change): at a tiny temperature the others then fall to -inf, where the
    unshifted quotient would overflow to inf - inf = nan.
    """
    _check_sampling(temperature, top_k, top_p)
    if temperature < torch.finfo(logits.dtype).tiny:
        return logits.argmax(dim=-1)
    shifted = logits - logits.max(dim=-1, keepdim=True).values  # (N, V), at most 0
    probs = filter_logits(shifted / temperature, top_k, top_p).softmax(dim=-1)  # (N, V)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)


def _cut_at_eos(rows: list[list[int]], eos: int | None) -> list[list[int]]:
    return [row[: row.index(eos)] if eos in row else row for row in rows]


@dataclass(frozen=True)
class Sampling:
    """How one row draws its tokens (see ``sample_next``): temperature (0: greedy), top-k
    (0: off), top-p (1: off), and the row's own seeded ``generator`` (None: torch's global)."""

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    generator: torch.Generator | None = None


def _draw(logits: Tensor, rows: Sequence[Sampling]) -> Tensor:
    """One token per row: logits (N, V) -> (N,). Rows sharing one ``Sampling`` are drawn in
    one call; otherwise each row draws alone, from its own generator, so that what a row draws
    does not depend on which other rows share its batch."""
    if all(r is rows[0] for r in rows):
        s = rows[0]
        return sample_next(logits, s.temperature, s.top_k, s.top_p, s.generator)
    return torch.cat(
        [
            sample_next(logits[i : i + 1], r.temperature, r.top_k, r.top_p, r.generator)
            for i, r in enumerate(rows)
        ]
    )


def past(deadline: float | None) -> bool:
    """Whether a ``time.monotonic()`` deadline has passed (None: there is none)."""
    return deadline is not None and time.monotonic() >= deadline


@torch.no_grad()
def sample_stream(
    step_fn: StepFn,
    first_logits: Tensor,
    state: State,
    max_tokens: int | Sequence[int],
    rows: Sequence[Sampling],
    eos: int | None = None,
    *,
    stop: Container[int] = (),
    deadline: float | None = None,
    batch_dim: int = 1,
) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
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
    device = first_logits.device
    limits = torch.as_tensor(max_tokens, device=device).long().expand(n)  # (N,)
    live = (limits > 0).nonzero().flatten()  # (n,) the rows still in the batch
    logits = first_logits[live]  # (n, V)
    state = reorder_state(state, live, batch_dim)
    drawn = torch.zeros(n, dtype=torch.long, device=device)  # (N,) tokens drawn per row
    while live.numel():
        tokens = torch.zeros(n, dtype=torch.long, device=device)
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
        alive = torch.zeros(n, dtype=torch.bool, device=device)
        alive[live] = True
        ended = torch.zeros(n, dtype=torch.bool, device=device)
        ended[live] = ends
        yield tokens, alive, ended
        if ends.any():
            keep = (~ends).nonzero().flatten()  # (n',)
            live, new, state = live[keep], new[keep], reorder_state(state, keep, batch_dim)
        if live.numel():
            logits, state = step_fn(new, state)


def sample(
    step_fn: StepFn,
    first_logits: Tensor,
    state: State,
    max_tokens: int,
    *,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    eos: int | None = None,
    generator: torch.Generator | None = None,
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
        for r in alive.nonzero().flatten().tolist():
            outputs[r].append(int(tokens[r]))
    return _cut_at_eos(outputs, eos)


def greedy(
    step_fn: StepFn,
    first_logits: Tensor,
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


def block_repeated_ngrams(log_probs: Tensor, history: Tensor, n: int) -> Tensor:
    """Forbid each hypothesis the tokens that would repeat one of its own n-grams.

    log_probs: (M, V) next-token scores; history: (M, T) tokens generated so far. A token w is
    set to ``-inf`` in row m when ``history[m, -(n-1):] + [w]`` already occurs in
    ``history[m]``. A Python loop over hypotheses: fine for a beam, and the clearest way.
    """
    log_probs = log_probs.clone()
    for row, tokens in enumerate(history.tolist()):
        prefix = tokens[len(tokens) - n + 1 :]
        banned = [
            tokens[i + n - 1] for i in range(len(tokens) - n + 1) if tokens[i : i + n - 1] == prefix
        ]
        log_probs[row, banned] = float("-inf")
    return log_probs


@torch.no_grad()
def beam_search(
    step_fn: StepFn,
    first_logits: Tensor,
    state: State,
    beam_size: int,
    max_tokens: int | Tensor,
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
    batch_size, vocab_size = first_logits.shape
    device = first_logits.device
    max_len = torch.as_tensor(max_tokens, device=device).long().expand(batch_size)  # (B,)
    if (max_len < 1).any():
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    K = beam_size

    # Each input starts as K copies of itself; only copy 0 is live (the others score -inf),
    # or the first step would pick the same token K times.
    logits = first_logits.repeat_interleave(K, dim=0)  # (B*K, V)
    state = reorder_state(
        state, torch.arange(batch_size, device=device).repeat_interleave(K), batch_dim
    )
    scores = torch.full((batch_size, K), float("-inf"), device=device)  # (n, K) for n active inputs
    scores[:, 0] = 0.0
    history = torch.zeros(batch_size * K, 0, dtype=torch.long, device=device)  # (n*K, t)
    active = torch.arange(batch_size, device=device)  # (n,) which input each beam row serves
    finished: list[list[tuple[list[int], float]]] = [[] for _ in range(batch_size)]
    n_finished = torch.zeros(batch_size, dtype=torch.long, device=device)  # (B,)
    # 2K candidates hold at least K that do not end in eos; without eos, K are enough.
    width = min(K if eos is None else 2 * K, K * vocab_size)

    for t in range(int(max_len.max())):
        n = active.shape[0]
        log_probs = F.log_softmax(logits.float(), dim=-1)  # (n*K, V), float32 even for half models
        if block_ngram_repeat:
            log_probs = block_repeated_ngrams(log_probs, history, block_ngram_repeat)
        candidates = (scores.unsqueeze(-1) + log_probs.view(n, K, vocab_size)).view(
            n, K * vocab_size
        )
        top_scores, top_ids = candidates.topk(width, dim=-1)  # (n, width), best first
        tokens = top_ids % vocab_size  # (n, width)
        parents = top_ids // vocab_size + K * torch.arange(n, device=device).unsqueeze(
            1
        )  # rows in n*K
        ends = tokens == eos if eos is not None else torch.zeros_like(tokens, dtype=torch.bool)
        at_limit = (max_len[active] == t + 1) | past(deadline)  # (n,)

        in_beam = torch.arange(width, device=device) < K  # (width,)
        finishing = (ends | at_limit.unsqueeze(1)) & in_beam & (top_scores > float("-inf"))
        penalty = gnmt_length_penalty(t + 1, length_penalty)
        for i, j in finishing.nonzero().tolist():  # a few rows per step, not the hot path
            output = history[parents[i, j]].tolist() + ([] if ends[i, j] else [int(tokens[i, j])])
            finished[int(active[i])].append((output, float(top_scores[i, j]) / penalty))

        n_finished.index_add_(0, active, finishing.sum(dim=1))
        done = at_limit | (n_finished[active] >= K)  # (n,)
        if done.all():
            break
        # The best K candidates that go on: a stable sort moves the eos-ending ones behind.
        go_on = ends.long().argsort(dim=-1, stable=True)[:, :K]  # (n, K) positions in the width
        keep = ~done  # finished inputs leave the batch: later steps compute only live beams
        scores = top_scores.gather(1, go_on)[keep]  # (n', K)
        parents = parents.gather(1, go_on)[keep].view(-1)  # (n'*K,)
        next_tokens = tokens.gather(1, go_on)[keep].view(-1)  # (n'*K,)
        history = torch.cat([history[parents], next_tokens.unsqueeze(1)], dim=1)  # (n'*K, t+1)
        active = active[keep]
        logits, state = step_fn(next_tokens, reorder_state(state, parents, batch_dim))

    return [
        sorted(hypotheses, key=lambda h: h[1], reverse=True)[:n_best] for hypotheses in finished
    ]
