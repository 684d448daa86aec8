"""The NumPy reference: forward pass and hand-derived BPTT of the RNN, LSTM and GRU.

Small and literal, NumPy only, float64: the oracle the PyTorch path is checked against
(``tests/test_reference.py``) and the code to read beside the derivation. Not fast.

The model, for a batch of sequences ``x`` (T, B, I) with integer targets ``y`` (T, B)::

    h_t      = cell(x_t, h_{t-1})                  the SPEC.md formulas, torch's weight layout
    logits_t = W_hy h_t + b_y                      (B, V)
    L        = sum_t L_t,  L_t = sum_b -log softmax(logits_t)[y_t]    (cross-entropy, summed)

BPTT. ``dL/dθ = sum_t dL_t/dθ``, and the loss at step t reaches a weight through every step
s <= t that used it::

    dL_t/dθ = sum_{s <= t} (dL_t/dh_s) (∂h_s/∂θ)   with   dL_t/dh_{s-1} = (dL_t/dh_s) ∂h_s/∂h_{s-1}

Truncated to k steps (``truncate=k``, the classic ``bptt_truncate``): the sum over s stops at
s = t - k, i.e. L_t's gradient flows through steps t, t-1, ..., t-k and h_{t-k-1} counts as a
constant. ``truncate=None`` is full BPTT.

The backward pass below is written per output, as the definition reads: for each t, walk back
from step t. That costs O(T * k) step-backwards (O(T^2) in full), which is fine for an oracle.

Each cell is a pair ``forward(p, x_t, state) -> (state_t, cache)`` and
``backward(p, cache, dstate_t, grads) -> dstate``: the backward adds the step's parameter
gradients into ``grads`` and returns the gradient of the previous state. Shapes: x_t (B, I),
h (B, H), c (B, H); parameters are named and laid out as torch.nn's (gates stacked in rows:
LSTM i, f, g, o; GRU r, z, n).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Array = np.ndarray
Params = dict[str, Array]
State = tuple[Array, ...]
Cache = tuple[Array, ...]

CELLS = ("rnn_tanh", "rnn_relu", "lstm", "gru", "gru_reset_before")
GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3, "gru_reset_before": 3}


def sigmoid(a: Array) -> Array:
    return 1.0 / (1.0 + np.exp(-a))


def init_params(
    cell: str,
    input_size: int,
    hidden_size: int,
    vocab_size: int,
    rng: np.random.Generator,
    scale: float = 0.5,
) -> Params:
    """Uniform(-scale, scale) weights: ``weight_ih`` (kH, I), ``weight_hh`` (kH, H),
    ``bias_ih``/``bias_hh`` (kH,), ``weight_hy`` (V, H), ``bias_y`` (V,); k gates."""
    k = GATES[cell] * hidden_size
    shapes = {
        "weight_ih": (k, input_size),
        "weight_hh": (k, hidden_size),
        "bias_ih": (k,),
        "bias_hh": (k,),
        "weight_hy": (vocab_size, hidden_size),
        "bias_y": (vocab_size,),
    }
    return {name: rng.uniform(-scale, scale, shape) for name, shape in shapes.items()}


def _add_linear_grads(grads: Params, da_x: Array, x: Array, da_h: Array, h: Array) -> None:
    """Gradients of ``a = W_ih x + b_ih + W_hh h + b_hh`` given dL/da: da_x for the input
    half, da_h for the recurrent half (they differ only in the GRU), each (B, kH)."""
    grads["weight_ih"] += da_x.T @ x
    grads["bias_ih"] += da_x.sum(0)
    grads["weight_hh"] += da_h.T @ h
    grads["bias_hh"] += da_h.sum(0)


# Elman RNN: a = W_ih x + b_ih + W_hh h + b_hh;  h_t = act(a)
def rnn_forward(act: str) -> Callable[[Params, Array, State], tuple[State, Cache]]:
    def forward(p: Params, x: Array, state: State) -> tuple[State, Cache]:
        (h,) = state
        a = x @ p["weight_ih"].T + p["bias_ih"] + h @ p["weight_hh"].T + p["bias_hh"]
        h_t = np.tanh(a) if act == "tanh" else np.maximum(a, 0.0)
        return (h_t,), (x, h, a, h_t)

    return forward


def rnn_backward(act: str) -> Callable[[Params, Cache, State, Params], State]:
    def backward(p: Params, cache: Cache, dstate: State, grads: Params) -> State:
        x, h, a, h_t = cache
        (dh_t,) = dstate
        da = dh_t * (
            (1.0 - h_t**2) if act == "tanh" else (a > 0)
        )  # tanh' = 1 - tanh^2; relu' = [a > 0]
        _add_linear_grads(grads, da, x, da, h)
        return (da @ p["weight_hh"],)

    return backward


def lstm_forward(p: Params, x: Array, state: State) -> tuple[State, Cache]:
    """i, f, o = sigmoid(.), g = tanh(.), c_t = f*c + i*g, h_t = o*tanh(c_t)."""
    h, c = state
    a = x @ p["weight_ih"].T + p["bias_ih"] + h @ p["weight_hh"].T + p["bias_hh"]  # (B, 4H)
    a_i, a_f, a_g, a_o = np.split(a, 4, axis=1)
    i, f, g, o = sigmoid(a_i), sigmoid(a_f), np.tanh(a_g), sigmoid(a_o)
    c_t = f * c + i * g
    tanh_c = np.tanh(c_t)
    h_t = o * tanh_c
    return (h_t, c_t), (x, h, c, i, f, g, o, tanh_c)


def lstm_backward(p: Params, cache: Cache, dstate: State, grads: Params) -> State:
    x, h, c, i, f, g, o, tanh_c = cache
    dh_t, dc_t = dstate
    do = dh_t * tanh_c
    dc = dc_t + dh_t * o * (1.0 - tanh_c**2)  # c_t reaches the loss directly and through h_t
    di, df, dg = dc * g, dc * c, dc * i
    da = np.concatenate(
        [di * i * (1 - i), df * f * (1 - f), dg * (1 - g**2), do * o * (1 - o)], axis=1
    )
    _add_linear_grads(grads, da, x, da, h)
    return da @ p["weight_hh"], dc * f


def gru_forward(p: Params, x: Array, state: State) -> tuple[State, Cache]:
    """r, z = sigmoid(.), n = tanh(W_in x + b_in + r*(W_hn h + b_hn)), h_t = (1-z)*n + z*h."""
    (h,) = state
    gx = x @ p["weight_ih"].T + p["bias_ih"]  # (B, 3H)
    gh = h @ p["weight_hh"].T + p["bias_hh"]  # (B, 3H)
    gx_r, gx_z, gx_n = np.split(gx, 3, axis=1)
    gh_r, gh_z, gh_n = np.split(gh, 3, axis=1)
    r, z = sigmoid(gx_r + gh_r), sigmoid(gx_z + gh_z)
    n = np.tanh(gx_n + r * gh_n)
    h_t = (1 - z) * n + z * h
    return (h_t,), (x, h, r, z, n, gh_n)


def gru_backward(p: Params, cache: Cache, dstate: State, grads: Params) -> State:
    x, h, r, z, n, gh_n = cache
    (dh_t,) = dstate
    da_n = dh_t * (1 - z) * (1 - n**2)
    da_z = dh_t * (h - n) * z * (1 - z)
    da_r = da_n * gh_n * r * (1 - r)
    dgx = np.concatenate([da_r, da_z, da_n], axis=1)
    dgh = np.concatenate([da_r, da_z, da_n * r], axis=1)  # W_hn h + b_hn is scaled by r
    _add_linear_grads(grads, dgx, x, dgh, h)
    return (dh_t * z + dgh @ p["weight_hh"],)


def gru_reset_before_forward(p: Params, x: Array, state: State) -> tuple[State, Cache]:
    """As the GRU, with the reset applied before the matmul (Cho et al. 2014):
    n = tanh(W_in x + b_in + W_hn (r*h) + b_hn)."""
    (h,) = state
    hidden = h.shape[1]
    w_rz, w_n = p["weight_hh"][: 2 * hidden], p["weight_hh"][2 * hidden :]
    b_rz, b_n = p["bias_hh"][: 2 * hidden], p["bias_hh"][2 * hidden :]
    gx = x @ p["weight_ih"].T + p["bias_ih"]  # (B, 3H)
    gx_r, gx_z, gx_n = np.split(gx, 3, axis=1)
    a_r, a_z = np.split(h @ w_rz.T + b_rz, 2, axis=1)
    r, z = sigmoid(gx_r + a_r), sigmoid(gx_z + a_z)
    n = np.tanh(gx_n + (r * h) @ w_n.T + b_n)
    h_t = (1 - z) * n + z * h
    return (h_t,), (x, h, r, z, n)


def gru_reset_before_backward(p: Params, cache: Cache, dstate: State, grads: Params) -> State:
    x, h, r, z, n = cache
    (dh_t,) = dstate
    hidden = h.shape[1]
    w_rz, w_n = p["weight_hh"][: 2 * hidden], p["weight_hh"][2 * hidden :]
    da_n = dh_t * (1 - z) * (1 - n**2)
    da_z = dh_t * (h - n) * z * (1 - z)
    d_rh = da_n @ w_n  # dL/d(r*h), (B, H)
    da_r = d_rh * h * r * (1 - r)
    da_rz = np.concatenate([da_r, da_z], axis=1)
    da = np.concatenate([da_rz, da_n], axis=1)  # (B, 3H)
    grads["weight_ih"] += da.T @ x
    grads["bias_ih"] += da.sum(0)
    grads["weight_hh"] += np.concatenate([da_rz.T @ h, da_n.T @ (r * h)], axis=0)  # W_hn sees r*h
    grads["bias_hh"] += da.sum(0)
    return (dh_t * z + d_rh * r + da_rz @ w_rz,)


STEPS: dict[str, tuple[Callable, Callable]] = {
    "rnn_tanh": (rnn_forward("tanh"), rnn_backward("tanh")),
    "rnn_relu": (rnn_forward("relu"), rnn_backward("relu")),
    "lstm": (lstm_forward, lstm_backward),
    "gru": (gru_forward, gru_backward),
    "gru_reset_before": (gru_reset_before_forward, gru_reset_before_backward),
}


def zero_state(cell: str, batch: int, hidden_size: int) -> State:
    """(h,) or, for the LSTM, (h, c): zeros (B, H)."""
    return tuple(np.zeros((batch, hidden_size)) for _ in range(2 if cell == "lstm" else 1))


def forward(
    cell: str, p: Params, x: Array, state0: State | None = None
) -> tuple[list[State], list[Cache]]:
    """Run the cell over x (T, B, I): the states [s_0, s_1, ..., s_T] and the T step caches."""
    step = STEPS[cell][0]
    states = [
        state0 if state0 is not None else zero_state(cell, x.shape[1], p["weight_hh"].shape[1])
    ]
    caches = []
    for x_t in x:
        state, cache = step(p, x_t, states[-1])
        states.append(state)
        caches.append(cache)
    return states, caches


def softmax_cross_entropy(logits: Array, y: Array) -> tuple[float, Array]:
    """Summed cross-entropy of logits (B, V) against targets y (B,), and dL/dlogits
    ``softmax(logits) - onehot(y)`` (B, V)."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_prob = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    rows = np.arange(len(y))
    dlogits = np.exp(log_prob)
    dlogits[rows, y] -= 1.0
    return float(-log_prob[rows, y].sum()), dlogits


def loss(cell: str, p: Params, x: Array, y: Array, state0: State | None = None) -> float:
    """L = sum_t sum_b -log softmax(W_hy h_t + b_y)[y_t]."""
    states, _ = forward(cell, p, x, state0)
    return sum(
        softmax_cross_entropy(s[0] @ p["weight_hy"].T + p["bias_y"], y_t)[0]
        for s, y_t in zip(states[1:], y, strict=False)
    )


def bptt(
    cell: str,
    p: Params,
    x: Array,
    y: Array,
    state0: State | None = None,
    truncate: int | None = None,
) -> tuple[float, Params]:
    """The loss and its gradient for every parameter, by backpropagation through time.

    x (T, B, I), y (T, B) ints. ``truncate=k``: L_t's gradient flows through steps t..t-k only.
    """
    backward = STEPS[cell][1]
    states, caches = forward(cell, p, x, state0)
    grads = {name: np.zeros_like(value) for name, value in p.items()}
    total = 0.0
    for t in reversed(range(len(x))):
        h_t = states[t + 1][0]
        loss_t, dlogits = softmax_cross_entropy(h_t @ p["weight_hy"].T + p["bias_y"], y[t])
        total += loss_t
        grads["weight_hy"] += dlogits.T @ h_t
        grads["bias_y"] += dlogits.sum(0)
        # dL_t/ds_t: through h_t only (c_t reaches the loss through h_t, inside the step).
        dstate = (dlogits @ p["weight_hy"],) + tuple(np.zeros_like(s) for s in states[t + 1][1:])
        first = 0 if truncate is None else max(0, t - truncate)
        for s in range(t, first - 1, -1):
            dstate = backward(p, caches[s], dstate, grads)
    return total, grads


# minGRU and minLSTM (Feng et al. 2024; ``rnnkit.nn.minrnn``). Their gates and candidate see x_t
# alone: there is no weight_hh, and h_{t-1} enters only the final mix. Parameters: weight_ih
# (kH, I) and bias_ih (kH,), rows (z, h~) for minGRU (k = 2) and (f, i, h~) for minLSTM (k = 3),
# plus the output layer's weight_hy, bias_y. ``forward``, ``loss`` and ``bptt`` above run them;
# pass ``state0`` = (h_0,), as ``zero_state`` reads the size of a weight_hh.

MIN_CELLS = ("mingru", "minlstm")
MIN_GATES = {"mingru": 2, "minlstm": 3}


def init_min_params(
    cell: str,
    input_size: int,
    hidden_size: int,
    vocab_size: int,
    rng: np.random.Generator,
    scale: float = 0.5,
) -> Params:
    """Uniform(-scale, scale): ``weight_ih`` (kH, I), ``bias_ih`` (kH,), ``weight_hy`` (V, H),
    ``bias_y`` (V,)."""
    k = MIN_GATES[cell] * hidden_size
    shapes = {
        "weight_ih": (k, input_size),
        "bias_ih": (k,),
        "weight_hy": (vocab_size, hidden_size),
        "bias_y": (vocab_size,),
    }
    return {name: rng.uniform(-scale, scale, shape) for name, shape in shapes.items()}


def g(a: Array) -> Array:
    """The candidate's activation: a + 0.5 for a >= 0, sigmoid(a) below (positive)."""
    return np.where(a >= 0, a + 0.5, sigmoid(a))


def g_prime(a: Array) -> Array:
    """g'(a): 1 for a >= 0, sigmoid(a) (1 - sigmoid(a)) below."""
    return np.where(a >= 0, 1.0, sigmoid(a) * (1 - sigmoid(a)))


def _add_input_grads(grads: Params, dk: Array, x: Array) -> None:
    """Gradients of ``k = W_ih x + b_ih`` given dL/dk (B, kH)."""
    grads["weight_ih"] += dk.T @ x
    grads["bias_ih"] += dk.sum(0)


def mingru_forward(p: Params, x: Array, state: State) -> tuple[State, Cache]:
    """z = sigmoid(W_z x + b_z), h~ = g(W_h x + b_h), h_t = (1 - z)*h + z*h~."""
    (h,) = state
    k = x @ p["weight_ih"].T + p["bias_ih"]  # (B, 2H)
    k_z, k_h = np.split(k, 2, axis=1)
    z, h_tilde = sigmoid(k_z), g(k_h)
    h_t = (1 - z) * h + z * h_tilde
    return (h_t,), (x, h, z, h_tilde, k_h)


def mingru_backward(p: Params, cache: Cache, dstate: State, grads: Params) -> State:
    x, h, z, h_tilde, k_h = cache
    (dh_t,) = dstate
    dk_z = dh_t * (h_tilde - h) * z * (1 - z)  # dh_t/dz = h~ - h; sigmoid' = z (1 - z)
    dk_h = dh_t * z * g_prime(k_h)
    _add_input_grads(grads, np.concatenate([dk_z, dk_h], axis=1), x)
    return (dh_t * (1 - z),)


def minlstm_forward(p: Params, x: Array, state: State) -> tuple[State, Cache]:
    """f, i = sigmoid(.), h~ = g(.), f' = f/(f+i), i' = i/(f+i), h_t = f'*h + i'*h~."""
    (h,) = state
    k = x @ p["weight_ih"].T + p["bias_ih"]  # (B, 3H)
    k_f, k_i, k_h = np.split(k, 3, axis=1)
    f, i, h_tilde = sigmoid(k_f), sigmoid(k_i), g(k_h)
    f_prime, i_prime = f / (f + i), i / (f + i)
    h_t = f_prime * h + i_prime * h_tilde
    return (h_t,), (x, h, f, i, f_prime, i_prime, h_tilde, k_h)


def minlstm_backward(p: Params, cache: Cache, dstate: State, grads: Params) -> State:
    x, h, f, i, f_prime, i_prime, h_tilde, k_h = cache
    (dh_t,) = dstate
    # f' = f/s and i' = i/s with s = f + i: df'/df = i/s^2 = -di'/df, di'/di = f/s^2 = -df'/di
    s2 = (f + i) ** 2
    df_prime, di_prime = dh_t * h, dh_t * h_tilde
    df = (df_prime - di_prime) * i / s2
    di = (di_prime - df_prime) * f / s2
    dk = np.concatenate([df * f * (1 - f), di * i * (1 - i), dh_t * i_prime * g_prime(k_h)], axis=1)
    _add_input_grads(grads, dk, x)
    return (dh_t * f_prime,)


STEPS.update(mingru=(mingru_forward, mingru_backward), minlstm=(minlstm_forward, minlstm_backward))
