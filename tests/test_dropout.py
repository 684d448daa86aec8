"""rnnkit.nn.dropout: inverted dropout's distribution, scale, gradient and modes; word dropout's
replacement rate per word."""

from __future__ import annotations

import math

import pytest
import torch

from rnnkit.nn.dropout import Dropout, WordDropout, dropout

N = 200_000


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5, 0.9])
def test_drops_a_fraction_p_and_scales_the_rest_by_one_over_one_minus_p(p):
    torch.manual_seed(0)
    x = torch.rand(N) + 0.5  # no zeros of its own
    y = dropout(x, p, training=True)
    dropped = (y == 0).double().mean().item()
    # the fraction of N Bernoulli(p) draws: 6 standard deviations of margin either way
    assert abs(dropped - p) < 6 * math.sqrt(p * (1 - p) / N)
    kept = y != 0
    torch.testing.assert_close(y[kept], x[kept] / (1 - p), rtol=1e-6, atol=0)


def test_gradient_is_the_mask_over_one_minus_p():
    torch.manual_seed(1)
    x = (torch.rand(1000) + 0.5).requires_grad_(True)
    y = dropout(x, 0.4, training=True)
    y.sum().backward()
    want = (y != 0).float() / 0.6
    torch.testing.assert_close(x.grad, want, rtol=1e-6, atol=0)


def test_evaluation_and_p_zero_return_the_input_itself():
    x = torch.randn(4, 5)
    assert dropout(x, 0.5, training=False) is x
    assert dropout(x, 0.0, training=True) is x
    assert torch.equal(dropout(x, 1.0, training=True), torch.zeros_like(x))


def test_keeps_the_dtype_and_draws_from_torch_generator():
    x = torch.randn(64, 10, dtype=torch.bfloat16)
    torch.manual_seed(3)
    a = dropout(x, 0.3, training=True)
    torch.manual_seed(3)
    b = dropout(x, 0.3, training=True)
    assert a.dtype == torch.bfloat16 and torch.equal(a, b)


def test_module_follows_train_and_eval():
    layer = Dropout(0.5)
    x = torch.ones(10_000)
    torch.manual_seed(0)
    assert (layer(x) == 0).any()
    layer.eval()
    assert torch.equal(layer(x), x)


def test_word_dropout_replaces_each_word_at_alpha_over_alpha_plus_its_count():
    # vocabulary: 0 <pad>, 1 <unk>, words 2..5 seen 1, 4, 25 and 0 times (5 occurs only at test)
    pad, unk, alpha = 0, 1, 0.25
    layer = WordDropout(alpha, [[2, 3, 3], [3, 3, 4] + [4] * 24], vocab_size=6, pad=pad, unk=unk)
    torch.manual_seed(0)
    words = torch.tensor([0, 2, 3, 4, 5, 1]).repeat(N // 6, 1)  # (N/6, 6)
    out = layer(words)
    n = words.shape[0]
    for column, count in [(1, 1), (2, 4), (3, 25), (4, 0)]:
        p = alpha / (alpha + count)
        replaced = out[:, column] == unk
        assert set(out[:, column].tolist()) <= {unk, words[0, column].item()}
        # 6 standard deviations of n Bernoulli(p) draws either way
        assert abs(replaced.double().mean().item() - p) < 6 * math.sqrt(p * (1 - p) / n) + 1e-12
    assert torch.equal(out[:, 0], words[:, 0])  # padding is never replaced
    assert torch.equal(out[:, 5], words[:, 5])  # <unk> stays <unk>
    torch.manual_seed(0)
    assert torch.equal(layer(words), out)  # torch's generator: seeded, resumable
