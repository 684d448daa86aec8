"""A recurrent layer (``rnnkit.nn.RNN | LSTM | GRU``, or torch's) as ONNX's native ``RNN``,
``LSTM`` and ``GRU`` ops: one op per stacked layer, both directions in it, ``sequence_lens`` for
ragged batches. Every variant of ``rnnkit.nn`` has its exact ONNX form:

=====================  =========================================================
rnnkit                 ONNX
=====================  =========================================================
RNN tanh / relu        ``RNN``, ``activations=[Tanh]`` / ``[Relu]``
LSTM                   ``LSTM``, gates reordered (i, f, g, o) -> (i, o, f, c)
LSTM, peephole         ``LSTM`` input ``P`` = (w_ci, w_co, w_cf): i, f see c_{t-1}, o sees c_t
GRU, reset after       ``GRU``, ``linear_before_reset=1``, gates (r, z, n) -> (z, r, h)
GRU, reset before      ``GRU``, ``linear_before_reset=0`` (Cho et al. 2014)
GRU, hard-sigmoid      ``activations=[HardSigmoid, Tanh]``, alpha 0.2, beta 0.5
=====================  =========================================================

Both forms of the GRU update agree: ONNX's ``h_t = (1 - z) * h~ + z * h_{t-1}`` is
``cells.GRUStep``'s. An LSTM projection (``proj_size``) has no ONNX form and is refused.

``recurrent_nodes(graph, layer, ...)`` adds the ops that compute the layer on a graph value
x (T, B, I) with lengths (B,) int32 and an initial state (L*D, B, H), giving y (T, B, D*H)
(zeros past each length, as a packed sequence gives) and the final states (L*D, B, H), as
torch's layer returns them. ``graph`` is a ``Graph`` (``onnx.helper``: ``layer_model`` writes a
layer alone) or a ``SymbolicGraph`` (inside ``torch.onnx.export``): one code path for both.
``native_recurrent(model)`` makes every recurrent layer of a model export as these ops, so
that the rest of the model (embeddings, attention, output layers) is traced by torch.onnx.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
import torch
from onnx import NodeProto, TensorProto, helper, numpy_helper
from torch import Tensor

from rnnkit.errors import UserError
from rnnkit.nn.layers import RecurrentLayer
from rnnkit.nn.minrnn import MinGRU, MinLSTM

OPSET = 17  # the ONNX opset of every graph rnnkit writes
# torch's gate order -> ONNX's, as chunk indices of the stacked weights.
GATE_ORDER = {"RNN": [0], "LSTM": [0, 3, 1, 2], "GRU": [1, 0, 2]}


@dataclass
class Graph:
    """Nodes and initializers being gathered into one ONNX graph; ``name`` makes fresh names."""

    nodes: list[NodeProto] = field(default_factory=list)
    initializers: list[TensorProto] = field(default_factory=list)
    count: int = 0

    def name(self, hint: str) -> str:
        self.count += 1
        return f"{hint}_{self.count}"

    def constant(self, hint: str, value: np.ndarray) -> str:
        name = self.name(hint)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(self, op_type: str, inputs: list[str], outputs: int = 1, **attrs) -> list[str]:
        names = [self.name(op_type.lower()) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, names, **attrs))
        return names


class SymbolicGraph:
    """``Graph``'s two calls on a ``torch.onnx`` symbolic context ``g``."""

    def __init__(self, g: Any) -> None:
        self.g = g

    def constant(self, hint: str, value: np.ndarray) -> Any:
        return self.g.op("Constant", value_t=torch.from_numpy(np.ascontiguousarray(value)))

    def op(self, op_type: str, inputs: list[Any], outputs: int = 1, **attrs: Any) -> list[Any]:
        suffix = {int: "_i", float: "_f", str: "_s"}
        named = {}
        for key, value in attrs.items():
            first = value[0] if isinstance(value, list) else value
            named[key + suffix[type(first)]] = value
        result = self.g.op(op_type, *inputs, outputs=outputs, **named)
        return list(result) if outputs > 1 else [result]


def kind_of(layer: torch.nn.RNNBase) -> str:
    return {"RNN_TANH": "RNN", "RNN_RELU": "RNN"}.get(layer.mode, layer.mode)


def activations(layer: torch.nn.RNNBase) -> tuple[list[str], list[float], list[float]]:
    """The op's ``activations`` with their ``activation_alpha`` and ``activation_beta``, one
    direction's worth (alpha and beta are given for every activation; only HardSigmoid's
    count)."""
    kind, step = kind_of(layer), getattr(layer, "step", None)
    if kind == "RNN":
        names = ["Relu" if layer.mode == "RNN_RELU" else "Tanh"]
    elif kind == "LSTM":
        names = ["Sigmoid", "Tanh", "Tanh"]
    else:
        hard = step is not None and step.gate == "hard_sigmoid"
        names = ["HardSigmoid" if hard else "Sigmoid", "Tanh"]
    return names, [0.2] * len(names), [0.5] * len(names)


def direction_weights(
    layer: torch.nn.RNNBase, index: int, suffix: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """W (G*H, I), R (G*H, H), B (2*G*H,), P (3H,) or None of one layer and direction, in
    ONNX's gate order."""
    kind = kind_of(layer)
    order = GATE_ORDER[kind]
    hidden = layer.hidden_size

    def get(name: str) -> np.ndarray | None:
        value = getattr(layer, f"{name}_l{index}{suffix}", None)
        return None if value is None else value.detach().float().cpu().numpy()

    def reorder(w: np.ndarray) -> np.ndarray:
        return np.concatenate([w[g * hidden : (g + 1) * hidden] for g in order])

    w, r = reorder(get("weight_ih")), reorder(get("weight_hh"))
    zeros = np.zeros(len(order) * hidden, np.float32)
    b_ih, b_hh = get("bias_ih"), get("bias_hh")
    biases = np.concatenate([reorder(b_ih if b_ih is not None else zeros),
                             reorder(b_hh if b_hh is not None else zeros)])  # fmt: skip
    peephole = get("weight_ch")
    if peephole is not None:  # (w_ci, w_cf, w_co) -> ONNX's (i, o, f)
        w_ci, w_cf, w_co = np.split(peephole, 3)
        peephole = np.concatenate([w_ci, w_co, w_cf])
    return w, r, biases, peephole


def check_exportable(layer: torch.nn.RNNBase) -> None:
    if getattr(layer, "proj_size", 0):
        raise UserError("export: an LSTM with proj_size has no ONNX form (no projection input)")


def recurrent_nodes(
    graph: Graph, layer: torch.nn.RNNBase, x: str, lengths: str, h0: str, c0: str | None = None
) -> tuple[str, str, str | None]:
    """Add ``layer`` on x (T, B, I), lengths (B,) int32, h0 (and c0 for an LSTM), each
    (L*D, B, H), to ``graph``: -> y (T, B, D*H), h_n (L*D, B, H), c_n or None."""
    check_exportable(layer)
    if isinstance(graph, Graph) and layer.batch_first:
        raise UserError("export: layer_model takes a time-major layer (batch_first=False)")
    kind, directions, hidden = kind_of(layer), 1 + layer.bidirectional, layer.hidden_size
    names, alphas, betas = activations(layer)
    attrs = dict(
        hidden_size=hidden,
        direction="bidirectional" if directions == 2 else "forward",
        activations=names * directions,
        activation_alpha=alphas * directions,
        activation_beta=betas * directions,
    )
    if kind == "GRU":
        reset = getattr(getattr(layer, "step", None), "reset", "after")
        attrs["linear_before_reset"] = int(reset == "after")
    hs, cs = [], []
    for index in range(layer.num_layers):
        per_direction = [direction_weights(layer, index, s) for s in ["", "_reverse"][:directions]]
        w, r, b = (graph.constant(n, np.stack([d[i] for d in per_direction]))
                   for i, n in enumerate(["W", "R", "B"]))  # fmt: skip
        rows = [graph.constant("rows", np.array([i * directions])) for i in (index, index + 1)]
        axis0 = graph.constant("axis0", np.array([0]))
        (h_init,) = graph.op("Slice", [h0, *rows, axis0])  # this layer's (D, B, H)
        inputs = [x, w, r, b, lengths, h_init]
        if kind == "LSTM":
            (c_init,) = graph.op("Slice", [c0, *rows, axis0])
            peephole = per_direction[0][3] is not None
            inputs += [c_init] + ([graph.constant("P", np.stack([d[3] for d in per_direction]))]
                                  if peephole else [])  # fmt: skip
        outputs = graph.op(kind, inputs, 3 if kind == "LSTM" else 2, **attrs)
        y, h_n = outputs[0], outputs[1]  # y (T, D, B, H)
        hs.append(h_n)
        if kind == "LSTM":
            cs.append(outputs[2])
        (y,) = graph.op("Transpose", [y], perm=[0, 2, 1, 3])  # (T, B, D, H)
        shape = graph.constant("shape", np.array([0, 0, -1]))
        (x,) = graph.op("Reshape", [y, shape])  # (T, B, D*H), the next layer's input
    (h_n,) = graph.op("Concat", hs, axis=0) if len(hs) > 1 else hs
    c_n = None
    if cs:
        (c_n,) = graph.op("Concat", cs, axis=0) if len(cs) > 1 else cs
    return x, h_n, c_n


def layer_model(layer: torch.nn.RNNBase) -> onnx.ModelProto:
    """The layer alone as an ONNX model: inputs x (T, B, I) float32, lengths (B,) int32,
    h0 (L*D, B, H) [and c0]; outputs y (T, B, D*H), h_n [and c_n]. T and B are free."""
    lstm = kind_of(layer) == "LSTM"
    states = layer.num_layers * (1 + layer.bidirectional)
    graph = Graph()
    y, h_n, c_n = recurrent_nodes(graph, layer, "x", "lengths", "h0", "c0" if lstm else None)
    for out, value in {"y": y, "h_n": h_n, "c_n": c_n}.items():  # the outputs, named
        if value is not None:
            graph.nodes.append(helper.make_node("Identity", [value], [out]))

    def tensor(name: str, elem: int, shape: list) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(name, elem, shape)

    float_, hidden = TensorProto.FLOAT, layer.hidden_size
    inputs = [tensor("x", float_, ["T", "B", layer.input_size]),
              tensor("lengths", TensorProto.INT32, ["B"]),
              tensor("h0", float_, [states, "B", hidden])]  # fmt: skip
    outputs = [tensor("y", float_, ["T", "B", (1 + layer.bidirectional) * hidden]),
               tensor("h_n", float_, [states, "B", hidden])]  # fmt: skip
    if lstm:
        inputs.append(tensor("c0", float_, [states, "B", hidden]))
        outputs.append(tensor("c_n", float_, [states, "B", hidden]))
    model = helper.make_model(
        helper.make_graph(graph.nodes, "recurrent", inputs, outputs, graph.initializers),
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="rnnkit",
    )
    onnx.checker.check_model(model, full_check=True)
    return model


LAYERS: dict[int, torch.nn.RNNBase] = {}  # the layers being exported, by id (see NativeOp)


class NativeOp(torch.autograd.Function):
    """A recurrent layer on x (T, B, I), lengths (B,) int32, h0, c0 (L*D, B, H), time-major:
    ``forward`` runs the layer (for the tracer's shapes), ``symbolic`` writes the native ops."""

    @staticmethod
    def forward(ctx, x: Tensor, lengths: Tensor, h0: Tensor, c0: Tensor, key: int):
        layer = LAYERS[key]
        lstm = kind_of(layer) == "LSTM"
        inputs = x.transpose(0, 1) if layer.batch_first else x
        hx = (h0, c0) if lstm else h0
        forward = type(layer).forward  # the class's, not the export's
        if isinstance(layer, RecurrentLayer):
            y, hidden = forward(layer, inputs, hx, lengths=lengths.long())
        else:  # torch's own layer: the shapes are all the tracer needs
            y, hidden = forward(layer, inputs, hx)
        y = y.transpose(0, 1) if layer.batch_first else y
        h_n, c_n = hidden if lstm else (hidden, hidden)  # c_n: unused without an LSTM
        return y.contiguous(), h_n.clone(), c_n.clone()  # new tensors, not views of others

    @staticmethod
    def symbolic(g, x, lengths, h0, c0, key: int):
        layer = LAYERS[key]
        y, h_n, c_n = recurrent_nodes(
            SymbolicGraph(g), layer, x, lengths, h0, c0 if kind_of(layer) == "LSTM" else None
        )
        return y, h_n, c_n if c_n is not None else h_n


def native_forward(layer: torch.nn.RNNBase):
    """A forward for ``layer`` (same arguments and results) that exports as native ops; no
    lengths means every sequence is whole, no state means zeros."""

    def forward(input: Tensor, hx: Any = None, lengths: Tensor | None = None):
        x = input.transpose(0, 1) if layer.batch_first else input  # (T, B, I)
        steps, batch = x.shape[0], x.shape[1]
        states = layer.num_layers * (1 + layer.bidirectional)
        lstm = kind_of(layer) == "LSTM"
        if hx is None:
            zeros = x.new_zeros(states, batch, layer.hidden_size)
            hx = (zeros, zeros) if lstm else zeros
        h0, c0 = hx if lstm else (hx, hx.new_zeros(1))  # two inputs, never one tensor twice
        if lengths is None:
            lengths = torch.full((batch,), steps, dtype=torch.int32, device=x.device)
        y, h_n, c_n = NativeOp.apply(x, lengths.int(), h0, c0, id(layer))
        y = y.transpose(0, 1) if layer.batch_first else y
        return y, ((h_n, c_n) if lstm else h_n)

    return forward


@contextlib.contextmanager
def native_recurrent(model: torch.nn.Module) -> Iterator[None]:
    """Within it, every recurrent layer of ``model`` exports as ONNX's native ops. A
    parallel-scan layer (minGRU, minLSTM) has no native op and no ONNX form yet (its scan is a
    log-cumulative-sum-exp, which opset 17 lacks): a one-line error."""
    if any(isinstance(m, (MinGRU, MinLSTM)) for m in model.modules()):
        raise UserError("export: minGRU and minLSTM runs have no ONNX export yet")
    layers = [m for m in model.modules() if isinstance(m, torch.nn.RNNBase)]
    for layer in layers:
        check_exportable(layer)
        LAYERS[id(layer)] = layer
        layer.forward = native_forward(layer)
    try:
        yield
    finally:
        for layer in layers:
            del layer.forward  # back to the class's
            LAYERS.pop(id(layer), None)
