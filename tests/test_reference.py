"""rnnkit.reference: hand-derived BPTT against central finite differences (full and truncated),
full BPTT against torch autograd and against rnnkit's hand-written BPTT (``rnnkit.nn.bptt``)
on the same weights, for every cell."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rnnkit import nn as rnn
from rnnkit import reference as ref

T, B, IN, H, V = 6, 3, 4, 5, 7


def problem(cell: str, seed: int = 0) -> tuple[ref.Params, np.ndarray, np.ndarray, ref.State]:
    rng = np.random.default_rng(seed)
    p = ref.init_params(cell, IN, H, V, rng)
    x = rng.normal(size=(T, B, IN))
    y = rng.integers(0, V, size=(T, B))
    state0 = tuple(rng.normal(scale=0.5, size=(B, H)) for _ in ref.zero_state(cell, B, H))
    return p, x, y, state0


def finite_differences(f, p: ref.Params, eps: float = 1e-6) -> ref.Params:
    """Central differences (f(θ + eps) - f(θ - eps)) / 2 eps, one coordinate at a time."""
    grads = {}
    for name, value in p.items():
        g = np.zeros_like(value)
        for idx in np.ndindex(value.shape):
            saved = value[idx]
            value[idx] = saved + eps
            plus = f(p)
            value[idx] = saved - eps
            minus = f(p)
            value[idx] = saved
            g[idx] = (plus - minus) / (2 * eps)
        grads[name] = g
    return grads


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a) + np.linalg.norm(b), 1e-300))


def truncated_surrogate(
    cell: str, p0: ref.Params, x: np.ndarray, y: np.ndarray, state0: ref.State, k: int
):
    """F(θ) = sum_t L_t(θ) where L_t runs steps t-k..t from the state s_{t-k-1} computed with the
    fixed weights θ0: dF/dθ at θ0 is exactly the gradient truncated to k steps."""
    fixed_states, _ = ref.forward(cell, {n: v.copy() for n, v in p0.items()}, x, state0)

    def f(p: ref.Params) -> float:
        total = 0.0
        for t in range(len(x)):
            first = max(0, t - k)
            states, _ = ref.forward(cell, p, x[first : t + 1], fixed_states[first])
            total += ref.softmax_cross_entropy(
                states[-1][0] @ p["weight_hy"].T + p["bias_y"], y[t]
            )[0]
        return total

    return f


@pytest.mark.parametrize("cell", ref.CELLS)
def test_full_bptt_matches_finite_differences(cell):
    p, x, y, state0 = problem(cell)
    loss, grads = ref.bptt(cell, p, x, y, state0)
    fd = finite_differences(lambda q: ref.loss(cell, q, x, y, state0), p)
    assert loss == pytest.approx(ref.loss(cell, p, x, y, state0), rel=1e-12)
    for name in p:
        assert relative_error(grads[name], fd[name]) < 1e-6, name
        assert np.abs(grads[name]).max() > 0, name  # every parameter takes part


@pytest.mark.parametrize("cell", ref.CELLS)
@pytest.mark.parametrize("k", [0, 2])
def test_truncated_bptt_matches_finite_differences_of_the_truncated_loss(cell, k):
    p, x, y, state0 = problem(cell, seed=1)
    loss, grads = ref.bptt(cell, p, x, y, state0, truncate=k)
    fd = finite_differences(truncated_surrogate(cell, p, x, y, state0, k), p)
    assert loss == pytest.approx(ref.loss(cell, p, x, y, state0), rel=1e-12)
    for name in p:
        assert relative_error(grads[name], fd[name]) < 1e-6, name


@pytest.mark.parametrize("cell", ref.CELLS)
def test_truncation_changes_the_recurrent_gradient_and_long_truncation_is_full(cell):
    p, x, y, state0 = problem(cell, seed=2)
    _, full = ref.bptt(cell, p, x, y, state0)
    _, short = ref.bptt(cell, p, x, y, state0, truncate=1)
    _, long = ref.bptt(cell, p, x, y, state0, truncate=T)
    assert relative_error(full["weight_hh"], short["weight_hh"]) > 1e-3
    np.testing.assert_array_equal(
        full["weight_hy"], short["weight_hy"]
    )  # the output layer is not recurrent
    for name in p:
        np.testing.assert_allclose(long[name], full[name], rtol=1e-12, atol=1e-12)


def torch_layers(cell: str) -> list[torch.nn.Module]:
    """The layers that compute ``cell``: torch.nn's own (where it has the variant) and rnnkit's
    explicit path."""
    both = ("handwritten", "autograd")  # the explicit path's two backward passes
    if cell.startswith("rnn"):
        act = cell.split("_")[1]
        return [
            torch.nn.RNN(IN, H, nonlinearity=act),
            *(rnn.RNN(IN, H, nonlinearity=act, fused=False, bptt=b) for b in both),
        ]
    if cell == "lstm":
        return [torch.nn.LSTM(IN, H), *(rnn.LSTM(IN, H, fused=False, bptt=b) for b in both)]
    if cell == "gru":
        return [torch.nn.GRU(IN, H), *(rnn.GRU(IN, H, fused=False, bptt=b) for b in both)]
    return [rnn.GRU(IN, H, reset="before", fused=False, bptt=b) for b in both]


@pytest.mark.parametrize("cell", ref.CELLS)
def test_full_bptt_equals_torch_autograd(cell):
    p, x, y, state0 = problem(cell, seed=3)
    loss, grads = ref.bptt(cell, p, x, y, state0)
    for layer in torch_layers(cell):
        layer = layer.double()
        with torch.no_grad():
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(layer, f"{name}_l0").copy_(torch.from_numpy(p[name]))
        w_hy = torch.tensor(p["weight_hy"], requires_grad=True)
        b_y = torch.tensor(p["bias_y"], requires_grad=True)
        hx = tuple(torch.from_numpy(s).unsqueeze(0) for s in state0)
        out, _ = layer(torch.from_numpy(x), hx if cell == "lstm" else hx[0])  # (T, B, H)
        logits = F.linear(out, w_hy, b_y)  # (T, B, V)
        torch_loss = F.cross_entropy(
            logits.reshape(-1, V), torch.from_numpy(y).reshape(-1), reduction="sum"
        )
        torch_loss.backward()
        assert torch_loss.item() == pytest.approx(loss, rel=1e-12)
        torch_grads = {
            name: getattr(layer, f"{name}_l0").grad
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        }
        torch_grads.update(weight_hy=w_hy.grad, bias_y=b_y.grad)
        for name, g in torch_grads.items():
            np.testing.assert_allclose(
                g.numpy(),
                grads[name],
                rtol=1e-10,
                atol=1e-10,
                err_msg=f"{type(layer).__module__} {getattr(layer, 'bptt', '')} {name}",
            )


def test_softmax_cross_entropy_by_hand():
    logits = np.array([[0.0, np.log(3.0)]])  # softmax = (1/4, 3/4)
    loss, dlogits = ref.softmax_cross_entropy(logits, np.array([1]))
    assert loss == pytest.approx(-np.log(0.75))
    np.testing.assert_allclose(dlogits, [[0.25, -0.25]])
