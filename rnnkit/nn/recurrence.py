"""Running a cell over time: the explicit path of the layers in ``layers.py``.

``run_stack`` takes a step (``cells.RNNStep`` / ``LSTMStep`` / ``GRUStep``), the weights of every
layer and direction, and a padded, time-major input, and computes what ``torch.nn.LSTM`` & co.
compute: stacked layers, each layer's input the (concatenated) outputs of the one below, dropout
between layers, a reverse direction that reads each sequence backwards from its own last token.

Variable lengths: position t of sequence b is real when ``t < lengths[b]``. At padded positions
the state is carried unchanged (so the final state is the one at each sequence's last real
token) and the output is zero, exactly as torch returns a packed sequence padded again; padded
inputs therefore receive no gradient.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from rnnkit.nn.cells import CellWeights, State, Step
from rnnkit.nn.dropout import dropout as apply_dropout


def reverse_padded(x: Tensor, lengths: Tensor | None) -> Tensor:
    """Reverse each sequence within its own length: x (T, B, *) -> y with
    ``y[t, b] = x[lengths[b] - 1 - t, b]`` for ``t < lengths[b]``; padding stays where it is."""
    if lengths is None:
        return x.flip(0)
    steps = torch.arange(x.shape[0], device=x.device).unsqueeze(1)  # (T, 1)
    index = torch.where(steps < lengths, lengths - 1 - steps, steps)  # (T, B)
    index = index.view(*index.shape, *([1] * (x.dim() - 2))).expand_as(x)
    return x.gather(0, index)


def run_direction(
    step: Step, w: CellWeights, x: Tensor, state: State, mask: Tensor | None
) -> tuple[Tensor, State]:
    """One layer, one direction: x (T, B, I), state tuple of (B, *), mask (T, B, 1) bool or None
    -> outputs (T, B, H_out), final state."""
    gx = step.project(x, w)  # (T, B, kH): every step's input projection in one matmul
    # Same (kH, H) matrix, stored column-major once per sequence, so that the W_hh^T each step
    # multiplies by is a contiguous (H, kH) block: small GEMMs run up to 1.5x faster that way.
    # One step (a decoder's) would spend more on the copy than it gains.
    if x.shape[0] > 1:
        w = w._replace(weight_hh=w.weight_hh.t().contiguous().t())
    outputs = []
    # unbind, not gx[t]: the backward of one unbind is one stack, while each gx[t] would
    # scatter its gradient into a fresh (T, B, kH) tensor of zeros, T times over.
    for t, gx_t in enumerate(gx.unbind(0)):
        new = step(gx_t, state, w)
        if mask is not None:
            new = tuple(torch.where(mask[t], n, s) for n, s in zip(new, state, strict=True))
            outputs.append(new[0].masked_fill(~mask[t], 0.0))
        else:
            outputs.append(new[0])
        state = new
    return torch.stack(outputs), state


Direction = Callable[[Step, CellWeights, Tensor, State, Tensor | None], tuple[Tensor, State]]


def run_stack(
    step: Step,
    weights: list[list[CellWeights]],
    x: Tensor,
    hx: State,
    lengths: Tensor | None,
    dropout: float,
    training: bool,
    direction_fn: Direction = run_direction,
) -> tuple[Tensor, State]:
    """All layers and directions.

    weights[layer][direction]; x (T, B, I); hx: tuple of (L*D, B, *) as torch orders them
    (layer-major, then direction); lengths (B,) on x's device or None. ``direction_fn`` runs
    one layer and direction: ``run_direction`` (autograd over the cells) or
    ``bptt.run_direction`` (the hand-written BPTT).
    Returns outputs (T, B, D*H_out) and the final state, a tuple of (L*D, B, *).
    """
    mask = None
    if lengths is not None:
        mask = (torch.arange(x.shape[0], device=x.device).unsqueeze(1) < lengths).unsqueeze(-1)
    finals: list[State] = []
    for layer, directions in enumerate(weights):
        if layer > 0 and dropout > 0 and training:
            x = apply_dropout(x, dropout, training=True)
        outputs = []
        for direction, w in enumerate(directions):
            index = layer * len(directions) + direction
            state = tuple(s[index] for s in hx)
            reverse = direction == 1
            inputs = reverse_padded(x, lengths) if reverse else x
            out, state = direction_fn(step, w, inputs, state, mask)
            outputs.append(reverse_padded(out, lengths) if reverse else out)
            finals.append(state)
        x = torch.cat(outputs, dim=-1) if len(outputs) > 1 else outputs[0]
    return x, tuple(torch.stack(s) for s in zip(*finals, strict=True))
