"""rnnkit.nn.bptt, the hand-written BPTT, against its oracle: autograd over the same explicit
cells (``bptt="autograd"``), in float64, for every cell and variant, stacked, bidirectional,
with ragged lengths and a given initial state; only some inputs needing gradients; and
``gemm.linear`` against ``torch.nn.functional.linear``. (Finite differences, the NumPy
reference and torch's fused kernels test it in test_layers.py and test_reference.py.)"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from test_layers import RAGGED, VARIANTS, as_tuple, scalar_loss

from rnnkit.errors import UserError
from rnnkit.nn.gemm import Linear, affine, linear
from rnnkit.tasks.registry import config_from_dict

INPUT, HIDDEN, STEPS, BATCH = 4, 5, 6, 3


def run(layer, x, hx, lengths):
    out, hidden = layer(x, hx, lengths=lengths)
    scalar_loss(out, hidden).backward()
    return [out, *as_tuple(hidden)], {n: p.grad for n, p in layer.named_parameters()}


@pytest.mark.parametrize("kind", VARIANTS)
@pytest.mark.parametrize("ragged", [False, True])
@pytest.mark.parametrize("bias", [True, False])
def test_handwritten_equals_autograd(kind, ragged, bias):
    cls, kwargs = VARIANTS[kind]
    torch.manual_seed(11)
    options = dict(num_layers=2, bidirectional=True, bias=bias, fused=False, dtype=torch.float64)
    layers = [cls(INPUT, HIDDEN, bptt=b, **options, **kwargs) for b in ("handwritten", "autograd")]
    layers[1].load_state_dict(layers[0].state_dict())
    assert layers[0].bptt == ("autograd" if "proj" in kind else "handwritten")
    x = torch.randn(STEPS, BATCH, INPUT, dtype=torch.float64)
    out_size = layers[0].proj_size or HIDDEN
    h0 = torch.randn(4, BATCH, out_size, dtype=torch.float64)
    hx = (h0, torch.randn(4, BATCH, HIDDEN, dtype=torch.float64)) if cls.__name__ == "LSTM" else h0
    results = []
    for layer in layers:
        x_, hx_ = (
            x.clone().requires_grad_(),
            tuple(h.clone().requires_grad_() for h in as_tuple(hx)),
        )
        values, grads = run(layer, x_, hx_ if len(hx_) > 1 else hx_[0], RAGGED if ragged else None)
        results.append((values, grads, [x_.grad, *(h.grad for h in hx_)]))
    (values, grads, inputs), (values_ref, grads_ref, inputs_ref) = results
    for a, b in zip(values + inputs, values_ref + inputs_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    assert grads.keys() == grads_ref.keys()
    for name in grads:
        torch.testing.assert_close(grads[name], grads_ref[name], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["lstm_peephole", "gru_reset_before", "rnn_relu", "gru"])
def test_only_what_needs_a_gradient_gets_one(kind):
    """A frozen layer still passes the gradient to its input, and a layer fed a constant input
    still learns: the BPTT forms only the gradients asked for, and the same ones."""
    cls, kwargs = VARIANTS[kind]
    torch.manual_seed(12)
    layer = cls(INPUT, HIDDEN, fused=False, dtype=torch.float64, **kwargs)
    oracle = cls(INPUT, HIDDEN, fused=False, bptt="autograd", dtype=torch.float64, **kwargs)
    oracle.load_state_dict(layer.state_dict())
    x = torch.randn(STEPS, BATCH, INPUT, dtype=torch.float64)
    for module in (layer, oracle):
        module.requires_grad_(False)
    grads = []
    for module in (layer, oracle):
        x_ = x.clone().requires_grad_()
        module(x_, lengths=RAGGED)[0].sum().backward()
        grads.append(x_.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-12, atol=1e-12)
    for module in (layer, oracle):
        module.requires_grad_(True)
        module(x, lengths=RAGGED)[0].sum().backward()
    for (name, p), q in zip(layer.named_parameters(), oracle.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-12, atol=1e-12, msg=name)


@pytest.mark.parametrize(
    "x_shape, w_shape, transpose",
    [((7, 5), (9, 5), False), ((3, 4, 5), (6, 5), False), ((30, 7), (9, 7), True)],
)
def test_linear_is_x_times_w_transposed(x_shape, w_shape, transpose):
    torch.manual_seed(13)
    x, w = torch.randn(x_shape), torch.randn(w_shape)
    if transpose:  # strided views, as the weight gradients pass them
        x, w = torch.randn(x_shape[::-1]).t(), torch.randn(w_shape[::-1]).t()
        assert not x.is_contiguous() and not w.is_contiguous()
    torch.testing.assert_close(linear(x, w), F.linear(x, w), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(linear(x.double(), w.double()), F.linear(x.double(), w.double()))


def test_model_bptt_is_a_checked_config_key():
    cfg = config_from_dict({"task": "lm", "model": {"bptt": "autograd"}})
    assert cfg.model.bptt == "autograd"
    with pytest.raises(UserError, match="model.bptt.*handwritten, autograd"):
        config_from_dict({"task": "lm", "model": {"bptt": "manual"}})


def test_gemm_linear_layer_is_torch_linear():
    """Forward and every gradient equal torch.nn.Linear's on the same weights; under autocast it
    is torch's own (bf16 out)."""
    torch.manual_seed(14)
    ours, theirs = Linear(7, 11), torch.nn.Linear(7, 11)
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(3, 5, 7)
    grads = []
    for layer in (ours, theirs):
        x_ = x.clone().requires_grad_()
        y = layer(x_)
        (y * torch.arange(y.numel()).view(y.shape).sin()).sum().backward()
        grads.append((y.detach(), x_.grad, layer.weight.grad, layer.bias.grad))
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert ours(x).dtype == theirs(x).dtype == torch.bfloat16


def test_affine_on_column_slices_sends_each_gradient_to_its_columns():
    """The decoder and attention multiply by column blocks of one weight (W_ih[:, :E],
    W_a[:, Q:]): values and gradients equal F.linear's, each block's into its own columns."""
    torch.manual_seed(15)
    weight = torch.randn(12, 9)
    x, y = torch.randn(4, 5), torch.randn(4, 3, 4)
    grads = []
    for fn in (affine, F.linear):
        w = weight.clone().requires_grad_()
        out = fn(x, w[:, :5]).sum(0) + fn(y, w[:, 5:]).sum((0, 1)) * 0.5
        (out * torch.arange(12.0).cos()).sum().backward()
        grads.append((out.detach(), w.grad))
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
