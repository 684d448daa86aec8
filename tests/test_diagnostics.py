"""Gradient flow: ||dL_T/dh_t|| against backpropagation written out by hand (Elman RNN) and
against torch's own cells stepped by hand (LSTM, GRU, two layers); the recorded unroll computes
what the layer computes; spectra against known matrices; ``rnnkit diagnose`` end to end."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from rnnkit.diagnostics import gradient_flow, recording, recurrent_spectrum
from rnnkit.models.recurrent import init_recurrent
from rnnkit.nn import GRU, LSTM, RNN

ROOT = Path(__file__).resolve().parent.parent


class Readout(nn.Module):
    """A layer and L_T = sum_b v . h_T(b): dL_T/dh_T = v for every sequence."""

    def __init__(self, rnn: nn.Module) -> None:
        super().__init__()
        self.rnn = rnn
        self.v = torch.linspace(-1.0, 1.0, rnn.hidden_size * (2 if rnn.bidirectional else 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.rnn(x)
        return h[:, -1]


def readout_loss(model: Readout, batch: tuple[torch.Tensor]) -> torch.Tensor:
    return (model(batch[0]) @ model.v.to(batch[0].dtype)).sum()


def norms(rows, layer=0, direction=0):
    return torch.tensor(
        [r["grad_norm"] for r in rows if r["layer"] == layer and r["direction"] == direction],
        dtype=torch.float64,
    )


def test_elman_rnn_matches_backpropagation_through_time_by_hand():
    """delta_T = v;  delta_{t-1} = W_hh^T (delta_t * (1 - h_t^2)),
    with h_t = tanh(W_ih x_t + W_hh h_{t-1} + b)."""
    torch.manual_seed(0)
    rnn = RNN(3, 5, batch_first=True)
    init_recurrent(rnn, "orthogonal", 1.3)
    x = torch.randn(4, 12, 3)
    model = Readout(rnn)
    rows = gradient_flow(model, (x,), readout_loss)

    w_ih, w_hh = rnn.weight_ih_l0.double(), rnn.weight_hh_l0.double()
    b = rnn.bias_ih_l0.double() + rnn.bias_hh_l0.double()
    h, hs = torch.zeros(4, 5, dtype=torch.float64), []
    for t in range(12):
        h = torch.tanh(x[:, t].double() @ w_ih.T + h @ w_hh.T + b)
        hs.append(h)
    delta = model.v.double().expand(4, 5)
    expected = [None] * 12
    for t in range(11, -1, -1):
        expected[t] = delta.norm(dim=-1).mean()
        delta = (delta * (1 - hs[t] ** 2)) @ w_hh
    torch.testing.assert_close(norms(rows), torch.stack(expected), rtol=1e-9, atol=0)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_gated_cells_and_two_layers_match_torch_cells_stepped_by_hand(cell):
    torch.manual_seed(1)
    layer_class, cell_class = (LSTM, nn.LSTMCell) if cell == "lstm" else (GRU, nn.GRUCell)
    rnn = layer_class(3, 4, num_layers=2, batch_first=True)
    x = torch.randn(2, 9, 3)
    rows = gradient_flow(Readout(rnn), (x,), readout_loss)

    cells = []
    for k in range(2):
        c = cell_class(3 if k == 0 else 4, 4).double()
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(c, name).data.copy_(getattr(rnn, f"{name}_l{k}"))
        cells.append(c)
    states = [None, None]
    hidden = [[], []]
    for t in range(9):
        inp = x[:, t].double()
        for k, c in enumerate(cells):
            states[k] = c(inp, states[k])
            h = states[k][0] if cell == "lstm" else states[k]
            hidden[k].append(h)
            inp = h
    loss = (hidden[1][-1] @ torch.linspace(-1.0, 1.0, 4).double()).sum()
    grads = torch.autograd.grad(loss, hidden[0] + hidden[1])
    for k in range(2):
        expected = torch.stack([g.norm(dim=-1).mean() for g in grads[9 * k : 9 * (k + 1)]])
        torch.testing.assert_close(norms(rows, layer=k), expected, rtol=1e-9, atol=1e-300)


@pytest.mark.parametrize(
    "layer",
    [
        RNN(3, 4, num_layers=2, batch_first=True, nonlinearity="relu"),
        LSTM(3, 4, batch_first=True, bidirectional=True),
        GRU(3, 4, num_layers=2, batch_first=True, bidirectional=True),
    ],
)
def test_the_recorded_unroll_computes_what_the_layer_computes(layer):
    x = torch.randn(2, 7, 3)
    expected, _ = layer(x)
    with recording(layer) as recorder:
        out, _ = layer(x)
    torch.testing.assert_close(out, expected)
    assert len(recorder.states) == layer.num_layers
    assert all(len(hs) == 7 for directions in recorder.states for hs in directions)
    assert layer(x)[0].shape == expected.shape  # the layer's own forward is back


def test_a_bidirectional_layer_reports_both_directions():
    rows = gradient_flow(
        Readout(GRU(3, 4, batch_first=True, bidirectional=True)),
        (torch.randn(2, 6, 3),),
        readout_loss,
    )
    assert len(norms(rows, direction=0)) == len(norms(rows, direction=1)) == 6
    # The loss reads position T: the backward direction got there first, so its h_1 is reached
    # only through t = 1 itself; the forward direction's h_T directly.
    assert norms(rows, direction=1)[-1] > 0 and norms(rows, direction=0)[-1] > 0


def test_vanishing_and_exploding_follow_the_spectral_radius():
    """An RNN in its linear regime (no biases, tiny inputs, so tanh' = 1) with W_hh = g Q, Q
    orthogonal: ||dL_T/dh_t|| = ||v|| g^(T - t) exactly, vanishing for g < 1, exploding for
    g > 1."""
    x = 1e-12 * torch.randn(3, 30, 2)
    for gain in (0.5, 1.5):
        rnn = RNN(2, 6, batch_first=True, bias=False)
        init_recurrent(rnn, "orthogonal", gain)
        flow = norms(gradient_flow(Readout(rnn), (x,), readout_loss))
        torch.testing.assert_close(
            flow / flow[-1],
            gain ** torch.arange(29, -1, -1, dtype=torch.float64),
            rtol=1e-5,
            atol=0,
        )  # Q is orthogonal to float32 precision


def test_spectrum_of_known_matrices():
    lstm = LSTM(3, 4)
    init_recurrent(lstm, "identity", 0.9)
    rows = recurrent_spectrum(lstm)
    assert [r["gate"] for r in rows] == ["i", "f", "g", "o"]
    for r in rows:
        assert r["spectral_radius"] == pytest.approx(0.9) and r["sigma_max"] == r[
            "sigma_min"
        ] == pytest.approx(0.9)
    rnn = RNN(3, 2)
    with torch.no_grad():
        rnn.weight_hh_l0.copy_(
            torch.tensor([[0.0, 2.0], [0.5, 0.0]])
        )  # eigenvalues +-1, singular values 2, 0.5
    (row,) = recurrent_spectrum(rnn)
    assert (row["spectral_radius"], row["sigma_max"], row["sigma_min"]) == pytest.approx(
        (1.0, 2.0, 0.5)
    )


def rnnkit(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "MPLBACKEND": "Agg"}
    return subprocess.run(
        [sys.executable, "-m", "rnnkit.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def test_diagnose_command_writes_csv_and_png_for_fresh_and_trained_models(tmp_path):
    config = ROOT / "configs" / "adding.yaml"
    small = [
        "data.sequence_length=20",
        "data.train_size=200",
        "data.valid_size=64",
        "data.test_size=64",
        "model.hidden_size=16",
        "train.epochs=1",
        "train.progress=false",
    ]
    trained = rnnkit("train", str(config), *small, "--run-dir", str(tmp_path / "run"), cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    scored = rnnkit("evaluate", str(tmp_path / "run"), "--split", "valid", cwd=tmp_path)
    assert scored.returncode == 0, scored.stderr
    assert scored.stdout.startswith("loss ") and " mse " in scored.stdout
    result = rnnkit(
        "diagnose",
        "gradients",
        str(config),
        *small,
        "--cells",
        "rnn-tanh",
        "rnn-relu",
        "lstm",
        "gru",
        "--run",
        str(tmp_path / "run"),
        "--out",
        str(tmp_path / "diag"),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    with open(tmp_path / "diag" / "gradient_flow.csv") as f:
        rows = list(csv.DictReader(f))
    labels = sorted({r["label"] for r in rows})
    assert labels == ["gru, init", "lstm, init", "lstm, run", "rnn-relu, init", "rnn-tanh, init"]
    assert len(rows) == 5 * 20
    assert (tmp_path / "diag" / "gradient_flow.png").read_bytes()[:4] == b"\x89PNG"
    assert "rnn-tanh, init" in result.stdout
    plot = rnnkit("diagnose", "grad-norm", str(tmp_path / "run"), cwd=tmp_path)
    assert plot.returncode == 0, plot.stderr
    assert (tmp_path / "run" / "grad_norm.png").read_bytes()[:4] == b"\x89PNG"


def test_diagnose_errors_are_one_line(tmp_path):
    result = rnnkit(
        "diagnose",
        "gradients",
        str(ROOT / "configs" / "adding.yaml"),
        "--cells",
        "lstmm",
        cwd=tmp_path,
    )
    assert (
        result.returncode == 2
        and result.stderr.strip().count("\n") == 0
        and "lstmm" in result.stderr
    )
    result = rnnkit("diagnose", "gradients", str(ROOT / "configs" / "reverse.yaml"), cwd=tmp_path)
    assert (
        result.returncode == 2 and "translate" in result.stderr and "Traceback" not in result.stderr
    )
    result = rnnkit("diagnose", "grad-norm", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
