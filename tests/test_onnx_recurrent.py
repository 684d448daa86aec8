"""The recurrent layers as ONNX's native RNN / LSTM / GRU ops (``rnnkit.export.onnx_recurrent``):
for every cell variant, uni- and bidirectional, one and two layers, onnxruntime gives what the
PyTorch layer gives, |d| <= 1e-5 + 1e-5 |x|, on shapes other than any fixed one (B in 1, 3, 7;
T in 1, 9, 23) with ragged lengths in each batch: the output at every step and the final
states. Each model passes ``onnx.checker`` (full check) as it is built."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from rnnkit import nn
from rnnkit.errors import UserError
from rnnkit.export.onnx_recurrent import layer_model

VARIANTS = {
    "rnn-tanh": lambda **k: nn.RNN(5, 6, **k),
    "rnn-relu": lambda **k: nn.RNN(5, 6, nonlinearity="relu", **k),
    "lstm": lambda **k: nn.LSTM(5, 6, **k),
    "lstm-peephole": lambda **k: nn.LSTM(5, 6, peephole=True, **k),
    "gru": lambda **k: nn.GRU(5, 6, **k),
    "gru-reset-before": lambda **k: nn.GRU(5, 6, reset="before", **k),
    "gru-hard-sigmoid": lambda **k: nn.GRU(5, 6, gate="hard_sigmoid", **k),
    "gru-before-hard": lambda **k: nn.GRU(5, 6, reset="before", gate="hard_sigmoid", **k),
    "torch.nn.LSTM": lambda **k: torch.nn.LSTM(5, 6, **k),
    "torch.nn.GRU-no-bias": lambda **k: torch.nn.GRU(5, 6, bias=False, **k),
}


def largest_error(layer: torch.nn.RNNBase) -> float:
    """max |onnx - torch| / (1e-5 + 1e-5 |torch|) over every output, shape and step."""
    layer.eval()
    session = ort.InferenceSession(
        layer_model(layer).SerializeToString(), providers=["CPUExecutionProvider"]
    )
    lstm = isinstance(layer, torch.nn.LSTM)
    states = layer.num_layers * (1 + layer.bidirectional)
    generator, worst = torch.Generator().manual_seed(0), 0.0
    for batch in (1, 3, 7):
        for steps in (1, 9, 23):
            x = torch.randn(steps, batch, 5, generator=generator)
            lengths = torch.randint(1, steps + 1, (batch,), generator=generator)
            lengths[0] = steps  # ragged, and the longest sets T
            h0, c0 = torch.randn(2, states, batch, 6, generator=generator)
            with torch.no_grad():
                if isinstance(layer, nn.RNN | nn.LSTM | nn.GRU):
                    y, h_n = layer(x, (h0, c0) if lstm else h0, lengths=lengths)
                else:  # torch's own layer: a packed sequence, padded back with zeros
                    packed = torch.nn.utils.rnn.pack_padded_sequence(
                        x, lengths, enforce_sorted=False
                    )
                    y, h_n = layer(packed, (h0, c0) if lstm else h0)
                    y = torch.nn.utils.rnn.pad_packed_sequence(y, total_length=steps)[0]
            feed = {"x": x.numpy(), "lengths": lengths.int().numpy(), "h0": h0.numpy()}
            expected = [y, *(h_n if lstm else (h_n,))]
            if lstm:
                feed["c0"] = c0.numpy()
            for got, want in zip(session.run(None, feed), expected, strict=True):
                want = want.numpy()
                assert got.shape == want.shape
                worst = max(worst, float((np.abs(got - want) / (1e-5 + 1e-5 * np.abs(want))).max()))
    return worst


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_onnxruntime_gives_what_the_layer_gives(variant, bidirectional, layers):
    torch.manual_seed(1)
    layer = VARIANTS[variant](num_layers=layers, bidirectional=bidirectional)
    assert largest_error(layer) <= 1.0


def test_the_native_ops_with_the_variants_attributes():
    ops = {
        n.op_type: n
        for n in layer_model(nn.GRU(5, 6, reset="before", gate="hard_sigmoid")).graph.node
    }
    attributes = {a.name: onnx.helper.get_attribute_value(a) for a in ops["GRU"].attribute}
    assert attributes["linear_before_reset"] == 0
    assert attributes["activations"] == [b"HardSigmoid", b"Tanh"]
    assert attributes["activation_alpha"][0] == pytest.approx(0.2)
    peephole = layer_model(nn.LSTM(5, 6, peephole=True)).graph.node
    assert len(next(n for n in peephole if n.op_type == "LSTM").input) == 8  # with P


def test_a_projection_is_refused_in_one_line():
    with pytest.raises(UserError, match="proj_size has no ONNX form"):
        layer_model(nn.LSTM(5, 6, proj_size=3))
