"""One time step of the Elman RNN, the LSTM and the GRU, written as the formulas of SPEC.md.

A step is split in two so that a layer can run it fast over a whole sequence:

- ``project(x, w)``: the input projection ``W_ih x + b``. It does not depend on the
  previous state, so a layer computes it for all T steps in one matmul:
  x ``(T, B, I)`` -> gx ``(T, B, kH)``.
- ``step(gx_t, state, w)``: everything that needs ``h_{t-1}``: one ``(B, H) x (H, kH)``
  matmul and pointwise work. ``state`` is a tuple: ``(h,)`` for RNN and GRU, ``(h, c)`` for LSTM.

The step classes (``RNNStep``, ``LSTMStep``, ``GRUStep``) hold only the variant options, no
weights: the cells below and the layers in ``layers.py`` own the weights (with torch.nn's names
and layout, gates stacked as torch stacks them) and hand them over as a ``CellWeights``.

The cells ``RNNCell``, ``LSTMCell``, ``GRUCell`` are drop-in replacements of torch.nn's cells
(same constructor, parameters and forward), plus the variant keywords.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from rnnkit.nn.gemm import affine

State = tuple[Tensor, ...]


class CellWeights(NamedTuple):
    """The weights of one cell (or one layer and direction of a stacked layer).

    Shapes, with k gates (RNN 1, GRU 3, LSTM 4), hidden size H, input size I, and
    P = proj_size or H: weight_ih (kH, I), weight_hh (kH, P), bias_ih and bias_hh (kH,) or None,
    weight_ch (3H,) the LSTM peephole weights of i, f, o or None, weight_hr (P, H) the LSTM
    projection or None.
    """

    weight_ih: Tensor
    weight_hh: Tensor
    bias_ih: Tensor | None
    bias_hh: Tensor | None
    weight_ch: Tensor | None = None
    weight_hr: Tensor | None = None


def hard_sigmoid(x: Tensor) -> Tensor:
    """``clip(0.2 x + 0.5, 0, 1)``: the piecewise-linear gate of Theano/Keras
    (not torch's x/6 + 1/2)."""
    return torch.clamp(0.2 * x + 0.5, 0.0, 1.0)


RNN_NONLINEARITIES: dict[str, Callable[[Tensor], Tensor]] = {"tanh": torch.tanh, "relu": torch.relu}
GRU_RESETS = ("after", "before")  # where r applies: after W_hn h (cuDNN), or before (Cho 2014)
GATE_ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "sigmoid": torch.sigmoid,
    "hard_sigmoid": hard_sigmoid,
}


def sum_biases(*biases: Tensor | None) -> Tensor | None:
    present = [b for b in biases if b is not None]
    return sum(present[1:], present[0]) if present else None


def project_all_biases(x: Tensor, w: CellWeights) -> Tensor:
    """``gx = W_ih x + b_ih + b_hh`` for every step at once: x (..., I) -> gx (..., kH).

    Both biases fold in here when neither sits inside a product with a gate.
    """
    return affine(x, w.weight_ih, sum_biases(w.bias_ih, w.bias_hh))


@dataclass(frozen=True)
class RNNStep:
    """Elman RNN: ``h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)``, act in {tanh, relu}.

    gx_t (B, H), h (B, H) -> h_t (B, H).
    """

    nonlinearity: str = "tanh"
    num_gates = 1
    num_states = 1

    def __post_init__(self) -> None:
        if self.nonlinearity not in RNN_NONLINEARITIES:
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {self.nonlinearity!r}")

    @property
    def fusable(self) -> bool:
        return True

    project = staticmethod(project_all_biases)

    def __call__(self, gx: Tensor, state: State, w: CellWeights) -> State:
        (h,) = state
        a = gx + affine(h, w.weight_hh)  # (B, H) = W_ih x + b + W_hh h
        return (RNN_NONLINEARITIES[self.nonlinearity](a),)


@dataclass(frozen=True)
class LSTMStep:
    """LSTM, gates stacked (i, f, g, o) as in torch.nn.LSTM::

        i = sigmoid(W_ii x + b_ii + W_hi h_{t-1} + b_hi [+ w_ci * c_{t-1}])
        f = sigmoid(W_if x + b_if + W_hf h_{t-1} + b_hf [+ w_cf * c_{t-1}])
        g = tanh(W_ig x + b_ig + W_hg h_{t-1} + b_hg)
        c_t = f * c_{t-1} + i * g
        o = sigmoid(W_io x + b_io + W_ho h_{t-1} + b_ho [+ w_co * c_t])
        h_t = o * tanh(c_t)                       [then h_t = W_hr h_t with a projection]

    The bracketed terms are the peephole connections (Gers & Schmidhuber 2000): diagonal
    weights, so i and f see c_{t-1} and o sees c_t.
    gx_t (B, 4H), h (B, P), c (B, H) -> h_t (B, P), c_t (B, H); P = proj_size or H.
    """

    peephole: bool = False
    num_gates = 4
    num_states = 2

    @property
    def fusable(self) -> bool:
        return not self.peephole

    project = staticmethod(project_all_biases)

    def __call__(self, gx: Tensor, state: State, w: CellWeights) -> State:
        h, c = state
        gates = gx + affine(h, w.weight_hh)  # (B, 4H)
        i, f, g, o = gates.chunk(4, 1)
        if self.peephole:
            w_ci, w_cf, w_co = w.weight_ch.chunk(3)
            i, f = torch.sigmoid(i + w_ci * c), torch.sigmoid(f + w_cf * c)
        else:  # i and f side by side: one sigmoid (and one backward) for both
            i, f = torch.sigmoid(gates[:, : 2 * c.shape[1]]).chunk(2, 1)
        c = torch.addcmul(f * c, i, torch.tanh(g))  # f * c + i * g
        o = torch.sigmoid(o + w_co * c if self.peephole else o)
        h = o * torch.tanh(c)
        if w.weight_hr is not None:
            h = affine(h, w.weight_hr)  # (B, P)
        return h, c


@dataclass(frozen=True)
class GRUStep:
    """GRU, gates stacked (r, z, n) as in torch.nn.GRU::

        r = gate(W_ir x + b_ir + W_hr h_{t-1} + b_hr)
        z = gate(W_iz x + b_iz + W_hz h_{t-1} + b_hz)
        n = tanh(W_in x + b_in + r * (W_hn h_{t-1} + b_hn))    reset="after"  (cuDNN, torch)
        n = tanh(W_in x + b_in + W_hn (r * h_{t-1}) + b_hn)    reset="before" (Cho et al. 2014)
        h_t = (1 - z) * n + z * h_{t-1}

    gate is sigmoid or hard_sigmoid ``clip(0.2 x + 0.5, 0, 1)``. The articles write
    ``h_t = z * n + (1 - z) * h_{t-1}``: the same model with z -> 1 - z.
    gx_t (B, 3H), h (B, H) -> h_t (B, H).
    """

    reset: str = "after"
    gate: str = "sigmoid"
    num_gates = 3
    num_states = 1

    def __post_init__(self) -> None:
        if self.reset not in GRU_RESETS:
            raise ValueError(f"reset must be 'after' or 'before', got {self.reset!r}")
        if self.gate not in GATE_ACTIVATIONS:
            raise ValueError(f"gate must be one of {sorted(GATE_ACTIVATIONS)}, got {self.gate!r}")

    @property
    def fusable(self) -> bool:
        return self.reset == "after" and self.gate == "sigmoid"

    def project(self, x: Tensor, w: CellWeights) -> Tensor:
        """x (..., I) -> gx (..., 3H). With reset="after", b_hn sits inside ``r * (...)``,
        so b_hh stays in the step; with reset="before" every bias folds in here."""
        if self.reset == "after":
            return affine(x, w.weight_ih, w.bias_ih)
        return project_all_biases(x, w)

    def __call__(self, gx: Tensor, state: State, w: CellWeights) -> State:
        (h,) = state
        gate = GATE_ACTIVATIONS[self.gate]
        hidden = h.shape[-1]
        x_rz, x_n = gx[:, : 2 * hidden], gx[:, 2 * hidden :]
        if self.reset == "after":
            gh = affine(h, w.weight_hh, w.bias_hh)  # (B, 3H)
            r, z = gate(x_rz + gh[:, : 2 * hidden]).chunk(2, 1)
            n = torch.tanh(x_n + r * gh[:, 2 * hidden :])
        else:
            r, z = gate(x_rz + affine(h, w.weight_hh[: 2 * hidden])).chunk(2, 1)
            n = torch.tanh(x_n + affine(r * h, w.weight_hh[2 * hidden :]))
        # (1 - z) * n + z * h, in the form torch's kernel computes it (same rounding).
        return (n + z * (h - n),)


Step = RNNStep | LSTMStep | GRUStep


def run_cell(step: Step, w: CellWeights, input: Tensor, hx: State | None) -> State:
    """One step of a cell module: input (B, I) or unbatched (I,); hx a state tuple or None
    (zeros)."""
    batched = input.dim() == 2
    x = input if batched else input.unsqueeze(0)
    if hx is None:
        hidden = w.weight_hh.shape[1]
        hx = tuple(x.new_zeros(x.shape[0], hidden) for _ in range(step.num_states))
    elif not batched:
        hx = tuple(s.unsqueeze(0) for s in hx)
    state = step(step.project(x, w), hx, w)
    return state if batched else tuple(s.squeeze(0) for s in state)


def _weights(cell: torch.nn.modules.rnn.RNNCellBase) -> CellWeights:
    return CellWeights(
        cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh, getattr(cell, "weight_ch", None)
    )


class RNNCell(torch.nn.RNNCell):
    """torch.nn.RNNCell computed by ``RNNStep``: forward(input (B, I), hx (B, H)) -> h' (B, H)."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        nonlinearity: str = "tanh",
        device=None,
        dtype=None,
    ) -> None:
        self.step = RNNStep(nonlinearity)
        super().__init__(input_size, hidden_size, bias, nonlinearity, device, dtype)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        return run_cell(self.step, _weights(self), input, None if hx is None else (hx,))[0]


class LSTMCell(torch.nn.LSTMCell):
    """torch.nn.LSTMCell computed by ``LSTMStep``, with optional peephole weights
    ``weight_ch`` (3H,) and forget-gate bias init: forward(input (B, I), (h, c)) -> (h', c')."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device=None,
        dtype=None,
        *,
        peephole: bool = False,
        forget_bias: float | None = None,
    ) -> None:
        self.step = LSTMStep(peephole)
        self.forget_bias = forget_bias
        super().__init__(input_size, hidden_size, bias, device, dtype)
        if peephole:
            self.weight_ch = torch.nn.Parameter(
                torch.empty(3 * hidden_size, device=device, dtype=dtype)
            )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        init_forget_bias(self.bias_ih, self.bias_hh, getattr(self, "forget_bias", None))

    def forward(
        self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, Tensor]:
        return run_cell(self.step, _weights(self), input, hx)


class GRUCell(torch.nn.GRUCell):
    """torch.nn.GRUCell computed by ``GRUStep``, with ``reset="after" | "before"`` and
    ``gate="sigmoid" | "hard_sigmoid"``: forward(input (B, I), hx (B, H)) -> h' (B, H)."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device=None,
        dtype=None,
        *,
        reset: str = "after",
        gate: str = "sigmoid",
    ) -> None:
        self.step = GRUStep(reset, gate)
        super().__init__(input_size, hidden_size, bias, device, dtype)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        return run_cell(self.step, _weights(self), input, None if hx is None else (hx,))[0]


@torch.no_grad()
def init_chrono(bias_ih: Tensor | None, bias_hh: Tensor | None, cell: str, t_max: int) -> None:
    """Chrono initialisation (Tallec & Ollivier 2018, "Can recurrent neural networks warp
    time?"): gate biases that spread the cell's memory timescales over 1..T_max.

    LSTM: ``b_f = log(u)``, ``b_i = -log(u)``, u ~ U(1, T_max - 1) per unit; a unit with no
    input then keeps c for about 1 / (1 - sigmoid(b_f)) = 1 + u steps.
    GRU: h_t = (1 - z) * n + z * h_{t-1}, so z plays f's part and 1 - z plays i's, and
    ``b_z = log(u)`` sets both.
    The bias each gate sees is b_ih + b_hh: the value goes to b_ih, and b_hh's entry is 0.
    """
    if bias_ih is None:
        return
    gates = {"lstm": 4, "gru": 3}[cell]
    hidden = bias_ih.shape[0] // gates
    log_u = torch.empty(hidden, dtype=bias_ih.dtype, device=bias_ih.device)
    log_u.uniform_(1.0, t_max - 1.0).log_()
    keep = slice(hidden, 2 * hidden)  # LSTM (i, f, g, o): f; GRU (r, z, n): z
    bias_ih[keep], bias_hh[keep] = log_u, 0.0
    if cell == "lstm":
        bias_ih[:hidden], bias_hh[:hidden] = -log_u, 0.0


@torch.no_grad()
def init_forget_bias(
    bias_ih: Tensor | None, bias_hh: Tensor | None, forget_bias: float | None
) -> None:
    """Set the LSTM forget-gate bias: ``b_if = forget_bias`` and ``b_hf = 0``, so that the bias
    the gate sees, their sum, is ``forget_bias`` (1.0 is the usual choice: Gers et al. 2000,
    Jozefowicz et al. 2015). Peephole weights need nothing here: torch's ``reset_parameters``
    draws every parameter, them included, from ``U(-1/sqrt(H), 1/sqrt(H))``."""
    if forget_bias is None or bias_ih is None:
        return
    hidden = bias_ih.shape[0] // 4
    bias_ih[hidden : 2 * hidden] = forget_bias
    bias_hh[hidden : 2 * hidden] = 0.0
