"""minGRU and minLSTM (Feng et al. 2024, "Were RNNs All We Needed?", arXiv 2410.01201): gated
cells whose gates and candidate see x_t alone, so a whole sequence trains as one parallel scan.

    minGRU:   z_t  = sigmoid(W_z x_t + b_z),   h~_t = g(W_h x_t + b_h)
              h_t  = (1 - z_t) * h_{t-1} + z_t * h~_t
    minLSTM:  f_t  = sigmoid(W_f x_t + b_f),   i_t = sigmoid(W_i x_t + b_i)
              h~_t = g(W_h x_t + b_h)
              f'_t = f_t / (f_t + i_t),        i'_t = i_t / (f_t + i_t)
              h_t  = f'_t * h_{t-1} + i'_t * h~_t
    g(x) = x + 0.5 for x >= 0, sigmoid(x) for x < 0     (positive, so that log h~ exists)

Both are ``h_t = a_t * h_{t-1} + b_t`` with a_t, b_t from x_t alone (minGRU: a = 1 - z,
b = z * h~; minLSTM: a = f', b = i' * h~), and f' + i' = 1 makes minLSTM a minGRU with z = i'.
Two forms, one result:

- the scan (``parallel=True``, training): every step's ``W x_t + b`` in one product, log a and
  log b in log space, then ``scan.log_linear_scan``, chunked;
- the step form (``parallel=False``, and any call with T = 1, i.e. decoding): the cell one step
  at a time in linear space, the oracle of the tests.

Logs are taken in log space, never of a value that may have underflowed:
``log z = -softplus(-k)``, ``log(1 - z) = -softplus(k)``, ``log g(x) = log(x + 0.5)`` (x >= 0)
or ``-softplus(-x)`` (x < 0), and for minLSTM ``log f' = -softplus(log i - log f)``,
``log i' = -softplus(log f - log i)``.

Layers ``MinGRU`` and ``MinLSTM`` take torch.nn.GRU's constructor and forward:
input (T, B, I), or (B, T, I) with batch_first, or unbatched (T, I); h_0 and h_n (L*D, B, H);
``lengths`` (B,) for a padded batch, or a PackedSequence; stacked, bidirectional, dropout
between layers (``recurrence.run_stack``). Parameters per layer k and direction:
``weight_ih_l{k}[_reverse]`` (2H, I_k) for minGRU (rows z, h~) or (3H, I_k) for minLSTM
(rows f, i, h~), and ``bias_ih_l{k}[_reverse]``; there is no weight_hh. Under autocast the
input products run in autocast's dtype (bf16) and everything after them in float32, so the
outputs and h_n are float32.
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from rnnkit.nn.cells import CellWeights, State, project_all_biases
from rnnkit.nn.dropout import dropout as apply_dropout
from rnnkit.nn.recurrence import run_stack
from rnnkit.nn.scan import DEFAULT_CHUNK, log_linear_scan


def in_scan_dtype(x: Tensor) -> Tensor:
    """x in the dtype the recurrence runs in: float32 for half and bf16 inputs (the products
    of autocast), x's own dtype otherwise. A long scan in bf16 (8 bits of mantissa) would lose
    h to rounding within a few steps; the products are the part worth running in bf16."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def g(x: Tensor) -> Tensor:
    """``g(x) = x + 0.5`` for x >= 0, ``sigmoid(x)`` for x < 0: continuous, positive."""
    return torch.where(x >= 0, x + 0.5, torch.sigmoid(x))


def log_g(x: Tensor) -> Tensor:
    """``log g(x)`` computed in log space: ``log(x + 0.5)`` for x >= 0, ``-softplus(-x)`` for
    x < 0. (relu keeps the branch that ``where`` drops finite, and so its gradient.)"""
    return torch.where(x >= 0, torch.log(torch.relu(x) + 0.5), -F.softplus(-x))


@dataclass(frozen=True)
class MinGRUStep:
    """minGRU, rows stacked (z, h~): gx (..., 2H) = ``W_ih x + b_ih``.

    ``a = 1 - z``, ``b = z * h~``; ``h_t = (1 - z) * h_{t-1} + z * h~ = lerp(h_{t-1}, h~, z)``."""

    num_gates = 2
    num_states = 1
    gate_names = ("z", "h~")

    project = staticmethod(project_all_biases)  # x (..., I) -> W_ih x + b_ih (..., 2H)

    def gates(self, gx: Tensor) -> dict[str, Tensor]:
        """gx (..., 2H) -> {"z": (..., H), "h~": (..., H)}."""
        k_z, k_h = in_scan_dtype(gx).chunk(2, -1)
        return {"z": torch.sigmoid(k_z), "h~": g(k_h)}

    def log_coefficients(self, gx: Tensor) -> tuple[Tensor, Tensor]:
        """gx (T, B, 2H) -> log a = log(1 - z) = -softplus(k_z),
        log b = log z + log h~ = -softplus(-k_z) + log g(k_h); each (T, B, H)."""
        k_z, k_h = in_scan_dtype(gx).chunk(2, -1)
        return -F.softplus(k_z), -F.softplus(-k_z) + log_g(k_h)

    def __call__(self, gx: Tensor, state: State, w: CellWeights | None = None) -> State:
        """One step: gx_t (B, 2H), (h_{t-1},) (B, H) -> (h_t,). lerp is ``h + z (h~ - h)``, which
        keeps z * h~ even where 1 - z rounds to 1."""
        gates = self.gates(gx)
        (h,) = state
        return (torch.lerp(h.to(gates["z"].dtype), gates["h~"], gates["z"]),)


@dataclass(frozen=True)
class MinLSTMStep:
    """minLSTM, rows stacked (f, i, h~): gx (..., 3H) = ``W_ih x + b_ih``.

    ``f' = f / (f + i) = sigmoid(log f - log i)``, ``i' = sigmoid(log i - log f)``;
    ``a = f'``, ``b = i' * h~``; ``h_t = f' * h_{t-1} + i' * h~ = lerp(h_{t-1}, h~, i')``.
    Through the logs, f' and i' stay right where f and i both underflow (biases of -100 would
    give 0 / 0 literally), and a tiny i' keeps its digits (1 - f' would round it away)."""

    num_gates = 3
    num_states = 1
    gate_names = ("f'", "i'", "h~")

    project = staticmethod(project_all_biases)  # x (..., I) -> W_ih x + b_ih (..., 3H)

    @staticmethod
    def log_f_minus_log_i(k_f: Tensor, k_i: Tensor) -> Tensor:
        """log f - log i = -softplus(-k_f) + softplus(-k_i)."""
        return F.softplus(-k_i) - F.softplus(-k_f)

    def gates(self, gx: Tensor) -> dict[str, Tensor]:
        """gx (..., 3H) -> {"f'", "i'", "h~"}, each (..., H)."""
        k_f, k_i, k_h = in_scan_dtype(gx).chunk(3, -1)
        d = self.log_f_minus_log_i(k_f, k_i)
        return {"f'": torch.sigmoid(d), "i'": torch.sigmoid(-d), "h~": g(k_h)}

    def log_coefficients(self, gx: Tensor) -> tuple[Tensor, Tensor]:
        """gx (T, B, 3H) -> log a = log f' = -softplus(log i - log f),
        log b = log i' + log h~ = -softplus(log f - log i) + log g(k_h); each (T, B, H)."""
        k_f, k_i, k_h = in_scan_dtype(gx).chunk(3, -1)
        d = self.log_f_minus_log_i(k_f, k_i)
        return -F.softplus(-d), -F.softplus(d) + log_g(k_h)

    def __call__(self, gx: Tensor, state: State, w: CellWeights | None = None) -> State:
        """One step: gx_t (B, 3H), (h_{t-1},) (B, H) -> (h_t,)."""
        gates = self.gates(gx)
        (h,) = state
        return (torch.lerp(h.to(gates["i'"].dtype), gates["h~"], gates["i'"]),)


MinStep = MinGRUStep | MinLSTMStep


def step_direction(
    step: MinStep, w: CellWeights, x: Tensor, state: State, mask: Tensor | None
) -> tuple[Tensor, State]:
    """The step form, one layer and direction: x (T, B, I), (h_0,) (B, H), mask (T, B, 1) bool
    or None -> outputs (T, B, H), (h_n,). A padded step keeps h (a = 1, b = 0) and outputs 0."""
    gx = step.project(x, w)  # (T, B, kH): the input products of every step in one matmul
    (h,) = state
    outputs = []
    for t, gx_t in enumerate(gx.unbind(0)):
        (new,) = step(gx_t, (h,))
        if mask is not None:
            new = torch.where(mask[t], new, h.to(new.dtype))
            outputs.append(new.masked_fill(~mask[t], 0.0))
        else:
            outputs.append(new)
        h = new
    return torch.stack(outputs), (h,)


def scan_direction(
    step: MinStep,
    w: CellWeights,
    x: Tensor,
    state: State,
    mask: Tensor | None,
    chunk: int | None = DEFAULT_CHUNK,
    zero_start: bool = False,
) -> tuple[Tensor, State]:
    """The scan, one layer and direction, with ``step_direction``'s signature and result.

    Padding: the scan is causal and a sequence's padding comes after its last step, so the
    outputs at real steps never see it; they are the step form's, the padded outputs are set
    to 0 and h_n is read at each sequence's last step, which is what carrying h through the
    padding (a = 1, b = 0) gives. ``zero_start``: h_0 is zeros, so its term is skipped."""
    log_a, log_b = step.log_coefficients(step.project(x, w))  # (T, B, H) each
    (h0,) = state
    h = log_linear_scan(log_a, log_b, None if zero_start else h0.to(log_a.dtype), chunk)
    if mask is None:
        return h, (h[-1],)
    last = (mask.sum(0) - 1).expand(h.shape[1:]).unsqueeze(0)  # (1, B, H): index of len - 1
    return h.masked_fill(~mask, 0.0), (h.gather(0, last).squeeze(0),)


def init_uniform(parameters: list[nn.Parameter], hidden_size: int) -> None:
    """torch.nn.GRU's initialisation: every parameter from U(-1/sqrt(H), 1/sqrt(H))."""
    bound = 1.0 / math.sqrt(hidden_size)
    for p in parameters:
        nn.init.uniform_(p, -bound, bound)


class MinCell(nn.Module):
    """One step of minGRU or minLSTM (``MinGRUCell``, ``MinLSTMCell``): parameters
    ``weight_ih`` (kH, I) and ``bias_ih`` (kH,); forward(input (B, I) or (I,), hx (B, H) or
    (H,) or None) -> h' (B, H) or (H,)."""

    step: MinStep

    def __init__(
        self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None
    ) -> None:
        super().__init__()
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        rows = self.step.num_gates * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(rows, input_size, device=device, dtype=dtype))
        bias_ih = nn.Parameter(torch.empty(rows, device=device, dtype=dtype))
        self.register_parameter("bias_ih", bias_ih if bias else None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init_uniform(list(self.parameters()), self.hidden_size)

    def weights(self) -> CellWeights:
        return CellWeights(self.weight_ih, None, self.bias_ih, None)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        batched = input.dim() == 2
        x = input if batched else input.unsqueeze(0)
        if hx is None:
            hx = x.new_zeros(x.shape[0], self.hidden_size)
        elif not batched:
            hx = hx.unsqueeze(0)
        (h,) = self.step(self.step.project(x, self.weights()), (hx,))
        return h if batched else h.squeeze(0)

    def gates(self, input: Tensor) -> dict[str, Tensor]:
        """The gates and candidate this cell computes from input (..., I), each (..., H), for a
        state viewer: minGRU ``z``, ``h~``; minLSTM ``f'``, ``i'``, ``h~``."""
        return self.step.gates(self.step.project(input, self.weights()))

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, bias={self.bias}"


class MinGRUCell(MinCell):
    """One minGRU step: ``h_t = (1 - z) * h_{t-1} + z * h~`` (``MinGRUStep``);
    weight_ih (2H, I), rows z, h~."""

    step = MinGRUStep()


class MinLSTMCell(MinCell):
    """One minLSTM step: ``h_t = f' * h_{t-1} + i' * h~`` (``MinLSTMStep``);
    weight_ih (3H, I), rows f, i, h~."""

    step = MinLSTMStep()


class MinRecurrentLayer(nn.Module):
    """The layer shared by ``MinGRU`` and ``MinLSTM``: torch.nn.GRU's constructor and forward
    (module docstring), and two keywords of its own:

    - ``parallel=True`` trains with the scan; False runs the step form (the same numbers, a
      loop over T). ``layer.parallel`` may be switched at any time.
    - ``chunk``: steps per chunk of the scan (``scan.DEFAULT_CHUNK``, chosen for float32
      accuracy; see ``scan.py``), or None for one chunk.

    Decoding one step at a time: ``layer(x_t.unsqueeze(0), h)`` as with torch.nn.GRU (T = 1
    takes the step form), or ``step_projected(gx, h)`` as the other rnnkit.nn layers have it."""

    step: MinStep

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device=None,
        dtype=None,
        *,
        parallel: bool = True,
        chunk: int | None = DEFAULT_CHUNK,
    ) -> None:
        super().__init__()
        if not 0 <= dropout <= 1:
            raise ValueError(f"dropout must be in [0, 1], got {dropout}")
        if dropout > 0 and num_layers == 1:
            warnings.warn(
                f"dropout={dropout} acts between layers; with num_layers=1 it does nothing",
                stacklevel=2,
            )
        if chunk is not None and chunk < 1:
            raise ValueError(f"chunk must be a positive number of steps or None, got {chunk}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional, self.parallel, self.chunk = bidirectional, parallel, chunk
        directions = 2 if bidirectional else 1
        rows = self.step.num_gates * hidden_size
        for layer in range(num_layers):
            size = input_size if layer == 0 else directions * hidden_size
            for direction in range(directions):
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                weight = torch.empty(rows, size, device=device, dtype=dtype)
                self.register_parameter("weight_ih" + suffix, nn.Parameter(weight))
                bias_ih = nn.Parameter(torch.empty(rows, device=device, dtype=dtype))
                self.register_parameter("bias_ih" + suffix, bias_ih if bias else None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init_uniform(list(self.parameters()), self.hidden_size)

    def cell_weights(self) -> list[list[CellWeights]]:
        """``weights[layer][direction]`` (weight_hh is None), as ``layers.RecurrentLayer``'s."""
        return [
            [
                CellWeights(
                    getattr(self, f"weight_ih_l{layer}{suffix}"),
                    None,
                    getattr(self, f"bias_ih_l{layer}{suffix}"),
                    None,
                )
                for suffix in (("", "_reverse") if self.bidirectional else ("",))
            ]
            for layer in range(self.num_layers)
        ]

    def forward(
        self,
        input: Tensor | PackedSequence,
        hx: Tensor | None = None,
        lengths: Tensor | None = None,
    ) -> tuple[Tensor | PackedSequence, Tensor]:
        """input (T, B, I) | (B, T, I) | (T, I) | PackedSequence, hx (L*D, B, H) or None,
        lengths (B,) or None -> output (T, B, D*H) (padded steps 0), h_n (L*D, B, H)."""
        if isinstance(input, PackedSequence):
            if lengths is not None:
                raise ValueError("lengths= goes with a padded tensor; a PackedSequence has its own")
            return self._packed(input, hx)
        if input.dim() not in (2, 3):
            raise ValueError(f"input must be (T, B, I), (B, T, I) or (T, I), got {input.shape}")
        batched = input.dim() == 3
        if not batched:
            if lengths is not None:
                raise ValueError("lengths= needs a batched 3-D input")
            out, h_n = self._run(input.unsqueeze(1), None if hx is None else hx.unsqueeze(1))
            return out.squeeze(1), h_n.squeeze(1)
        x = input.transpose(0, 1) if self.batch_first else input  # (T, B, I)
        if lengths is not None:
            lengths = torch.as_tensor(lengths)
            steps, batch = x.shape[:2]
            if lengths.shape != (batch,) or lengths.min() < 1 or lengths.max() > steps:
                raise ValueError(
                    f"lengths must be {batch} integers in 1..{steps}, got {lengths.tolist()}"
                )
            lengths = lengths.to(x.device)
        out, h_n = self._run(x, hx, lengths)
        return (out.transpose(0, 1) if self.batch_first else out), h_n

    def _packed(self, input: PackedSequence, hx: Tensor | None) -> tuple[PackedSequence, Tensor]:
        # The padded form in the caller's batch order (the order of hx and h_n), then the
        # output laid out exactly as the input was packed.
        x, lengths = pad_packed_sequence(input)  # (T, B, I), lengths (B,) on the CPU
        out, h_n = self._run(x, hx, lengths.to(x.device))
        order = input.sorted_indices
        if order is not None:
            out, lengths = out.index_select(1, order), lengths[order.cpu()]
        data = pack_padded_sequence(out, lengths).data
        return PackedSequence(
            data, input.batch_sizes, input.sorted_indices, input.unsorted_indices
        ), h_n

    def _run(
        self, x: Tensor, hx: Tensor | None, lengths: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """x (T, B, I) -> outputs (T, B, D*H), h_n (L*D, B, H): the scan, or the step form when
        ``parallel`` is off or T = 1 (a decoding step, where the scan has nothing to gain)."""
        zero_start = hx is None
        shape = (self.num_layers * (2 if self.bidirectional else 1), x.shape[1], self.hidden_size)
        if hx is None:
            hx = x.new_zeros(shape, dtype=in_scan_dtype(x).dtype)
        elif hx.shape != shape:
            raise ValueError(f"hx must be (L*D, B, H) = {shape}, got {tuple(hx.shape)}")
        if self.parallel and x.shape[0] > 1:
            direction = functools.partial(scan_direction, chunk=self.chunk, zero_start=zero_start)
        else:
            direction = step_direction
        out, (h_n,) = run_stack(
            self.step, self.cell_weights(), x, (hx,), lengths, self.dropout, self.training,
            direction,
        )  # fmt: skip
        return out, h_n

    def step_projected(self, gx: Tensor, hx: Tensor | None) -> tuple[Tensor, Tensor]:
        """One decoding step of a unidirectional stack whose first layer's input product is
        already computed, as ``layers.RecurrentLayer.step_projected``: gx (B, kH) =
        ``step.project(x_t, cell_weights()[0][0])``, hx (L, B, H) or None -> output (B, H),
        h (L, B, H). Layers above the first project their input, with dropout between."""
        if self.bidirectional:
            raise ValueError("step_projected runs one direction; this layer is bidirectional")
        finals: list[Tensor] = []
        for layer, (w,) in enumerate(self.cell_weights()):
            if layer > 0:
                gx = self.step.project(apply_dropout(finals[-1], self.dropout, self.training), w)
            h = gx.new_zeros(gx.shape[0], self.hidden_size) if hx is None else hx[layer]
            finals.append(self.step(gx, (h,))[0])
        return finals[-1], torch.stack(finals)

    def gates(self, input: Tensor) -> list[list[dict[str, Tensor]]]:
        """The gates and candidate of every layer and direction for input (T, B, I) (or batch
        first), for a state viewer: ``gates[layer][direction][name]`` (T, B, H), names as
        ``step.gate_names``, at input positions (each step's gates depend on its x_t alone, so
        the reverse direction's need no reversing). Layers above the first see the outputs of
        a zero initial state, without dropout."""
        x = input.transpose(0, 1) if self.batch_first else input  # (T, B, I)
        found = []
        for directions in self.cell_weights():
            found.append([self.step.gates(self.step.project(x, w)) for w in directions])
            zeros = x.new_zeros(len(directions), x.shape[1], self.hidden_size)
            x = run_stack(self.step, [directions], x, (zeros,), None, 0.0, False, scan_direction)[0]
        return found

    def extra_repr(self) -> str:
        extra = f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}"
        extra += f", bias={self.bias}, batch_first={self.batch_first}, dropout={self.dropout}"
        extra += f", bidirectional={self.bidirectional}"
        return extra + f", parallel={self.parallel}, chunk={self.chunk}"


class MinGRU(MinRecurrentLayer):
    """minGRU layer (``MinGRUStep``), torch.nn.GRU's interface:
    ``h_t = (1 - z_t) * h_{t-1} + z_t * h~_t``; weight_ih_l{k} (2H, I_k), rows z, h~."""

    step = MinGRUStep()


class MinLSTM(MinRecurrentLayer):
    """minLSTM layer (``MinLSTMStep``), torch.nn.GRU's interface (one state, no c):
    ``h_t = f'_t * h_{t-1} + i'_t * h~_t``; weight_ih_l{k} (3H, I_k), rows f, i, h~."""

    step = MinLSTMStep()
