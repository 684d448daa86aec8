"""rnnkit.losses.token_cross_entropy against torch's cross_entropy, finite differences, bf16."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from rnnkit.losses import token_cross_entropy

B, T, V, PAD = 3, 5, 7, 0


def batch(dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = (3 * torch.randn(B, T, V, generator=g, dtype=torch.float64)).to(dtype)
    targets = torch.randint(1, V, (B, T), generator=g)
    targets[1, 3:] = PAD  # a padded tail
    targets[2, 0] = PAD
    return logits.requires_grad_(True), targets


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_equals_torch_cross_entropy_in_value_and_gradient(eps):
    logits, targets = batch()
    loss, count = token_cross_entropy(logits, targets, PAD, eps)
    (grad,) = torch.autograd.grad(2.5 * loss, logits)
    ref_logits = logits.detach().clone().requires_grad_(True)
    ref = F.cross_entropy(
        ref_logits.flatten(0, 1),
        targets.flatten(),
        ignore_index=PAD,
        reduction="sum",
        label_smoothing=eps,
    )
    (ref_grad,) = torch.autograd.grad(2.5 * ref, ref_logits)
    assert count == int((targets != PAD).sum()) == B * T - 3
    torch.testing.assert_close(loss, ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-12, atol=1e-12)
    assert (grad[targets == PAD] == 0).all()


@pytest.mark.parametrize("eps", [0.0, 0.2])
def test_gradient_matches_finite_differences(eps):
    logits, targets = batch(seed=1)
    assert torch.autograd.gradcheck(
        lambda z: token_cross_entropy(z, targets, PAD, eps)[0], (logits,), eps=1e-6, atol=1e-8
    )


def test_a_pad_index_outside_the_vocabulary_is_ignored_too():
    logits, targets = batch(seed=2)
    targets = targets.masked_fill(targets == PAD, -100)
    loss, count = token_cross_entropy(logits, targets, -100)
    real = targets != -100
    want = -torch.log_softmax(logits, -1)[real].gather(1, targets[real][:, None]).sum()
    assert count == int(real.sum())
    torch.testing.assert_close(loss, want, rtol=1e-12, atol=1e-12)


def test_bf16_logits_give_a_bf16_gradient_close_to_fp32():
    logits, targets = batch(dtype=torch.bfloat16, seed=3)
    loss, _ = token_cross_entropy(logits, targets, PAD, 0.1)
    (grad,) = torch.autograd.grad(loss, logits)
    assert loss.dtype == torch.float32 and grad.dtype == torch.bfloat16
    exact = logits.detach().double().requires_grad_(True)
    (want,) = torch.autograd.grad(token_cross_entropy(exact, targets, PAD, 0.1)[0], exact)
    torch.testing.assert_close(grad.double(), want, rtol=0, atol=1e-2)  # bf16: 8 bits
