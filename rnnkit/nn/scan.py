"""The log-space parallel scan (Heinsen 2023, arXiv 2311.06281) of a first-order linear
recurrence with positive coefficients, the training form of minGRU and minLSTM (``minrnn.py``):

    h_t = a_t * h_{t-1} + b_t,   a_t > 0, b_t > 0, h_0 any real vector      (elementwise)

Unrolled, ``h_t = A_t h_0 + sum_{k<=t} (A_t / A_k) b_k`` with ``A_t = prod_{k<=t} a_k``. In logs,
with ``a*_t = sum_{k<=t} log a_k``, the sum is one ``logcumsumexp`` and one ``cumsum``:

    log h^b_t = a*_t + logcumsumexp_{k<=t}(log b_k - a*_k)       (the part that starts from 0)
    h_t       = h^b_t + exp(a*_t) * h_0                            (h_0's part, outside the log)

so T sequential steps become a handful of ops over the whole (T, B, H) tensor, each
differentiated by autograd. The caller hands over ``log a`` and ``log b`` computed in log space
(``minrnn.py``: softplus, never the log of a value that may have underflowed to 0). ``h_0``
stays outside the log because it may be negative (an encoder's final state given to a
decoder, an LM state carried across BPTT windows), and a negative number has no real log.

Chunks. The sequence is cut into chunks of ``chunk`` steps; each chunk's scan starts from the
previous chunk's last h as its h_0. The chunks' ``h^b`` and ``exp(a*)`` depend on nothing
outside the chunk, so all chunks are scanned at once, as one (n, chunk, B, H) tensor; only the
carry ``h_end = h^b_end + exp(a*_end) * h_start`` runs chunk after chunk, an n-step loop over
(B, H) vectors, in linear space, where h_0's sign is no trouble.

Why it stays finite and accurate, for any T and for gates near 0 and 1:

- ``log a_t <= 0`` (a_t is a gate's share, in (0, 1]), so ``a*_t`` only goes down; the scan
  never forms ``exp(-a*)``, only the finite number ``log b_k - a*_k``.
- ``logcumsumexp`` subtracts the running maximum before it exponentiates, so nothing overflows
  however large ``log b_k - a*_k`` grows; and ``h^b_t`` itself stays bounded (for minGRU and
  minLSTM ``a_t + b_t / h~_t = 1``, so h^b_t is at most the largest h~ so far).
- A saturated gate with a_t -> 0 (a bias of +30: log a = -30) is still a finite log;
  ``exp(a*_t)`` may underflow to 0, which is its true value, and only ever multiplies h_0.
- The catch is precision. ``log h^b_t`` is a*_t plus a logcumsumexp of about -a*_t, so float32
  loses about ``|a*_t| * 2^-24`` of it: a relative error of that size in h_t. Over T = 4,096
  steps with a_t = 1/2, |a*_T| = 2,839 (2e-4 of h); with log a = -30, 1.2e5 (1%). The
  backward pass loses more, as torch's logcumsumexp backward subtracts quantities of that size
  again: over T = 1,000 steps of an untrained minGRU (a ~ 1/2), the bias gradient in float32
  was 1e-2 off its float64 value in norm unchunked, 4e-5 with 64-step chunks, 1e-5 with 32,
  1e-6 with 16 (the step form: 1e-7). The chunks restart a* at 0, so
  ``|a*| <= chunk * max|log a_t|`` whatever T is (and a* cannot run to -inf in float32
  either); hence ``DEFAULT_CHUNK = 16``.

Memory. Autograd keeps the scan's intermediates for the backward pass, a few (T, B, H) tensors;
chunking does not change that (nor could it: the outputs alone are (T, B, H)); it bounds |a*|.
The only step-by-step work is the carry, T / chunk steps on (B, H) vectors.
"""

from __future__ import annotations

import torch
from torch import Tensor

DEFAULT_CHUNK = 16  # steps per chunk: float32 gradients within ~1e-6 at a ~ 1/2 (see above)


def zero_start_scan(log_a: Tensor, log_b: Tensor) -> tuple[Tensor, Tensor]:
    """The scan of each chunk from h_0 = 0, all chunks at once, along dim 1.

    log_a, log_b: (n, c, B, H) -> h^b (n, c, B, H) with
    ``log h^b_t = a*_t + logcumsumexp_{k<=t}(log b_k - a*_k)``, and ``a*`` (n, c, B, H),
    ``a*_t = sum_{k<=t} log a_k`` within each chunk."""
    a_star = log_a.cumsum(1)
    return (a_star + (log_b - a_star).logcumsumexp(1)).exp(), a_star


def log_linear_scan(
    log_a: Tensor, log_b: Tensor, h0: Tensor | None = None, chunk: int | None = DEFAULT_CHUNK
) -> Tensor:
    """``h_t = a_t * h_{t-1} + b_t`` for t = 1..T, from log a and log b (module docstring).

    log_a, log_b: (T, B, H) (any trailing shape), log_a <= 0 expected; h0: (B, H) of any sign,
    or None for zeros; chunk: steps per chunk, or None for one chunk of T steps.
    Returns h: (T, B, H) = h_1..h_T, in log_a's dtype."""
    steps = log_a.shape[0]
    size = steps if chunk is None else max(1, min(chunk, steps))
    full = steps - steps % size
    # The full chunks as one (n, size, B, H) batch, a shorter last chunk as a batch of one.
    pieces = [(log_a[:full].unflatten(0, (-1, size)), log_b[:full].unflatten(0, (-1, size)))]
    if full < steps:
        pieces.append((log_a[full:].unsqueeze(0), log_b[full:].unsqueeze(0)))
    outputs = []
    h = h0  # the state each chunk starts from; None: zeros
    for piece_a, piece_b in pieces:
        hb, a_star = zero_start_scan(piece_a, piece_b)  # (n, c, B, H) each
        if h is None and hb.shape[0] == 1:  # one chunk from zeros: nothing to carry in
            outputs.append(hb[0])
            h = hb[0, -1]
            continue
        decay = a_star.exp()  # exp(a*_t): how much of the chunk's h_0 is left at step t
        starts = []
        for hb_chunk, decay_chunk in zip(hb, decay, strict=True):
            starts.append(torch.zeros_like(hb_chunk[-1]) if h is None else h)
            h = hb_chunk[-1] + decay_chunk[-1] * starts[-1]  # the chunk's last h, carried on
        h_chunks = hb + decay * torch.stack(starts).unsqueeze(1)  # (n, c, B, H)
        outputs.append(h_chunks.flatten(0, 1))
    return torch.cat(outputs) if len(outputs) > 1 else outputs[0]
