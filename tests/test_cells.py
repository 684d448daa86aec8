"""rnnkit.nn cells: torch.nn's cells on the same weights, gradcheck, the variants' formulas."""

from __future__ import annotations

import pytest
import torch

from rnnkit.nn import GRUCell, LSTMCell, RNNCell, hard_sigmoid

INPUT, HIDDEN, BATCH = 3, 4, 5

SHARED = {
    "rnn_tanh": (RNNCell, torch.nn.RNNCell, {"nonlinearity": "tanh"}, {}),
    "rnn_relu": (RNNCell, torch.nn.RNNCell, {"nonlinearity": "relu"}, {}),
    "lstm": (LSTMCell, torch.nn.LSTMCell, {}, {}),
    "gru": (GRUCell, torch.nn.GRUCell, {}, {}),
}
VARIANTS = {
    **{kind: (cls, {**args, **kw}) for kind, (cls, _, args, kw) in SHARED.items()},
    "lstm_peephole": (LSTMCell, {"peephole": True}),
    "gru_reset_before": (GRUCell, {"reset": "before"}),
    "gru_hard_sigmoid": (GRUCell, {"gate": "hard_sigmoid"}),
    "gru_before_hard": (GRUCell, {"reset": "before", "gate": "hard_sigmoid"}),
}


def state_for(kind: str, dtype: torch.dtype, batch: tuple[int, ...] = (BATCH,)):
    h = torch.randn(*batch, HIDDEN, dtype=dtype)
    return (h, torch.randn(*batch, HIDDEN, dtype=dtype)) if kind.startswith("lstm") else h


def flat(result) -> tuple[torch.Tensor, ...]:
    return tuple(result) if isinstance(result, tuple) else (result,)


@pytest.mark.parametrize("kind", SHARED)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("batch", [(BATCH,), ()])
def test_cell_equals_torch(kind, bias, batch):
    torch.manual_seed(0)
    ours_cls, torch_cls, args, _ = SHARED[kind]
    reference = torch_cls(INPUT, HIDDEN, bias, **args, dtype=torch.float64)
    ours = ours_cls(INPUT, HIDDEN, bias, **args, dtype=torch.float64)
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(*batch, INPUT, dtype=torch.float64)
    hx = state_for(kind, torch.float64, batch)
    for ours_out, ref_out in zip(flat(ours(x, hx)), flat(reference(x, hx)), strict=True):
        torch.testing.assert_close(ours_out, ref_out, rtol=1e-12, atol=1e-12)
    for ours_out, ref_out in zip(flat(ours(x)), flat(reference(x)), strict=True):
        torch.testing.assert_close(ours_out, ref_out, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", VARIANTS)
def test_gradcheck_cell(kind):
    torch.manual_seed(1)
    cls, kwargs = VARIANTS[kind]
    cell = cls(INPUT, HIDDEN, dtype=torch.float64, **kwargs)
    names = [name for name, _ in cell.named_parameters()]
    x = torch.randn(BATCH, INPUT, dtype=torch.float64, requires_grad=True)
    hx = tuple(s.requires_grad_() for s in flat(state_for(kind, torch.float64)))

    def step(x, *tensors):
        state, weights = tensors[: len(hx)], dict(zip(names, tensors[len(hx) :], strict=True))
        hx_arg = state if len(state) == 2 else state[0]
        return flat(torch.func.functional_call(cell, weights, (x, hx_arg)))

    assert torch.autograd.gradcheck(step, (x, *hx, *cell.parameters()))


def test_hard_sigmoid_is_clipped_line():
    x = torch.tensor([-10.0, -2.5, -1.0, 0.0, 1.0, 2.5, 10.0])
    assert torch.equal(hard_sigmoid(x), torch.tensor([0.0, 0.0, 0.3, 0.5, 0.7, 1.0, 1.0]))


def gru_by_hand(cell: GRUCell, x: torch.Tensor, h: torch.Tensor, reset: str, gate) -> torch.Tensor:
    """The GRU equations of SPEC.md, each weight block sliced out by name."""
    w_ir, w_iz, w_in = cell.weight_ih.chunk(3)
    w_hr, w_hz, w_hn = cell.weight_hh.chunk(3)
    b_ir, b_iz, b_in = cell.bias_ih.chunk(3)
    b_hr, b_hz, b_hn = cell.bias_hh.chunk(3)
    r = gate(x @ w_ir.T + b_ir + h @ w_hr.T + b_hr)
    z = gate(x @ w_iz.T + b_iz + h @ w_hz.T + b_hz)
    if reset == "after":
        n = torch.tanh(x @ w_in.T + b_in + r * (h @ w_hn.T + b_hn))
    else:
        n = torch.tanh(x @ w_in.T + b_in + (r * h) @ w_hn.T + b_hn)
    return (1 - z) * n + z * h


@pytest.mark.parametrize("reset", ["after", "before"])
@pytest.mark.parametrize("gate", ["sigmoid", "hard_sigmoid"])
def test_gru_variants_follow_their_formula(reset, gate):
    torch.manual_seed(2)
    cell = GRUCell(INPUT, HIDDEN, reset=reset, gate=gate, dtype=torch.float64)
    x, h = (
        torch.randn(BATCH, INPUT, dtype=torch.float64),
        torch.randn(BATCH, HIDDEN, dtype=torch.float64),
    )
    expected = gru_by_hand(
        cell, x, h, reset, {"sigmoid": torch.sigmoid, "hard_sigmoid": hard_sigmoid}[gate]
    )
    torch.testing.assert_close(cell(x, h), expected, rtol=1e-12, atol=1e-12)


def test_reset_before_differs_from_after():
    torch.manual_seed(3)
    after = GRUCell(INPUT, HIDDEN, dtype=torch.float64)
    before = GRUCell(INPUT, HIDDEN, reset="before", dtype=torch.float64)
    before.load_state_dict(after.state_dict())
    x, h = (
        torch.randn(BATCH, INPUT, dtype=torch.float64),
        torch.randn(BATCH, HIDDEN, dtype=torch.float64),
    )
    assert not torch.allclose(after(x, h), before(x, h))


def test_lstm_peephole_follows_its_formula():
    torch.manual_seed(4)
    cell = LSTMCell(INPUT, HIDDEN, peephole=True, dtype=torch.float64)
    x = torch.randn(BATCH, INPUT, dtype=torch.float64)
    h, c = (
        torch.randn(BATCH, HIDDEN, dtype=torch.float64),
        torch.randn(BATCH, HIDDEN, dtype=torch.float64),
    )
    a_i, a_f, a_g, a_o = (
        x @ cell.weight_ih.T + cell.bias_ih + h @ cell.weight_hh.T + cell.bias_hh
    ).chunk(4, 1)
    w_ci, w_cf, w_co = cell.weight_ch.chunk(3)
    i, f = torch.sigmoid(a_i + w_ci * c), torch.sigmoid(a_f + w_cf * c)
    c_new = f * c + i * torch.tanh(a_g)
    h_new = torch.sigmoid(a_o + w_co * c_new) * torch.tanh(c_new)
    h_out, c_out = cell(x, (h, c))
    torch.testing.assert_close(c_out, c_new, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(h_out, h_new, rtol=1e-12, atol=1e-12)


def test_lstm_cell_forget_bias():
    cell = LSTMCell(INPUT, HIDDEN, forget_bias=1.0)
    assert torch.all(cell.bias_ih[HIDDEN : 2 * HIDDEN] == 1.0)
    assert torch.all(cell.bias_hh[HIDDEN : 2 * HIDDEN] == 0.0)


@pytest.mark.parametrize("bad", [{"reset": "middle"}, {"gate": "relu"}])
def test_gru_rejects_unknown_variant(bad):
    with pytest.raises(ValueError, match="must be"):
        GRUCell(INPUT, HIDDEN, **bad)
