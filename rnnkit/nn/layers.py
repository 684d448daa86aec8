"""Stacked, bidirectional RNN / LSTM / GRU layers: torch.nn's, plus the variants torch lacks.

``rnnkit.nn.LSTM`` *is a* ``torch.nn.LSTM`` (and likewise RNN, GRU): same constructor, parameter
names (``weight_ih_l0``, ``weight_hh_l0``, ``bias_ih_l0``, ``bias_hh_l0``, ``..._reverse``),
shapes, inputs (padded tensor or ``PackedSequence``, batched or not, ``batch_first``) and return
values, so ``load_state_dict`` of a torch module's weights works and code written for torch runs
unchanged. On top:

- variant keywords: ``peephole=`` and ``forget_bias=`` (LSTM), ``reset="after" | "before"`` and
  ``gate="sigmoid" | "hard_sigmoid"`` (GRU); ``nonlinearity=`` (RNN) as in torch;
- ``forward(input, hx=None, lengths=None)``: a padded tensor with per-sequence lengths (B,);
- two paths, one result. ``fused=None`` (default) runs torch's fused kernel (cuDNN on GPU, the
  native/oneDNN kernel on CPU) whenever the variant is exactly what it computes, and the explicit
  cells of ``cells.py``, run over time by ``recurrence.py``, otherwise; ``fused=False`` forces the
  explicit cells (to read, teach and test), ``fused=True`` insists on the kernel. The attribute
  ``layer.fused`` says which path the layer takes. Two exceptions: a fused LSTM under bf16 on a
  CPU without native bf16 runs the explicit cells (oneDNN has no kernel there); and with
  ``fused=None``, one decoding step on the CPU (T = 1, no gradient) of an LSTM or GRU runs the
  explicit cells, as oneDNN's per-call cost dominates there (``single_step_explicit``);
- two ways to differentiate the explicit path: ``bptt="handwritten"`` (default) runs each layer
  and direction as one ``torch.autograd.Function`` with the BPTT written out (``bptt.py``,
  close to the fused kernel's speed), ``bptt="autograd"`` lets autograd differentiate the
  cells step by step (the readable reference, and the oracle of the tests). An LSTM with
  ``proj_size`` always takes autograd. ``layer.bptt`` says which.

Shapes: input (T, B, I), or (B, T, I) with batch_first, or unbatched (T, I); h_0 and h_n
(L*D, B, H_out) with D = 2 if bidirectional else 1 and H_out = proj_size or H; c (L*D, B, H).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from rnnkit.nn import bptt as handwritten
from rnnkit.nn.cells import CellWeights, GRUStep, LSTMStep, RNNStep, State, Step, init_forget_bias
from rnnkit.nn.dropout import dropout as apply_dropout
from rnnkit.nn.recurrence import run_direction, run_stack

Hidden = Tensor | tuple[Tensor, Tensor]


def choose_fused(name: str, step: Step, fused: bool | None) -> bool:
    """The path a layer takes: the fused kernel where it computes exactly this variant."""
    if fused is None:
        return step.fusable
    if fused and not step.fusable:
        raise ValueError(f"{name}: no fused kernel computes {step}; use fused=None or fused=False")
    return bool(fused)


BPTT_MODES = ("handwritten", "autograd")  # how the explicit path is differentiated


def choose_bptt(name: str, bptt: str, proj_size: int = 0) -> str:
    """The explicit path's BPTT: hand-written, except for what only autograd covers."""
    if bptt not in BPTT_MODES:
        raise ValueError(f"{name}: bptt must be one of {', '.join(BPTT_MODES)}, got {bptt!r}")
    return "autograd" if proj_size else bptt


def single_step_explicit(layer: RecurrentLayer, x: Tensor) -> bool:
    """Whether this call is one CPU decoding step that the explicit cells do faster: an LSTM or
    GRU with ``fused=None``, one time step, no gradient. A 2x650 LSTM step, batch 1, took
    6.8 ms in oneDNN's kernel and 0.55 ms in the explicit cells (benchmarks/RESULTS.md)."""
    steps = x.shape[1] if layer.batch_first and x.dim() == 3 else x.shape[0]
    return (
        layer.fused_auto
        and steps == 1
        and x.device.type == "cpu"
        and not torch.is_grad_enabled()
        and isinstance(layer.step, (LSTMStep, GRUStep))
    )


def cpu_has_bf16() -> bool:
    """Whether this CPU's oneDNN has native bf16 (AVX-512 BF16 or AMX): without it every bf16
    op is emulated, and about 15x slower than fp32."""
    return torch.ops.mkldnn._is_mkldnn_bf16_supported()


def bf16_lstm_kernel_missing(x: Tensor) -> bool:
    """True where torch's fused LSTM would be asked for bf16 on a CPU whose oneDNN has no bf16
    LSTM primitive (CPUs without native bf16: "could not create a primitive descriptor for the
    LSTM forward propagation primitive"). The explicit path computes the same model there."""
    bf16 = x.dtype == torch.bfloat16 or (
        torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    )
    return x.device.type == "cpu" and bf16 and not cpu_has_bf16()


def in_autocast_dtype(
    input: Tensor | PackedSequence, hx: Hidden | None
) -> tuple[Tensor | PackedSequence, Hidden | None]:
    """A fused CPU layer's float32 input and state in autocast's dtype, under autocast.

    Autocast runs torch's CPU LSTM in bf16 (``mkldnn_rnn_layer`` is on its list), but not its
    GRU: the GRU's products cast to bf16, yet its update h' = n + z * (h - n) takes the float32
    state and gives float32 again, so the whole recurrence stays in float32 and every step casts
    the state for its product. Cast once here and the recurrence runs in bf16, as the LSTM's
    does. A Multi30k training step (bidirectional GRU encoder) ran 1,000 fewer ops, and bf16
    trained 1.50x as fast as fp32 before, 1.60x after (the means of three runs of
    ``benchmarks/seq2seq.py --alternate 12``, benchmarks/RESULTS.md)."""
    data = input.data if isinstance(input, PackedSequence) else input
    if (
        data.device.type != "cpu"
        or not torch.is_autocast_enabled("cpu")
        or data.dtype != torch.float32
    ):
        return input, hx
    dtype = torch.get_autocast_dtype("cpu")
    if isinstance(hx, tuple):
        hx = tuple(h.to(dtype) for h in hx)
    elif hx is not None:
        hx = hx.to(dtype)
    return input.to(dtype), hx


class RecurrentLayer:
    """The forward pass shared by ``RNN``, ``LSTM`` and ``GRU`` (mixed in before the torch
    class)."""

    step: Step
    fused: bool
    fused_auto: bool  # fused=None: the path is rnnkit's choice
    bptt: str

    def cell_weights(self) -> list[list[CellWeights]]:
        """This layer's weights as ``weights[layer][direction]`` for ``recurrence.run_stack``."""
        directions = 2 if self.bidirectional else 1
        weights = []
        for layer in range(self.num_layers):
            row = []
            for direction in range(directions):
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                row.append(
                    CellWeights(
                        *(
                            getattr(self, name + suffix, None)
                            for name in (
                                "weight_ih",
                                "weight_hh",
                                "bias_ih",
                                "bias_hh",
                                "weight_ch",
                                "weight_hr",
                            )
                        )
                    )
                )
            weights.append(row)
        return weights

    def forward(
        self,
        input: Tensor | PackedSequence,
        hx: Hidden | None = None,
        lengths: Tensor | None = None,
    ) -> tuple[Tensor | PackedSequence, Hidden]:
        packed = isinstance(input, PackedSequence)
        fused = self.fused and not (
            isinstance(self, torch.nn.LSTM)
            and bf16_lstm_kernel_missing(input.data if packed else input)
        )
        fused = fused and (packed or not single_step_explicit(self, input))
        if fused:
            input, hx = in_autocast_dtype(input, hx)
        if packed:
            if lengths is not None:
                raise ValueError(
                    "lengths= goes with a padded tensor; a PackedSequence carries its own"
                )
            return super().forward(input, hx) if fused else self._explicit_packed(input, hx)
        if lengths is not None:
            return self._padded_with_lengths(input, hx, lengths, fused)
        if fused:
            return super().forward(input, hx)
        batched = input.dim() == 3
        x = input if batched else input.unsqueeze(1)  # unbatched (T, I) -> (T, 1, I)
        if batched and self.batch_first:
            x = x.transpose(0, 1)
        out, state = self._explicit(x, self._state_tuple(hx, batched), None)
        if batched and self.batch_first:
            out = out.transpose(0, 1)
        if not batched:
            out, state = out.squeeze(1), tuple(s.squeeze(1) for s in state)
        return out, self._hidden(state)

    def _padded_with_lengths(
        self, input: Tensor, hx: Hidden | None, lengths: Tensor, fused: bool
    ) -> tuple[Tensor, Hidden]:
        if input.dim() != 3:
            raise ValueError(f"lengths= needs a batched 3-D input, got shape {tuple(input.shape)}")
        steps, batch = (input.shape[1], input.shape[0]) if self.batch_first else input.shape[:2]
        lengths = torch.as_tensor(lengths)
        if lengths.shape != (batch,) or lengths.min() < 1 or lengths.max() > steps:
            raise ValueError(
                f"lengths must be {batch} integers in 1..{steps}, got {lengths.tolist()}"
            )
        if fused:
            packed = pack_padded_sequence(
                input, lengths.cpu(), self.batch_first, enforce_sorted=False
            )
            out, hidden = super().forward(packed, hx)
            return pad_packed_sequence(out, self.batch_first, total_length=steps)[0], hidden
        x = input.transpose(0, 1) if self.batch_first else input
        out, state = self._explicit(x, self._state_tuple(hx, True), lengths.to(input.device))
        return (out.transpose(0, 1) if self.batch_first else out), self._hidden(state)

    def _explicit_packed(
        self, input: PackedSequence, hx: Hidden | None
    ) -> tuple[PackedSequence, Hidden]:
        # Work on the padded form in the caller's batch order (the order hx and h_n use), then
        # lay the output out again exactly as the input was packed.
        x, lengths = pad_packed_sequence(input)  # (T, B, I), lengths (B,) on the CPU
        out, state = self._explicit(x, self._state_tuple(hx, True), lengths.to(x.device))
        order = input.sorted_indices
        if order is not None:
            out, lengths = out.index_select(1, order), lengths[order.cpu()]
        data = pack_padded_sequence(out, lengths).data
        return PackedSequence(
            data, input.batch_sizes, input.sorted_indices, input.unsorted_indices
        ), self._hidden(state)

    def _explicit(
        self, x: Tensor, hx: State | None, lengths: Tensor | None
    ) -> tuple[Tensor, State]:
        """x (T, B, I) time-major -> outputs (T, B, D*H_out), final state tuple."""
        if hx is None:
            layers = self.num_layers * (2 if self.bidirectional else 1)
            sizes = (self.proj_size or self.hidden_size, self.hidden_size)[: self.step.num_states]
            hx = tuple(x.new_zeros(layers, x.shape[1], size) for size in sizes)
        # Traced (rnnkit export), the layer runs the autograd path, which the tracer records op
        # by op; it cannot see into a nested autograd.Function. Without gradients (decoding)
        # there is no backward to hand-write, nor activations to keep for it: the plain loop.
        handwritten_bptt = (
            self.bptt == "handwritten" and not torch.jit.is_tracing() and torch.is_grad_enabled()
        )
        direction = handwritten.run_direction if handwritten_bptt else run_direction
        return run_stack(
            self.step, self.cell_weights(), x, hx, lengths, self.dropout, self.training, direction
        )

    def step_projected(self, gx: Tensor, hx: Hidden) -> tuple[Tensor, Hidden]:
        """One time step of a unidirectional stack whose first layer's input projection is
        already computed: gx (B, kH) = ``step.project(x_t)`` of layer 0, hx (L, B, H) [, c]
        -> output (B, H_out), state (L, B, H) [, c]. The explicit cells, autograd over them;
        layers above the first project their input themselves, with dropout between layers.

        A decoder uses it to project the part of x_t that teacher forcing knows in advance
        for all steps in one matmul (``models.seq2seq.Decoder.forward_stepwise``)."""
        if self.bidirectional:
            raise ValueError("step_projected runs one direction; this layer is bidirectional")
        states = self._state_tuple(hx, True)
        finals: list[State] = []
        for layer, (w,) in enumerate(self.cell_weights()):
            if layer > 0:
                gx = self.step.project(apply_dropout(finals[-1][0], self.dropout, self.training), w)
            finals.append(self.step(gx, tuple(s[layer] for s in states), w))
        return finals[-1][0], self._hidden(tuple(torch.stack(s) for s in zip(*finals, strict=True)))

    def _state_tuple(self, hx: Hidden | None, batched: bool) -> State | None:
        if hx is None:
            return None
        state = tuple(hx) if isinstance(hx, (tuple, list)) else (hx,)
        return state if batched else tuple(s.unsqueeze(1) for s in state)

    def _hidden(self, state: State) -> Hidden:
        return state if self.step.num_states == 2 else state[0]

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, {self.step}, fused={self.fused}, bptt={self.bptt}"


class RNN(RecurrentLayer, torch.nn.RNN):
    """Elman RNN layer (``cells.RNNStep``): ``h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)``.
    Every variant is one torch's kernel computes; ``fused=False`` runs the explicit cell."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device=None,
        dtype=None,
        *,
        fused: bool | None = None,
        bptt: str = "handwritten",
    ) -> None:
        self.step = RNNStep(nonlinearity)
        super().__init__(
            input_size,
            hidden_size,
            num_layers=num_layers,
            nonlinearity=nonlinearity,
            bias=bias,
            batch_first=batch_first,
            dropout=dropout,
            bidirectional=bidirectional,
            device=device,
            dtype=dtype,
        )
        self.fused, self.fused_auto = choose_fused("RNN", self.step, fused), fused is None
        self.bptt = choose_bptt("RNN", bptt)


class LSTM(RecurrentLayer, torch.nn.LSTM):
    """LSTM layer (``cells.LSTMStep``), optionally with peephole weights ``weight_ch_l{k}`` (3H,)
    (i, f see c_{t-1}, o sees c_t; explicit path only) and a forget-gate bias init."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device=None,
        dtype=None,
        *,
        peephole: bool = False,
        forget_bias: float | None = None,
        fused: bool | None = None,
        bptt: str = "handwritten",
    ) -> None:
        self.step = LSTMStep(peephole)
        self.forget_bias = forget_bias
        super().__init__(
            input_size,
            hidden_size,
            num_layers=num_layers,
            bias=bias,
            batch_first=batch_first,
            dropout=dropout,
            bidirectional=bidirectional,
            proj_size=proj_size,
            device=device,
            dtype=dtype,
        )
        if peephole:
            for suffix in [
                name[len("weight_ih") :]
                for name in self._flat_weights_names
                if name.startswith("weight_ih")
            ]:
                self.register_parameter(
                    "weight_ch" + suffix,
                    torch.nn.Parameter(torch.empty(3 * hidden_size, device=device, dtype=dtype)),
                )
            self.reset_parameters()
        self.fused, self.fused_auto = choose_fused("LSTM", self.step, fused), fused is None
        self.bptt = choose_bptt("LSTM", bptt, proj_size)

    def reset_parameters(self) -> None:
        super().reset_parameters()
        self.init_forget_bias()

    def init_forget_bias(self) -> None:
        """``cells.init_forget_bias`` in every layer and direction (nothing when it is None)."""
        for row in self.cell_weights():
            for w in row:
                init_forget_bias(w.bias_ih, w.bias_hh, getattr(self, "forget_bias", None))


class GRU(RecurrentLayer, torch.nn.GRU):
    """GRU layer (``cells.GRUStep``) with ``reset="after" | "before"`` and
    ``gate="sigmoid" | "hard_sigmoid"``; the fused kernel computes reset="after" with sigmoid."""

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
        reset: str = "after",
        gate: str = "sigmoid",
        fused: bool | None = None,
        bptt: str = "handwritten",
    ) -> None:
        self.step = GRUStep(reset, gate)
        super().__init__(
            input_size,
            hidden_size,
            num_layers=num_layers,
            bias=bias,
            batch_first=batch_first,
            dropout=dropout,
            bidirectional=bidirectional,
            device=device,
            dtype=dtype,
        )
        self.fused, self.fused_auto = choose_fused("GRU", self.step, fused), fused is None
        self.bptt = choose_bptt("GRU", bptt)
