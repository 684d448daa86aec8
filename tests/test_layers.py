"""rnnkit.nn layers against torch.nn's on the same weights: outputs, final states, gradients.
The explicit path's tests run with both of its backward passes (``bptt="handwritten"``, the
default, and ``bptt="autograd"``)."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnnkit.nn import GRU, LSTM, RNN
from rnnkit.nn.layers import single_step_explicit

# (rnnkit class, torch class, constructor keywords): every configuration torch computes too.
SHARED = {
    "rnn_tanh": (RNN, torch.nn.RNN, {"nonlinearity": "tanh"}),
    "rnn_relu": (RNN, torch.nn.RNN, {"nonlinearity": "relu"}),
    "lstm": (LSTM, torch.nn.LSTM, {}),
    "lstm_proj": (LSTM, torch.nn.LSTM, {"proj_size": 3}),
    "gru": (GRU, torch.nn.GRU, {}),
}
TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-10}
INPUT, HIDDEN, STEPS, BATCH = 4, 5, 6, 3
RAGGED = torch.tensor([6, 2, 4])


BPTT = ["handwritten", "autograd"]


def make_pair(
    kind: str, dtype: torch.dtype, fused: bool | None = False, bptt: str = "handwritten", **options
):
    ours_cls, torch_cls, kwargs = SHARED[kind]
    kwargs = {**kwargs, **options}
    reference = torch_cls(INPUT, HIDDEN, dtype=dtype, **kwargs)
    ours = ours_cls(INPUT, HIDDEN, dtype=dtype, fused=fused, bptt=bptt, **kwargs)
    ours.load_state_dict(reference.state_dict())
    return ours, reference


def as_tuple(hidden) -> tuple[torch.Tensor, ...]:
    return tuple(hidden) if isinstance(hidden, tuple) else (hidden,)


def scalar_loss(out: torch.Tensor, hidden, seed: int = 1) -> torch.Tensor:
    """A loss that weighs every output and state entry differently, so every gradient is tested."""
    gen = torch.Generator().manual_seed(seed)
    terms = [out, *as_tuple(hidden)]
    return sum((t * torch.randn(t.shape, generator=gen, dtype=t.dtype)).sum() for t in terms)


def assert_close(a: torch.Tensor, b: torch.Tensor, tol: float) -> None:
    torch.testing.assert_close(a, b, rtol=tol, atol=tol)


def run_torch(module, x, lengths, batch_first):
    if lengths is None:
        return module(x)
    packed = pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=False)
    out, hidden = module(packed)
    return pad_packed_sequence(out, batch_first=batch_first, total_length=STEPS)[0], hidden


MATRIX = list(
    itertools.product(
        SHARED, [1, 2], [False, True], [False, True], [False, True], [torch.float32, torch.float64]
    )
)


@pytest.mark.parametrize("bptt", BPTT)
@pytest.mark.parametrize("kind,layers,bidirectional,batch_first,ragged,dtype", MATRIX)
def test_explicit_path_equals_torch(kind, layers, bidirectional, batch_first, ragged, dtype, bptt):
    torch.manual_seed(0)
    ours, reference = make_pair(
        kind, dtype, bptt=bptt, num_layers=layers, bidirectional=bidirectional,
        batch_first=batch_first,
    )  # fmt: skip
    assert ours.fused is False
    shape = (BATCH, STEPS, INPUT) if batch_first else (STEPS, BATCH, INPUT)
    x = torch.randn(shape, dtype=dtype)
    x_ours, x_ref = x.clone().requires_grad_(), x.clone().requires_grad_()
    lengths = RAGGED if ragged else None

    out, hidden = ours(x_ours, lengths=lengths)
    out_ref, hidden_ref = run_torch(reference, x_ref, lengths, batch_first)
    tol = TOLERANCE[dtype]
    assert_close(out, out_ref, tol)
    for h, h_ref in zip(as_tuple(hidden), as_tuple(hidden_ref), strict=True):
        assert_close(h, h_ref, tol)

    scalar_loss(out, hidden).backward()
    scalar_loss(out_ref, hidden_ref).backward()
    assert_close(x_ours.grad, x_ref.grad, tol)
    grads = dict(reference.named_parameters())
    for name, p in ours.named_parameters():
        assert_close(p.grad, grads[name].grad, tol)


@pytest.mark.parametrize("kind", SHARED)
@pytest.mark.parametrize("fused", [False, True])
def test_packed_sequence_input_and_initial_state(kind, fused):
    torch.manual_seed(1)
    ours, reference = make_pair(kind, torch.float64, fused=fused, num_layers=2, bidirectional=True)
    x = torch.randn(STEPS, BATCH, INPUT, dtype=torch.float64)
    out_size = reference.proj_size or HIDDEN
    h0 = torch.randn(4, BATCH, out_size, dtype=torch.float64)
    hx = (h0, torch.randn(4, BATCH, HIDDEN, dtype=torch.float64)) if kind.startswith("lstm") else h0
    for enforce_sorted, lengths in [(False, RAGGED), (True, torch.tensor([6, 4, 2]))]:
        packed = pack_padded_sequence(x, lengths, enforce_sorted=enforce_sorted)
        out, hidden = ours(packed, hx)
        out_ref, hidden_ref = reference(packed, hx)
        assert torch.equal(out.batch_sizes, out_ref.batch_sizes)
        assert_close(out.data, out_ref.data, 1e-10)
        for h, h_ref in zip(as_tuple(hidden), as_tuple(hidden_ref), strict=True):
            assert_close(h, h_ref, 1e-10)


@pytest.mark.parametrize("kind", SHARED)
def test_unbatched_input(kind):
    torch.manual_seed(2)
    ours, reference = make_pair(kind, torch.float64, bidirectional=True)
    x = torch.randn(STEPS, INPUT, dtype=torch.float64)
    out, hidden = ours(x)
    out_ref, hidden_ref = reference(x)
    assert_close(out, out_ref, 1e-10)
    for h, h_ref in zip(as_tuple(hidden), as_tuple(hidden_ref), strict=True):
        assert_close(h, h_ref, 1e-10)


@pytest.mark.parametrize("kind", SHARED)
def test_fused_path_with_lengths_equals_explicit(kind):
    torch.manual_seed(3)
    explicit, _ = make_pair(kind, torch.float64, num_layers=2, bidirectional=True, batch_first=True)
    fused, _ = make_pair(
        kind, torch.float64, fused=None, num_layers=2, bidirectional=True, batch_first=True
    )
    fused.load_state_dict(explicit.state_dict())
    assert fused.fused is True
    x = torch.randn(BATCH, STEPS, INPUT, dtype=torch.float64)
    out, hidden = explicit(x, lengths=RAGGED)
    out_fused, hidden_fused = fused(x, lengths=RAGGED)
    assert_close(out, out_fused, 1e-10)
    for h, h_fused in zip(as_tuple(hidden), as_tuple(hidden_fused), strict=True):
        assert_close(h, h_fused, 1e-10)


VARIANTS = {
    "lstm_peephole": (LSTM, {"peephole": True}),
    "gru_reset_before": (GRU, {"reset": "before"}),
    "gru_hard_sigmoid": (GRU, {"gate": "hard_sigmoid"}),
    "gru_before_hard": (GRU, {"reset": "before", "gate": "hard_sigmoid"}),
    **{kind: (cls, kwargs) for kind, (cls, _, kwargs) in SHARED.items()},
}


@pytest.mark.parametrize("bptt", BPTT)
@pytest.mark.parametrize("kind", VARIANTS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_padding_gets_no_gradient_and_does_not_move_states(kind, bidirectional, bptt):
    torch.manual_seed(4)
    cls, kwargs = VARIANTS[kind]
    layer = cls(
        INPUT,
        HIDDEN,
        num_layers=2,
        bidirectional=bidirectional,
        fused=False,
        bptt=bptt,
        dtype=torch.float64,
        **kwargs,
    )
    x = torch.randn(STEPS, BATCH, INPUT, dtype=torch.float64, requires_grad=True)
    out, hidden = layer(x, lengths=RAGGED)
    scalar_loss(out, hidden).backward()
    padded = torch.arange(STEPS).unsqueeze(1) >= RAGGED  # (T, B)
    assert torch.all(x.grad[padded] == 0)
    assert torch.all(x.grad[~padded].abs().sum(-1) > 0)
    assert torch.all(out[padded] == 0)

    noisy = x.detach().clone()
    noisy[padded] = 1e3 * torch.randn(int(padded.sum()), INPUT, dtype=torch.float64)
    out_noisy, hidden_noisy = layer(noisy, lengths=RAGGED)
    assert torch.equal(out_noisy, out.detach())
    for h, h_noisy in zip(as_tuple(hidden), as_tuple(hidden_noisy), strict=True):
        assert torch.equal(h.detach(), h_noisy)


@pytest.mark.parametrize("bptt", BPTT)
@pytest.mark.parametrize("kind", VARIANTS)
def test_gradcheck_explicit_layer(kind, bptt):
    """Finite differences in float64 of every output and final state, with ragged lengths,
    through a bidirectional 2-layer stack."""
    torch.manual_seed(5)
    cls, kwargs = VARIANTS[kind]
    layer = cls(3, 4, num_layers=2, bidirectional=True, fused=False, bptt=bptt,
                dtype=torch.float64, **kwargs)  # fmt: skip
    x = torch.randn(4, 2, 3, dtype=torch.float64, requires_grad=True)
    params = tuple(layer.parameters())
    names = [name for name, _ in layer.named_parameters()]

    def outputs(x, *weights):
        state = dict(zip(names, weights, strict=True))
        out, hidden = torch.func.functional_call(
            layer, state, (x,), {"lengths": torch.tensor([4, 2])}
        )
        return (out, *as_tuple(hidden))

    assert torch.autograd.gradcheck(outputs, (x, *params))


def test_layer_dropout_applies_between_layers_only():
    torch.manual_seed(6)
    layer = LSTM(INPUT, HIDDEN, num_layers=2, dropout=1.0, fused=False)
    top = torch.nn.LSTM(HIDDEN, HIDDEN)
    top.load_state_dict(
        {k.replace("_l1", "_l0"): v for k, v in layer.state_dict().items() if "_l1" in k}
    )
    x = torch.randn(STEPS, BATCH, INPUT)
    out, (h, c) = layer(x)
    # dropout 1.0 zeroes the first layer's output: the second layer then sees only zeros.
    expected, (h_top, c_top) = top(torch.zeros(STEPS, BATCH, HIDDEN))
    assert_close(out, expected, 1e-6)
    assert_close(h[1], h_top[0], 1e-6)
    layer.eval()
    out_eval, _ = layer(x)
    assert not torch.allclose(out_eval, expected)


def test_peephole_with_zero_weights_equals_plain_lstm():
    torch.manual_seed(7)
    plain = LSTM(INPUT, HIDDEN, num_layers=2, bidirectional=True, dtype=torch.float64)
    peephole = LSTM(
        INPUT, HIDDEN, num_layers=2, bidirectional=True, peephole=True, dtype=torch.float64
    )
    assert peephole.fused is False and plain.fused is True
    state = {
        name: torch.zeros_like(p) for name, p in peephole.named_parameters() if "weight_ch" in name
    }
    assert len(state) == 4 and all(p.shape == (3 * HIDDEN,) for p in state.values())
    peephole.load_state_dict({**plain.state_dict(), **state})
    x = torch.randn(STEPS, BATCH, INPUT, dtype=torch.float64)
    out, (h, c) = peephole(x, lengths=RAGGED)
    out_plain, (h_plain, c_plain) = plain(x, lengths=RAGGED)
    assert_close(out, out_plain, 1e-10)
    assert_close(c, c_plain, 1e-10)
    with torch.no_grad():
        peephole.weight_ch_l0.fill_(0.5)
    assert not torch.allclose(peephole(x)[0], plain(x)[0])


def test_fused_choice():
    assert LSTM(2, 3).fused and GRU(2, 3).fused and RNN(2, 3, nonlinearity="relu").fused
    assert not LSTM(2, 3, peephole=True).fused
    assert not GRU(2, 3, reset="before").fused
    assert not GRU(2, 3, gate="hard_sigmoid").fused
    assert not LSTM(2, 3, fused=False).fused
    assert LSTM(2, 3).bptt == "handwritten" and LSTM(2, 3, proj_size=2).bptt == "autograd"
    assert GRU(2, 3, bptt="autograd").bptt == "autograd"
    with pytest.raises(ValueError, match="bptt must be one of handwritten, autograd"):
        RNN(2, 3, bptt="manual")
    with pytest.raises(ValueError, match="no fused kernel"):
        LSTM(2, 3, peephole=True, fused=True)
    with pytest.raises(ValueError, match="no fused kernel"):
        GRU(2, 3, reset="before", fused=True)


@pytest.mark.parametrize("cls", [LSTM, GRU])
def test_a_cpu_decoding_step_runs_the_explicit_cells_with_the_fused_numbers(cls):
    torch.manual_seed(15)
    layer = cls(INPUT, HIDDEN, num_layers=2, batch_first=True)
    step, sequence = torch.randn(BATCH, 1, INPUT), torch.randn(BATCH, STEPS, INPUT)
    with torch.no_grad():
        assert single_step_explicit(layer, step) and not single_step_explicit(layer, sequence)
        out, hidden = layer(step)
    assert not single_step_explicit(layer, step)  # with gradients: the kernel
    out_fused, hidden_fused = layer(step)
    assert_close(out, out_fused.detach(), 1e-5)
    for h, h_fused in zip(as_tuple(hidden), as_tuple(hidden_fused), strict=True):
        assert_close(h, h_fused.detach(), 1e-5)
    with torch.no_grad():  # fused=True insists on the kernel; the RNN's kernel is fast at T = 1
        assert not single_step_explicit(cls(INPUT, HIDDEN, fused=True), step)
        assert not single_step_explicit(RNN(INPUT, HIDDEN), step)


def test_forget_bias_init():
    layer = LSTM(2, 3, num_layers=2, bidirectional=True, forget_bias=1.0)
    for name, bias in layer.named_parameters():
        if name.startswith("bias_ih"):
            assert torch.all(bias[3:6] == 1.0)
        if name.startswith("bias_hh"):
            assert torch.all(bias[3:6] == 0.0)


def test_bad_lengths_are_rejected():
    layer = GRU(INPUT, HIDDEN, fused=False)
    x = torch.randn(STEPS, BATCH, INPUT)
    with pytest.raises(ValueError, match="lengths must be"):
        layer(x, lengths=torch.tensor([7, 1, 1]))
    with pytest.raises(ValueError, match="lengths must be"):
        layer(x, lengths=torch.tensor([2, 1]))


@pytest.mark.parametrize("bptt", BPTT)
@pytest.mark.parametrize("kind", VARIANTS)
def test_explicit_path_runs_under_cpu_bf16_autocast(kind, bptt):
    torch.manual_seed(8)
    cls, kwargs = VARIANTS[kind]
    layer = cls(INPUT, HIDDEN, num_layers=2, fused=False, bptt=bptt, **kwargs)
    x = torch.randn(STEPS, BATCH, INPUT)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, _ = layer(x, lengths=RAGGED)
    out.float().sum().backward()
    assert_close(out.float(), layer(x, lengths=RAGGED)[0].detach(), 0.1)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in layer.parameters())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("kind", VARIANTS)
def test_cuda_fused_and_explicit_agree(kind, monkeypatch):
    # cuDNN and cuBLAS may use TF32 on Ampere and newer (10-bit mantissa): compare in full fp32.
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    torch.manual_seed(9)
    cls, kwargs = VARIANTS[kind]
    layer = cls(INPUT, HIDDEN, num_layers=2, bidirectional=True, fused=False, **kwargs).cuda()
    x = torch.randn(STEPS, BATCH, INPUT, device="cuda")
    out_cpu, _ = layer.cpu()(x.cpu(), lengths=RAGGED)
    layer.cuda()
    out, _ = layer(x, lengths=RAGGED)
    assert_close(out.cpu(), out_cpu, 1e-4)
    if cls(INPUT, HIDDEN, **kwargs).fused:
        fused = cls(INPUT, HIDDEN, num_layers=2, bidirectional=True, **kwargs).cuda()
        fused.load_state_dict(layer.state_dict())
        assert_close(fused(x, lengths=RAGGED)[0], out, 1e-4)
    with torch.autocast("cuda", dtype=torch.float16):
        half, _ = layer(x, lengths=RAGGED)
    assert_close(half.float(), out, 2e-2)


def test_fused_lstm_under_cpu_bf16_autocast_runs_everywhere():
    # oneDNN has no bf16 LSTM kernel on CPUs without native bf16; the layer must still run.
    torch.manual_seed(10)
    layer = LSTM(INPUT, HIDDEN, num_layers=2)
    assert layer.fused
    x = torch.randn(STEPS, BATCH, INPUT)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, _ = layer(x)
        packed, _ = layer(pack_padded_sequence(x, RAGGED, enforce_sorted=False))
    assert_close(out.float(), layer(x)[0].detach(), 0.1)
    assert packed.data.shape[0] == int(RAGGED.sum())


@pytest.mark.parametrize("cls", [GRU, RNN], ids=lambda c: c.__name__)
def test_fused_gru_and_rnn_under_cpu_bf16_autocast_run_the_whole_recurrence_in_bf16(cls):
    # autocast leaves torch's CPU GRU in float32 (its update keeps the float32 state), casting
    # the state at every product; the layer casts input and state once, as autocast does for
    # the LSTM. (The RNN's tanh of bf16 products is bf16 already after the first step.)
    torch.manual_seed(11)
    layer = cls(INPUT, HIDDEN, num_layers=2, bidirectional=True)
    assert layer.fused
    x = torch.randn(STEPS, BATCH, INPUT, requires_grad=True)
    h0 = torch.randn(4, BATCH, HIDDEN)
    want, want_h = layer(x, h0, lengths=RAGGED)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        results = [
            layer(x, h0, lengths=RAGGED),
            layer(x, h0),
            layer(pack_padded_sequence(x, RAGGED, enforce_sorted=False), h0),
        ]
    for out, h in results:
        out = out.data if isinstance(out, torch.nn.utils.rnn.PackedSequence) else out
        assert out.dtype == h.dtype == torch.bfloat16
    out, h = results[0]
    assert_close(out.float(), want.detach(), 0.05)
    assert_close(h.float(), want_h.detach(), 0.05)
    (out.float().sum() + h.float().sum()).backward()
    assert x.grad.dtype == torch.float32 and torch.isfinite(x.grad).all()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in layer.parameters())
