"""Attention over encoder outputs for recurrent encoder-decoders: scores, weights, context.

Luong, Pham & Manning 2015, "Effective Approaches to Attention-based Neural Machine
Translation" (scores ``dot``, ``general``, ``concat``, section 3.1) and Bahdanau, Cho & Bengio
2015, "Neural Machine Translation by Jointly Learning to Align and Translate" (the additive
score, appendix A.1.2). With h_t the decoder query and h_s the encoder output at source
position s::

    dot       score(h_t, h_s) = h_t . h_s
    general   score(h_t, h_s) = h_t . (W_a h_s)
    concat    score(h_t, h_s) = v_a . tanh(W_a [h_t; h_s])
    additive  score(h_t, h_s) = v . tanh(W_1 h_t + W_2 h_s)

    a_ts = softmax_s(score(h_t, h_s))    (padded source positions get exactly zero weight)
    c_t  = sum_s a_ts h_s

The attentional vector ``h~_t = tanh(W_c [c_t; h_t])`` and input feeding belong to the decoder.
Which decoder state is the query is the decoder's choice too: Luong attends from the current
state h_t, Bahdanau from the previous one s_{i-1}.

Everything that depends on the source only (W_a h_s, W_2 h_s, the h_s half of concat's W_a) is
computed once per source sentence by ``precompute`` and passed to every decoder step::

    attention = Attention("additive", query_size=H, key_size=2 * H)
    projected = attention.precompute(encoder_outputs)               # (B, S, A), once
    for t in range(T):
        context, weights = attention(h_t, encoder_outputs, mask, projected)  # (B, 2H), (B, S)
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnkit.nn.gemm import Linear, affine

SCORES = ("dot", "general", "concat", "additive")


class Attention(nn.Module):
    """Luong (``dot``, ``general``, ``concat``) or Bahdanau (``additive``) attention.

    Shapes: query h_t (B, Hq) for one decoder step or (B, T, Hq) for T steps at once (Luong
    without input feeding); keys h_s (B, S, Hk), the encoder outputs, which are also the values;
    mask (B, S) bool, True at real source positions; Hq = query_size, Hk = key_size,
    A = attention_size (``concat`` and ``additive`` only, default query_size).

    Parameters, none with a bias, as in both papers' formulas:
      ``general``   W_a: Linear(Hk, Hq).
      ``concat``    W_a: Linear(Hq + Hk, A) over [h_t; h_s], kept as one matrix so that it reads
                    as in the paper; it is applied in two halves, W_a [h_t; h_s] =
                    W_a[:, :Hq] h_t + W_a[:, Hq:] h_s, so that the key half is precomputed.
                    v_a: Linear(A, 1).
      ``additive``  W_1: Linear(Hq, A), W_2: Linear(Hk, A), v: Linear(A, 1). (Joey NMT's
                    BahdanauAttention has no biases either; a bias on W_2 alone would be the
                    only one that is not redundant, but the paper's a(s, h) has none.)
    ``concat`` and ``additive`` compute the same function of (h_t, h_s); the two names keep the
    two papers' parameterisations.
    """

    def __init__(
        self, score: str, query_size: int, key_size: int, attention_size: int | None = None
    ) -> None:
        super().__init__()
        if score not in SCORES:
            raise ValueError(f"unknown attention score {score!r}; expected one of {SCORES}")
        if score == "dot" and query_size != key_size:
            raise ValueError(
                f"the dot score h_t . h_s needs query_size ({query_size}) "
                f"== key_size ({key_size}); use 'general' to project the keys"
            )
        if score in ("dot", "general") and attention_size is not None:
            raise ValueError(
                f"attention_size is used by the 'concat' and 'additive' scores only, "
                f"not by {score!r}"
            )
        self.score = score
        self.query_size = query_size
        self.key_size = key_size
        attention_size = query_size if attention_size is None else attention_size
        if score == "general":
            self.W_a = Linear(key_size, query_size, bias=False)
        elif score == "concat":
            self.W_a = Linear(query_size + key_size, attention_size, bias=False)
            self.v_a = Linear(attention_size, 1, bias=False)
        elif score == "additive":
            self.W_1 = Linear(query_size, attention_size, bias=False)
            self.W_2 = Linear(key_size, attention_size, bias=False)
            self.v = Linear(attention_size, 1, bias=False)

    def precompute(self, keys: Tensor) -> Tensor:
        """The query-independent part of the score, computed once per source sentence.

        keys h_s (B, S, Hk) -> ``dot`` h_s itself (B, S, Hk); ``general`` W_a h_s (B, S, Hq);
        ``concat`` W_a[:, Hq:] h_s (B, S, A); ``additive`` W_2 h_s (B, S, A).
        """
        if self.score == "dot":
            return keys
        if self.score == "general":
            return self.W_a(keys)
        if self.score == "concat":
            return affine(keys, self.W_a.weight[:, self.query_size :])
        return self.W_2(keys)

    def forward(
        self, query: Tensor, keys: Tensor, mask: Tensor | None, projected: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Context c_t = sum_s a_ts h_s and weights a_ts = softmax_s(score(h_t, h_s)).

        query (B, Hq) -> context (B, Hk), weights (B, S); query (B, T, Hq) -> context
        (B, T, Hk), weights (B, T, S). ``projected`` is ``precompute(keys)``, computed here
        when None. Every row of ``mask`` needs at least one True, or its weights are NaN.
        """
        self._check_shapes(query, keys, mask)
        if projected is None:
            projected = self.precompute(keys)
        one_step = query.dim() == 2
        if one_step:
            query = query.unsqueeze(1)  # (B, 1, Hq)
        scores = self._scores(query, projected)  # (B, T, S)
        if mask is not None:
            # -inf rather than a large negative number: exp(-inf) is exactly 0.
            scores = scores.masked_fill(~mask.unsqueeze(1), float("-inf"))
        weights = scores.softmax(dim=-1)  # (B, T, S)
        context = torch.bmm(weights, keys)  # (B, T, S) x (B, S, Hk) -> (B, T, Hk)
        if one_step:
            return context.squeeze(1), weights.squeeze(1)  # (B, Hk), (B, S)
        return context, weights

    def _scores(self, query: Tensor, projected: Tensor) -> Tensor:
        """score(h_t, h_s) for all t, s: query (B, T, Hq), projected (B, S, *) -> (B, T, S)."""
        if self.score in ("dot", "general"):
            # h_t . h_s, or h_t . (W_a h_s) with W_a h_s already in projected
            return torch.bmm(query, projected.transpose(1, 2))  # (B, T, Hq) x (B, Hq, S)
        if self.score == "concat":
            # W_a [h_t; h_s] = W_a[:, :Hq] h_t + W_a[:, Hq:] h_s, the second term in projected
            q = affine(query, self.W_a.weight[:, : self.query_size])  # (B, T, A)
            v = self.v_a
        else:
            q = self.W_1(query)  # (B, T, A)
            v = self.v
        # v . tanh(z) = 2 v . sigmoid(2z) - sum(v), with z = q + W h_s: the same score up to a
        # constant, which the softmax over s drops. On a CPU, torch's sigmoid runs about 6x
        # faster than its tanh, and this (B, T, S, A) tensor is the largest of a decoder step.
        hidden = torch.add(q.unsqueeze(2) * 2, projected.unsqueeze(1), alpha=2)  # 2z (B, T, S, A)
        return 2 * v(hidden.sigmoid_()).squeeze(-1)  # (B, T, S)

    def _check_shapes(self, query: Tensor, keys: Tensor, mask: Tensor | None) -> None:
        if query.dim() not in (2, 3) or query.shape[-1] != self.query_size:
            raise ValueError(
                f"query: expected (B, {self.query_size}) or (B, T, {self.query_size}), "
                f"got {tuple(query.shape)}"
            )
        if keys.dim() != 3 or keys.shape[2] != self.key_size or keys.shape[0] != query.shape[0]:
            raise ValueError(
                f"keys: expected (B={query.shape[0]}, S, {self.key_size}), got {tuple(keys.shape)}"
            )
        if mask is not None and (mask.shape != keys.shape[:2] or mask.dtype != torch.bool):
            raise ValueError(
                f"mask: expected bool (B, S) = {tuple(keys.shape[:2])}, "
                f"got {mask.dtype} {tuple(mask.shape)}"
            )
