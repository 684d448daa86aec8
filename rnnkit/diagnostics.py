"""Vanishing and exploding gradients, measured: how much of the loss at the last step reaches
each earlier step, and the recurrent matrices that decide it.

Gradient flow. For the loss at the last step L_T and the hidden state h_t of a layer,

    dL_T/dh_t = dL_T/dh_T  prod_{k=t+1..T} dh_k/dh_{k-1},

and for the Elman RNN ``dh_k/dh_{k-1} = diag(act'(a_k)) W_hh``. With tanh' <= 1 the norm of the
product is at most ``||W_hh||^(T-t)``: it shrinks geometrically when the largest singular value
of W_hh is below 1 (vanishing) and may grow when the spectral radius is above 1 (exploding;
Bengio et al. 1994, Pascanu et al. 2013). The LSTM's cell state adds a path whose Jacobian is
``diag(f_k)``, close to the identity while the forget gate is open; the GRU's ``(1 - z_k)`` acts
the same way. ``gradient_flow`` measures ``||dL_T/dh_t||`` for every layer, direction and t by
running the layer's own cells step by step (``layer.step``, ``layer.cell_weights()``: the same
formulas the explicit path computes) and asking autograd for the gradient of L_T with respect to
every h_t: the total derivative, through time and through the layers above.

Spectrum. ``recurrent_spectrum`` gives, for each gate block W_h* (H, H) of each weight_hh, the
spectral radius max |lambda_i| and the largest and smallest singular values.
"""

from __future__ import annotations

import contextlib
import copy
import types
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

from rnnkit.nn.layers import RecurrentLayer

GATES = {1: ("h",), 3: ("r", "z", "n"), 4: ("i", "f", "g", "o")}  # torch's stacking order


class HiddenRecorder:
    """The hidden states h_t of one forward pass: ``states[layer][direction][t]``, each (B, H)."""

    def __init__(self) -> None:
        self.states: list[list[list[Tensor]]] = []

    def unroll(self, layer: RecurrentLayer, x: Tensor) -> tuple[Tensor, Tensor]:
        """x (T, B, I) -> outputs (T, B, D*H), zero initial state, no dropout; records every h_t
        (position t for both directions). Returns the last layer's output and a dummy state."""
        self.states = []
        step = layer.step
        for directions in layer.cell_weights():
            outputs, recorded = [], []
            for direction, w in enumerate(directions):
                inputs = x.flip(0) if direction == 1 else x
                state = tuple(
                    x.new_zeros(x.shape[1], w.weight_hh.shape[1] if i == 0 else layer.hidden_size)
                    for i in range(step.num_states)
                )
                hs = []
                for gx_t in step.project(inputs, w).unbind(0):
                    state = step(gx_t, state, w)
                    hs.append(state[0])
                if direction == 1:
                    hs.reverse()
                recorded.append(hs)
                outputs.append(torch.stack(hs))  # (T, B, H)
            self.states.append(recorded)
            x = torch.cat(outputs, dim=-1)
        return x, x[-1]


@contextlib.contextmanager
def recording(layer: RecurrentLayer) -> Iterator[HiddenRecorder]:
    """Within the block, ``layer(x)`` runs step by step and records its hidden states. Batches
    must be full length (no ``lengths``); the returned state is not the layer's usual one."""
    recorder = HiddenRecorder()

    def forward(
        self: RecurrentLayer, input: Tensor, hx: object = None, lengths: Tensor | None = None
    ):
        if hx is not None or lengths is not None or input.dim() != 3:
            raise ValueError(
                "gradient flow needs a batched, full-length input and a zero initial state"
            )
        x = input.transpose(0, 1) if self.batch_first else input
        out, last = recorder.unroll(self, x)
        return (out.transpose(0, 1) if self.batch_first else out), last

    layer.forward = types.MethodType(forward, layer)
    try:
        yield recorder
    finally:
        del layer.forward


def recurrent_layer(model: nn.Module) -> RecurrentLayer:
    """The model's one rnnkit.nn layer (``model.rnn``)."""
    layer = getattr(model, "rnn", None)
    if not isinstance(layer, RecurrentLayer):
        raise ValueError(f"{type(model).__name__} has no rnnkit.nn layer at .rnn")
    return layer


def gradient_flow(
    model: nn.Module,
    batch: tuple[Tensor, ...],
    last_step_loss: Callable[[nn.Module, Any], Tensor],
    dtype: torch.dtype = torch.float64,
) -> list[dict[str, float | int]]:
    """``||dL_T/dh_t||`` for every layer, direction and step t of ``model.rnn``.

    last_step_loss(model, batch) runs the model and returns L_T (a scalar). It runs on a copy of
    the model in eval mode (no dropout) and in ``dtype``: float64 by default, so that gradients
    of 1e-40 and less (a vanilla RNN's after 100 steps) are measured rather than flushed to 0.
    The norm is the mean over the batch of each sequence's L2 norm.
    Rows: {"layer", "direction", "t" (1-based), "grad_norm"}.
    """
    model = copy.deepcopy(model).to(dtype).eval()
    batch = tuple(t.to(dtype) if t.is_floating_point() else t for t in batch)
    layer = recurrent_layer(model)
    with torch.enable_grad(), recording(layer) as recorder:
        loss = last_step_loss(model, batch)
    flat = [h for directions in recorder.states for hs in directions for h in hs]
    grads = iter(torch.autograd.grad(loss, flat, allow_unused=True))
    rows = []
    for number, directions in enumerate(recorder.states):
        for direction, hs in enumerate(directions):
            for t, _ in enumerate(hs, 1):
                g = next(grads)
                norm = 0.0 if g is None else g.detach().norm(dim=-1).mean().item()
                rows.append({"layer": number, "direction": direction, "t": t, "grad_norm": norm})
    return rows


@torch.no_grad()
def recurrent_spectrum(layer: RecurrentLayer) -> list[dict[str, float | int | str]]:
    """Spectral radius and extreme singular values of every gate block of every weight_hh.
    Rows: {"layer", "direction", "gate", "spectral_radius", "sigma_max", "sigma_min"}."""
    rows = []
    for number, directions in enumerate(layer.cell_weights()):
        for direction, w in enumerate(directions):
            weight = w.weight_hh.detach().double().cpu()
            blocks = weight.split(layer.hidden_size)  # (kH, H) -> k blocks (H, H)
            for gate, block in zip(GATES[len(blocks)], blocks, strict=True):
                sigma = torch.linalg.svdvals(block)
                radius = (
                    torch.linalg.eigvals(block).abs().max().item()
                    if block.shape[0] == block.shape[1]
                    else float("nan")
                )
                rows.append(
                    {
                        "layer": number,
                        "direction": direction,
                        "gate": gate,
                        "spectral_radius": radius,
                        "sigma_max": sigma.max().item(),
                        "sigma_min": sigma.min().item(),
                    }
                )
    return rows


@torch.no_grad()
def state_eigenvalues(layer: RecurrentLayer) -> Tensor:
    """The eigenvalues (complex, (H,)) of the first layer's block that carries the state: W_hh
    for the Elman RNN, the candidate blocks W_hg (LSTM) and W_hn (GRU)."""
    weight = layer.cell_weights()[0][0].weight_hh.detach().double().cpu()
    blocks = weight.split(layer.hidden_size)
    index = {1: 0, 3: 2, 4: 2}[len(blocks)]
    return torch.linalg.eigvals(blocks[index])
