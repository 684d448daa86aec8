"""rnnkit.nn.scan and rnnkit.nn.minrnn: the log-space scan against the literal recurrence, the
scan (parallel=True) against the step form (parallel=False) and both against the NumPy
reference, long sequences, saturated gates, bf16 autocast, padding, directions and stacking.

Gradients are compared in norm, ``||g - g_ref|| / ||g_ref||``: a weight's gradient is a sum
over T * B steps, and its small entries carry the rounding of the large ones.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence

from rnnkit import reference as ref
from rnnkit.nn import MinGRU, MinGRUCell, MinLSTM, MinLSTMCell
from rnnkit.nn.scan import log_linear_scan

LAYERS = {"mingru": MinGRU, "minlstm": MinLSTM}
CELLS = {"mingru": MinGRUCell, "minlstm": MinLSTMCell}
TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-10}
INPUT, HIDDEN, BATCH = 4, 6, 3


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def loss_of(out: torch.Tensor, h_n: torch.Tensor, seed: int = 1) -> torch.Tensor:
    """A loss that weighs every output and final-state entry differently."""
    gen = torch.Generator().manual_seed(seed)
    return sum(
        (t * torch.randn(t.shape, generator=gen, dtype=torch.float64).to(t.dtype)).sum()
        for t in (out, h_n)
    )


def forward_backward(layer, x, hx=None, lengths=None, parallel=True):
    """outputs, h_n and every parameter's gradient (name -> tensor) of ``loss_of``."""
    layer.parallel = parallel
    layer.zero_grad()
    out, h_n = layer(x, hx, lengths)
    loss_of(out, h_n).backward()
    return out.detach(), h_n.detach(), {n: p.grad.clone() for n, p in layer.named_parameters()}


def assert_same_run(first, second, tol: float) -> None:
    (out_a, h_a, grads_a), (out_b, h_b, grads_b) = first, second
    torch.testing.assert_close(out_a.double(), out_b.double(), rtol=tol, atol=tol)
    torch.testing.assert_close(h_a.double(), h_b.double(), rtol=tol, atol=tol)
    for name in grads_b:
        assert relative(grads_a[name], grads_b[name]) < tol, name


def linear_recurrence(log_a, log_b, h0):
    """h_t = a_t h_{t-1} + b_t, one step at a time: the definition the scan computes."""
    h, out = h0, []
    for a, b in zip(log_a.exp(), log_b.exp(), strict=True):
        h = a * h + b
        out.append(h)
    return torch.stack(out)


# The scan ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk", [1, 3, 7, 16, 23, None])
@pytest.mark.parametrize("start", ["zeros", "mixed", "negative"])
def test_scan_is_the_linear_recurrence_for_any_chunk(chunk, start):
    # T = 23 is no multiple of 3, 7 or 16: a shorter last chunk is scanned on its own.
    gen = torch.Generator().manual_seed(0)
    shape = (23, 2, 5)
    log_a = -F.softplus(torch.randn(shape, generator=gen, dtype=torch.float64))
    log_b = torch.randn(shape, generator=gen, dtype=torch.float64)
    h0 = 3 * torch.randn(shape[1:], generator=gen, dtype=torch.float64)
    h0 = {"zeros": torch.zeros_like(h0), "mixed": h0, "negative": -h0.abs() - 1}[start]
    expected = linear_recurrence(log_a, log_b, h0)
    given = None if start == "zeros" else h0
    torch.testing.assert_close(
        log_linear_scan(log_a, log_b, given, chunk), expected, rtol=1e-12, atol=1e-12
    )


def test_scan_gradcheck():
    gen = torch.Generator().manual_seed(0)
    log_a = -F.softplus(torch.randn(7, 2, 3, generator=gen, dtype=torch.float64))
    log_b = torch.randn(7, 2, 3, generator=gen, dtype=torch.float64)
    h0 = torch.randn(2, 3, generator=gen, dtype=torch.float64)
    inputs = tuple(t.requires_grad_() for t in (log_a, log_b, h0))
    assert torch.autograd.gradcheck(lambda a, b, h: log_linear_scan(a, b, h, chunk=3), inputs)
    assert torch.autograd.gradcheck(lambda a, b: log_linear_scan(a, b, None, chunk=3), inputs[:2])


def test_chunks_keep_float32_accurate_over_4096_steps():
    """Unchunked, float32 loses about |a*_T| 2^-24 of h (2e-4 here, a ~ 1/2); in chunks of 16 it
    loses |a*| <= 16 |log a| times that."""
    gen = torch.Generator().manual_seed(0)
    log_a = -F.softplus(torch.randn(4096, 2, 8, generator=gen, dtype=torch.float64))
    log_b = -F.softplus(-torch.randn(4096, 2, 8, generator=gen, dtype=torch.float64))
    h0 = torch.randn(2, 8, generator=gen, dtype=torch.float64)
    expected = linear_recurrence(log_a, log_b, h0)  # float64
    got = log_linear_scan(log_a.float(), log_b.float(), h0.float())
    assert relative(got, expected) < 1e-6


# The layers: scan == step form == NumPy ---------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
@pytest.mark.parametrize("cell", LAYERS)
def test_scan_equals_step_form_over_1000_steps(cell, dtype):
    torch.manual_seed(0)
    layer = LAYERS[cell](INPUT, HIDDEN, dtype=dtype)
    x = torch.randn(1000, 2, INPUT, dtype=dtype)
    hx = 2 * torch.randn(1, 2, HIDDEN, dtype=dtype)  # mixed signs
    scan = forward_backward(layer, x, hx, parallel=True)
    steps = forward_backward(layer, x, hx, parallel=False)
    assert_same_run(scan, steps, TOLERANCE[dtype])


@pytest.mark.parametrize("cell", LAYERS)
def test_negative_initial_state(cell):
    """h_0 < 0 everywhere (an encoder's state, a carried LM state): its term stays outside the
    log, and reaches h_t as exp(a*_t) h_0; its gradient is right too."""
    torch.manual_seed(1)
    layer = LAYERS[cell](INPUT, HIDDEN, dtype=torch.float64)
    x = torch.randn(40, BATCH, INPUT, dtype=torch.float64)
    hx = (-5 - torch.rand(1, BATCH, HIDDEN, dtype=torch.float64)).requires_grad_()
    grads = []
    for parallel in (True, False):
        layer.parallel = parallel
        out, h_n = layer(x, hx)
        grads.append(torch.autograd.grad(loss_of(out, h_n), hx)[0])
        assert (out[0] < 0).any()  # the state did start negative
        first = layer.step(layer.step.project(x[0], layer.cell_weights()[0][0]), (hx[0],))[0]
        torch.testing.assert_close(out[0], first, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-10, atol=1e-10)


def numpy_params(layer) -> ref.Params:
    return {
        "weight_ih": layer.weight_ih_l0.detach().numpy().copy(),
        "bias_ih": layer.bias_ih_l0.detach().numpy().copy(),
    }


@pytest.mark.parametrize("parallel", [True, False])
@pytest.mark.parametrize("cell", ref.MIN_CELLS)
def test_layer_matches_numpy_reference(cell, parallel):
    """Forward states equal; and autograd through the layer gives ref.bptt's gradients."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    steps, vocab = 9, 7
    layer = LAYERS[cell](INPUT, HIDDEN, dtype=torch.float64, parallel=parallel, chunk=4)
    out_layer = torch.nn.Linear(HIDDEN, vocab, dtype=torch.float64)
    x, y = rng.normal(size=(steps, BATCH, INPUT)), rng.integers(0, vocab, size=(steps, BATCH))
    h0 = rng.normal(size=(BATCH, HIDDEN))
    p = numpy_params(layer) | {
        "weight_hy": out_layer.weight.detach().numpy().copy(),
        "bias_y": out_layer.bias.detach().numpy().copy(),
    }
    states, _ = ref.forward(cell, p, x, (h0,))
    out, h_n = layer(torch.from_numpy(x), torch.from_numpy(h0)[None])
    np.testing.assert_allclose(
        out.detach().numpy(), np.stack([s[0] for s in states[1:]]), 1e-10, 1e-12
    )
    np.testing.assert_allclose(h_n[0].detach().numpy(), states[-1][0], 1e-10, 1e-12)

    loss = F.cross_entropy(
        out_layer(out).flatten(0, 1), torch.from_numpy(y).flatten(), reduction="sum"
    )
    loss.backward()
    expected_loss, grads = ref.bptt(cell, p, x, y, (h0,))
    assert loss.item() == pytest.approx(expected_loss, rel=1e-12)
    for name, param in [("weight_ih", layer.weight_ih_l0), ("bias_ih", layer.bias_ih_l0),
                        ("weight_hy", out_layer.weight), ("bias_y", out_layer.bias)]:  # fmt: skip
        np.testing.assert_allclose(param.grad.numpy(), grads[name], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("cell", ref.MIN_CELLS)
def test_reference_bptt_matches_finite_differences(cell):
    rng = np.random.default_rng(0)
    p = ref.init_min_params(cell, INPUT, 5, 7, rng)
    x, y = rng.normal(size=(6, BATCH, INPUT)), rng.integers(0, 7, size=(6, BATCH))
    state0 = (rng.normal(size=(BATCH, 5)),)
    _, grads = ref.bptt(cell, p, x, y, state0)
    eps = 1e-6
    for name, value in p.items():
        fd = np.zeros_like(value)
        for idx in np.ndindex(value.shape):
            saved = value[idx]
            value[idx] = saved + eps
            plus = ref.loss(cell, p, x, y, state0)
            value[idx] = saved - eps
            minus = ref.loss(cell, p, x, y, state0)
            value[idx] = saved
            fd[idx] = (plus - minus) / (2 * eps)
        assert np.linalg.norm(grads[name] - fd) / np.linalg.norm(fd) < 1e-6, name
        assert np.abs(grads[name]).max() > 0, name


# Long sequences, saturated gates, bf16 -----------------------------------------------------------


@pytest.mark.parametrize("cell", LAYERS)
def test_4096_steps_chunked_finite_and_accurate(cell):
    torch.manual_seed(0)
    layer = LAYERS[cell](INPUT, 8)
    truth = copy.deepcopy(layer).double()
    x, hx = torch.randn(4096, 2, INPUT), torch.randn(1, 2, 8)
    out, h_n, grads = forward_backward(layer, x, hx, parallel=True)
    assert all(t.isfinite().all() for t in (out, h_n, *grads.values()))
    expected = forward_backward(truth, x.double(), hx.double(), parallel=False)
    assert_same_run((out, h_n, grads), expected, 1e-5)


@pytest.mark.parametrize("keep", [True, False])
@pytest.mark.parametrize("cell", LAYERS)
def test_saturated_gates(cell, keep):
    """Gate biases of +-30: a_t ~ 1 (h kept, b ~ 1e-13) or a_t ~ 1e-13 (h overwritten, log a =
    -30 per step). Finite, and the scan equals the step form."""
    torch.manual_seed(0)
    layer = LAYERS[cell](INPUT, HIDDEN)
    with torch.no_grad():
        keep_bias = 30.0 if keep else -30.0
        if cell == "mingru":  # a = 1 - z
            layer.bias_ih_l0[:HIDDEN] = -keep_bias
        else:  # a = f' = f / (f + i)
            layer.bias_ih_l0[:HIDDEN] = keep_bias
            layer.bias_ih_l0[HIDDEN : 2 * HIDDEN] = -keep_bias
    x, hx = torch.randn(300, BATCH, INPUT), 2 * torch.randn(1, BATCH, HIDDEN)
    scan = forward_backward(layer, x, hx, parallel=True)
    steps = forward_backward(layer, x, hx, parallel=False)
    assert all(t.isfinite().all() for t in (scan[0], scan[1], *scan[2].values()))
    if keep:  # h stays h_0
        torch.testing.assert_close(scan[1], hx, rtol=1e-5, atol=1e-5)
    # float32 loses |a*| 2^-24 <= 16 * 30 * 6e-8 = 3e-5 of h in chunks of 16 (scan.py)
    torch.testing.assert_close(scan[0], steps[0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(scan[1], steps[1], rtol=1e-4, atol=1e-5)
    for name in steps[2]:  # gradients through saturated sigmoids are ~1e-13: compare in scale
        scale = max(steps[2][name].abs().max().item(), 1e-6)
        torch.testing.assert_close(scan[2][name] / scale, steps[2][name] / scale, rtol=0, atol=1e-4)


# bf16 keeps 8 bits of each product's inputs (2^-9 = 2e-3 relative). Observed over 3 seeds:
# max |h_bf16 - h_fp32| <= 5e-3 (|h| <= 2), gradients within 5e-2 of fp32's in norm.
BF16_TOLERANCE = {"h": 0.02, "gradients": 0.15}


@pytest.mark.parametrize("cell", LAYERS)
def test_bf16_autocast_products_scan_in_float32(cell):
    torch.manual_seed(0)
    layer = LAYERS[cell](16, 16, num_layers=2)
    x, hx = torch.randn(256, BATCH, 16), torch.randn(2, BATCH, 16)
    out32, h32, grads32 = forward_backward(layer, x, hx)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, h_n, grads = forward_backward(layer, x, hx)
    assert out.dtype == h_n.dtype == torch.float32  # the scan's dtype
    assert all(t.isfinite().all() for t in (out, h_n, *grads.values()))
    assert 0 < (out - out32).abs().max() < BF16_TOLERANCE["h"]  # > 0: the products ran in bf16
    assert (h_n - h32).abs().max() < BF16_TOLERANCE["h"]
    for name in grads32:
        assert relative(grads[name], grads32[name]) < BF16_TOLERANCE["gradients"], name


# Padding, directions, stacking, packing, stepping -----------------------------------------------

LENGTHS = torch.tensor([7, 3, 5])


@pytest.mark.parametrize("parallel", [True, False])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("cell", LAYERS)
def test_lengths_equal_running_each_sequence_alone(cell, bidirectional, parallel):
    torch.manual_seed(0)
    layer = LAYERS[cell](INPUT, HIDDEN, num_layers=2, bidirectional=bidirectional,
                         dtype=torch.float64, parallel=parallel, chunk=2)  # fmt: skip
    directions = 2 if bidirectional else 1
    x = torch.randn(7, BATCH, INPUT, dtype=torch.float64)
    hx = torch.randn(2 * directions, BATCH, HIDDEN, dtype=torch.float64)
    out, h_n, grads = forward_backward(layer, x, hx, LENGTHS, parallel)
    assert (out[3:, 1] == 0).all() and (out[5:, 2] == 0).all()  # LENGTHS 7, 3, 5
    alone_grads = dict.fromkeys(grads, 0)
    for b, length in enumerate(LENGTHS.tolist()):
        layer.zero_grad()
        seq_out, seq_h = layer(x[:length, b : b + 1], hx[:, b : b + 1])
        # loss_of weighs the batch's entries; the same weights for this sequence's part of it
        gen = torch.Generator().manual_seed(1)
        w_out = torch.randn(out.shape, generator=gen, dtype=torch.float64)
        w_h = torch.randn(h_n.shape, generator=gen, dtype=torch.float64)
        loss = (seq_out * w_out[:length, b : b + 1]).sum() + (seq_h * w_h[:, b : b + 1]).sum()
        loss.backward()
        for name, p in layer.named_parameters():
            alone_grads[name] = alone_grads[name] + p.grad
        torch.testing.assert_close(
            out[:length, b : b + 1], seq_out.detach(), rtol=1e-10, atol=1e-12
        )
        torch.testing.assert_close(h_n[:, b : b + 1], seq_h.detach(), rtol=1e-10, atol=1e-12)
    for name in grads:
        assert relative(grads[name], alone_grads[name]) < 1e-10, name


def single_layer(layer, layer_index: int, direction: int):
    """A one-layer unidirectional copy of one layer and direction of ``layer``."""
    suffix = f"_l{layer_index}" + ("_reverse" if direction else "")
    weight = getattr(layer, "weight_ih" + suffix)
    single = type(layer)(weight.shape[1], layer.hidden_size, dtype=weight.dtype)
    single.load_state_dict(
        {"weight_ih_l0": weight, "bias_ih_l0": getattr(layer, "bias_ih" + suffix)}
    )
    return single


@pytest.mark.parametrize("parallel", [True, False])
@pytest.mark.parametrize("cell", LAYERS)
def test_bidirectional_reverse_is_the_reversed_sequence(cell, parallel):
    torch.manual_seed(0)
    layer = LAYERS[cell](INPUT, HIDDEN, bidirectional=True, dtype=torch.float64, parallel=parallel)
    x = torch.randn(9, BATCH, INPUT, dtype=torch.float64)
    hx = torch.randn(2, BATCH, HIDDEN, dtype=torch.float64)
    out, h_n = layer(x, hx)
    forward_out, forward_h = single_layer(layer, 0, 0)(x, hx[:1])
    backward_out, backward_h = single_layer(layer, 0, 1)(x.flip(0), hx[1:])
    torch.testing.assert_close(out, torch.cat([forward_out, backward_out.flip(0)], -1))
    torch.testing.assert_close(h_n, torch.cat([forward_h, backward_h]))


@pytest.mark.parametrize("cell", LAYERS)
def test_stack_equals_composed_layers(cell):
    torch.manual_seed(0)
    layer = LAYERS[cell](INPUT, HIDDEN, num_layers=2, bidirectional=True, dtype=torch.float64)
    x = torch.randn(9, BATCH, INPUT, dtype=torch.float64)
    hx = torch.randn(4, BATCH, HIDDEN, dtype=torch.float64)
    out, h_n = layer(x, hx)
    below, finals = x, []
    for k in range(2):
        forward_out, forward_h = single_layer(layer, k, 0)(below, hx[2 * k : 2 * k + 1])
        backward_out, backward_h = single_layer(layer, k, 1)(
            below.flip(0), hx[2 * k + 1 : 2 * k + 2]
        )
        below = torch.cat([forward_out, backward_out.flip(0)], -1)
        finals += [forward_h, backward_h]
    torch.testing.assert_close(out, below)
    torch.testing.assert_close(h_n, torch.cat(finals))


def test_dropout_acts_between_layers_in_training_only():
    torch.manual_seed(0)
    layer = MinGRU(INPUT, HIDDEN, num_layers=2, dropout=0.5)
    x = torch.randn(5, BATCH, INPUT)
    first = single_layer(layer, 0, 0)(x)[0]
    layer.eval()
    torch.testing.assert_close(layer(x)[0], single_layer(layer, 1, 0)(first)[0])
    layer.train()
    assert not torch.allclose(layer(x)[0], layer.eval()(x)[0])


@pytest.mark.parametrize("cell", LAYERS)
def test_packed_sequence_batch_first_and_unbatched(cell):
    torch.manual_seed(0)
    layer = LAYERS[cell](INPUT, HIDDEN, bidirectional=True, dtype=torch.float64)
    x = torch.randn(7, BATCH, INPUT, dtype=torch.float64)
    out, h_n = layer(x, None, LENGTHS)
    packed, packed_h = layer(pack_padded_sequence(x, LENGTHS, enforce_sorted=False))
    torch.testing.assert_close(torch.nn.utils.rnn.pad_packed_sequence(packed)[0], out)
    torch.testing.assert_close(packed_h, h_n)
    layer.batch_first = True
    first_out, first_h = layer(x.transpose(0, 1), None, LENGTHS)
    torch.testing.assert_close(first_out, out.transpose(0, 1))
    torch.testing.assert_close(first_h, h_n)
    single_out, single_h = layer(x[:, 0])  # unbatched (T, I) ignores batch_first, as torch
    layer.batch_first = False
    torch.testing.assert_close(single_out, layer(x[:, :1])[0][:, 0])
    with pytest.raises(ValueError, match="lengths"):
        layer(x, None, torch.tensor([8, 1, 1]))


@pytest.mark.parametrize("cell", LAYERS)
def test_decoding_step_by_step_equals_the_scan(cell):
    """step_projected (one step through all layers) and forward with T = 1 (the step form),
    step after step, give what one scan over the sequence gives."""
    torch.manual_seed(0)
    layer = LAYERS[cell](INPUT, HIDDEN, num_layers=2, dropout=0.3).eval()
    x, hx = torch.randn(20, BATCH, INPUT), torch.randn(2, BATCH, HIDDEN)
    out, h_n = layer(x, hx)
    w0 = layer.cell_weights()[0][0]
    h_projected = h_forward = hx
    for t in range(20):
        y, h_projected = layer.step_projected(layer.step.project(x[t], w0), h_projected)
        y_forward, h_forward = layer(x[t : t + 1], h_forward)
        torch.testing.assert_close(y, out[t], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(y_forward[0], out[t], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(h_projected, h_n, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(h_forward, h_n, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cell", LAYERS)
def test_cell_is_one_step_of_the_layer_and_shows_its_gates(cell):
    torch.manual_seed(0)
    layer = LAYERS[cell](INPUT, HIDDEN)
    one = CELLS[cell](INPUT, HIDDEN)
    one.load_state_dict({"weight_ih": layer.weight_ih_l0, "bias_ih": layer.bias_ih_l0})
    x, h = torch.randn(BATCH, INPUT), torch.randn(BATCH, HIDDEN)
    torch.testing.assert_close(one(x, h), layer(x[None], h[None])[0][0])
    torch.testing.assert_close(one(x[0], h[0]), one(x, h)[0])  # unbatched
    gates = one.gates(x)
    assert list(gates) == list(one.step.gate_names)
    assert all(v.shape == (BATCH, HIDDEN) for v in gates.values())
    assert (gates["h~"] > 0).all()
    if cell == "mingru":
        expected = (1 - gates["z"]) * h + gates["z"] * gates["h~"]
    else:
        torch.testing.assert_close(gates["f'"] + gates["i'"], torch.ones(BATCH, HIDDEN))
        expected = gates["f'"] * h + gates["i'"] * gates["h~"]
    torch.testing.assert_close(one(x, h), expected)
    layer_gates = LAYERS[cell](INPUT, HIDDEN, num_layers=2, bidirectional=True).gates(x[:, None])
    assert len(layer_gates) == 2 and len(layer_gates[1]) == 2


@pytest.mark.parametrize("cell", LAYERS)
def test_parameters_named_and_shaped_as_torch(cell):
    layer = LAYERS[cell](INPUT, HIDDEN, num_layers=2, bidirectional=True)
    k = {"mingru": 2, "minlstm": 3}[cell]
    shapes = {name: tuple(p.shape) for name, p in layer.named_parameters()}
    assert shapes == {
        "weight_ih_l0": (k * HIDDEN, INPUT), "bias_ih_l0": (k * HIDDEN,),
        "weight_ih_l0_reverse": (k * HIDDEN, INPUT), "bias_ih_l0_reverse": (k * HIDDEN,),
        "weight_ih_l1": (k * HIDDEN, 2 * HIDDEN), "bias_ih_l1": (k * HIDDEN,),
        "weight_ih_l1_reverse": (k * HIDDEN, 2 * HIDDEN), "bias_ih_l1_reverse": (k * HIDDEN,),
    }  # fmt: skip
    assert not list(LAYERS[cell](INPUT, HIDDEN, bias=False).buffers())
    assert [n for n, _ in LAYERS[cell](INPUT, HIDDEN, bias=False).named_parameters()] == [
        "weight_ih_l0"
    ]
