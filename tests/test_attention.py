"""rnnkit.models.attention against scores, softmax and context written out by hand, in float64."""

from __future__ import annotations

import math

import pytest
import torch

from rnnkit.models.attention import SCORES, Attention

B, S, T = 3, 5, 4
LENGTHS = [5, 3, 1]  # the first sentence unpadded, the last one a single real position


def make(score: str) -> Attention:
    torch.manual_seed(0)
    if score == "dot":
        return Attention("dot", query_size=4, key_size=4).double()
    attention_size = None if score == "general" else 6
    return Attention(score, query_size=3, key_size=4, attention_size=attention_size).double()


def inputs(att: Attention, time_steps: int | None = None, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    shape = (B, att.query_size) if time_steps is None else (B, time_steps, att.query_size)
    query = torch.randn(*shape, generator=g, dtype=torch.float64)
    keys = torch.randn(B, S, att.key_size, generator=g, dtype=torch.float64)
    mask = torch.arange(S) < torch.tensor(LENGTHS).unsqueeze(1)  # (B, S)
    return query, keys, mask


def hand_score(att: Attention, h_t: torch.Tensor, h_s: torch.Tensor) -> float:
    """The paper's formula for one (h_t, h_s) pair, from the module's parameters only."""
    if att.score == "dot":
        return float(h_t @ h_s)
    if att.score == "general":
        return float(h_t @ (att.W_a.weight @ h_s))
    if att.score == "concat":
        return float(att.v_a.weight[0] @ torch.tanh(att.W_a.weight @ torch.cat([h_t, h_s])))
    return float(att.v.weight[0] @ torch.tanh(att.W_1.weight @ h_t + att.W_2.weight @ h_s))


def hand_attention(
    att: Attention, query: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor | None
):
    """a_ts = exp(score_s) / sum over real s' of exp(score_s'), 0 at padding;
    c_t = sum_s a_ts h_s."""
    weights = torch.zeros(B, S, dtype=torch.float64)
    context = torch.zeros(B, att.key_size, dtype=torch.float64)
    with torch.no_grad():
        for b in range(B):
            real = [s for s in range(S) if mask is None or mask[b, s]]
            scores = {s: hand_score(att, query[b], keys[b, s]) for s in real}
            top = max(scores.values())
            total = sum(math.exp(x - top) for x in scores.values())
            for s in real:
                weights[b, s] = math.exp(scores[s] - top) / total
                context[b] += weights[b, s] * keys[b, s]
    return context, weights


@pytest.mark.parametrize("masked", [True, False], ids=["masked", "unmasked"])
@pytest.mark.parametrize("score", SCORES)
def test_matches_hand_computation(score, masked):
    att = make(score)
    query, keys, mask = inputs(att)
    mask = mask if masked else None
    context, weights = att(query, keys, mask)
    want_context, want_weights = hand_attention(att, query, keys, mask)
    assert context.shape == (B, att.key_size) and weights.shape == (B, S)
    torch.testing.assert_close(weights, want_weights, rtol=0, atol=1e-12)
    torch.testing.assert_close(context, want_context, rtol=0, atol=1e-12)


@pytest.mark.parametrize("score", SCORES)
def test_padding_gets_exactly_zero_weight_and_no_say(score):
    att = make(score)
    query, keys, mask = inputs(att)
    context, weights = att(query, keys, mask)
    assert (weights[~mask] == 0).all()
    torch.testing.assert_close(
        weights.sum(dim=-1), torch.ones(B, dtype=torch.float64), rtol=0, atol=1e-12
    )

    changed = keys.clone()
    changed[~mask] = 100.0 * torch.randn_like(changed[~mask])
    context2, weights2 = att(query, changed, mask)
    assert torch.equal(weights2, weights)
    assert torch.equal(context2, context)


@pytest.mark.parametrize("score", SCORES)
def test_all_steps_at_once_equal_one_step_at_a_time(score):
    att = make(score)
    queries, keys, mask = inputs(att, time_steps=T)
    context, weights = att(queries, keys, mask)
    assert context.shape == (B, T, att.key_size) and weights.shape == (B, T, S)
    for t in range(T):
        context_t, weights_t = att(queries[:, t], keys, mask)
        torch.testing.assert_close(context[:, t], context_t, rtol=0, atol=1e-12)
        torch.testing.assert_close(weights[:, t], weights_t, rtol=0, atol=1e-12)


@pytest.mark.parametrize("score", SCORES)
def test_precomputed_keys_give_the_same_result(score):
    att = make(score)
    query, keys, mask = inputs(att)
    projected = att.precompute(keys)
    for got, want in zip(att(query, keys, mask, projected), att(query, keys, mask), strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("score", SCORES)
def test_gradients_reach_every_parameter_and_input(score):
    att = make(score)
    query, keys, mask = inputs(att)
    query.requires_grad_(True)
    keys.requires_grad_(True)
    context, _ = att(query, keys, mask)
    context.sum().backward()
    for name, p in att.named_parameters():
        assert p.grad is not None and (p.grad != 0).all(), name
    # a single real source position has weight 1 whatever the query: no gradient to its query
    assert (query.grad[:-1] != 0).all() and (query.grad[-1] == 0).all()
    assert (keys.grad[mask] != 0).all()


def test_bad_configurations_are_refused():
    with pytest.raises(ValueError, match="query_size.*key_size"):
        Attention("dot", query_size=3, key_size=4)
    with pytest.raises(ValueError, match="unknown attention score 'mlp'"):
        Attention("mlp", query_size=4, key_size=4)
    with pytest.raises(ValueError, match="attention_size"):
        Attention("general", query_size=3, key_size=4, attention_size=8)


def test_wrong_input_shapes_are_refused():
    att = make("general")
    query, keys, mask = inputs(att)
    with pytest.raises(ValueError, match="query"):
        att(keys[:, 0], keys, mask)
    with pytest.raises(ValueError, match="mask"):
        att(query, keys, mask[:, :-1])
