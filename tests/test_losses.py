"""rnnkit.losses.token_cross_entropy: padding ignored and counted out, finite differences, bf16."""

from __future__ import annotations

import torch

from rnnkit.losses import token_cross_entropy

B, T, V, PAD = 3, 5, 7, 0


def batch(dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = (3 * torch.randn(B, T, V, generator=g, dtype=torch.float64)).to(dtype)
    targets = torch.randint(1, V, (B, T), generator=g)
    targets[1, 3:] = PAD  # a padded tail
    targets[2, 0] = PAD
    return logits.requires_grad_(True), targets


def test_a_pad_index_outside_the_vocabulary_is_ignored_too():
    logits, targets = batch(seed=2)
    targets = targets.masked_fill(targets == PAD, -100)
    loss, count = token_cross_entropy(logits, targets, -100)
    real = targets != -100
    want = -torch.log_softmax(logits, -1)[real].gather(1, targets[real][:, None]).sum()
    assert count == int(real.sum())
    torch.testing.assert_close(loss, want.float(), rtol=1e-6, atol=0)  # summed in fp32


def test_bf16_logits_give_a_bf16_gradient_close_to_fp32():
    logits, targets = batch(dtype=torch.bfloat16, seed=3)
    loss, _ = token_cross_entropy(logits, targets, PAD, 0.1)
    (grad,) = torch.autograd.grad(loss, logits)
    assert loss.dtype == torch.float32 and grad.dtype == torch.bfloat16
    exact = logits.detach().double().requires_grad_(True)
    (want,) = torch.autograd.grad(token_cross_entropy(exact, targets, PAD, 0.1)[0], exact)
    torch.testing.assert_close(grad.double(), want, rtol=0, atol=1e-2)  # bf16: 8 bits
