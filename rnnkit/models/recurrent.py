"""The recurrent layer a config asks for (``model.cell`` and its variant keys -> an rnnkit.nn
layer), and the one order in which every task model initialises its weights."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from rnnkit.config import ModelConfig
from rnnkit.errors import UserError
from rnnkit.nn import GRU, LSTM, RNN, MinGRU, MinLSTM
from rnnkit.nn.cells import init_chrono

# model.cell -> the layer, given (cfg, input size, hidden size, the keywords every cell takes);
# each gets only the variant keys that belong to it.
CELLS: dict[str, Callable[..., nn.Module]] = {
    "rnn": lambda cfg, i, h, common: RNN(i, h, nonlinearity=cfg.nonlinearity, **common),
    "lstm": lambda cfg, i, h, common: LSTM(
        i, h, peephole=cfg.peephole, forget_bias=cfg.forget_bias, **common
    ),
    "gru": lambda cfg, i, h, common: GRU(i, h, reset=cfg.reset, gate=cfg.gate, **common),
    # the parallel-scan cells: no W_hh, so no fused kernel and no explicit-path BPTT to choose
    "mingru": lambda cfg, i, h, common: MinGRU(i, h, **parallel_scan(common)),
    "minlstm": lambda cfg, i, h, common: MinLSTM(i, h, **parallel_scan(common)),
}


def parallel_scan(common: dict) -> dict:
    """The keywords of the recurrent layers that a parallel-scan layer takes."""
    return {k: v for k, v in common.items() if k not in ("fused", "bptt")}


RNNState = Tensor | tuple[Tensor, Tensor]  # h, or (h, c) for an LSTM: (L*D, B, H) each


def state_parts(state: RNNState) -> tuple[Tensor, ...]:
    """h, or (h, c) for an LSTM, as a tuple."""
    return state if isinstance(state, tuple) else (state,)


def state_from_parts(parts: tuple[Tensor, ...]) -> RNNState:
    return parts if len(parts) > 1 else parts[0]


def build_recurrent(
    cfg: ModelConfig,
    input_size: int,
    *,
    hidden_size: int | None = None,
    bidirectional: bool = False,
    batch_first: bool = True,
) -> nn.Module:
    """A stacked ``rnnkit.nn`` layer: ``cfg.num_layers`` x ``hidden_size`` (default
    ``cfg.hidden_size``), dropout ``cfg.dropout`` between layers."""
    common = dict(
        num_layers=cfg.num_layers,
        batch_first=batch_first,
        bidirectional=bidirectional,
        dropout=cfg.dropout if cfg.num_layers > 1 else 0.0,
        fused=cfg.fused,
        bptt=cfg.bptt,
    )
    return CELLS[cfg.cell](cfg, input_size, hidden_size or cfg.hidden_size, common)


def check_chrono(cfg: ModelConfig) -> None:
    """``recurrent_init: chrono`` sets the gate biases from ``chrono_t_max``: a one-line error
    for a cell without gates, a missing T_max, or a ``forget_bias`` that would set them too."""
    chrono = cfg.recurrent_init == "chrono"
    if chrono and cfg.cell == "rnn":
        raise UserError("model.recurrent_init chrono sets gate biases; model.cell rnn has no gates")
    if chrono and cfg.forget_bias is not None:
        raise UserError(
            "model.recurrent_init chrono sets the forget-gate bias itself; "
            "drop model.forget_bias or choose another recurrent_init"
        )
    if chrono and cfg.chrono_t_max is None:
        raise UserError(
            "model.recurrent_init chrono needs model.chrono_t_max, the longest dependency "
            "expected (e.g. data.sequence_length)"
        )
    if not chrono and cfg.chrono_t_max is not None:
        raise UserError("model.chrono_t_max applies to model.recurrent_init chrono only")


@torch.no_grad()
def initialize(model: nn.Module, cfg: ModelConfig) -> None:
    """Initialise a task model, in this order, each step leaving the earlier ones' targets alone:

    1. ``init_range`` r: every parameter from U(-r, r) (Zaremba et al. 2014); null keeps each
       module's own initialisation (torch's U(-1/sqrt(H), 1/sqrt(H)) for recurrent layers);
    2. the gate biases: ``forget_bias``, every LSTM layer's b_if = forget_bias, b_hf = 0
       (``cells.init_forget_bias``); or ``recurrent_init: chrono``, every LSTM's b_f and b_i
       and every GRU's b_z from ``chrono_t_max`` (``cells.init_chrono``);
    3. ``recurrent_init`` and ``recurrent_gain``: every layer's W_hh (``init_recurrent``;
       chrono keeps W_hh as it is, times the gain).

    Called last in each model's constructor; pretrained embeddings are copied in afterwards.
    """
    check_chrono(cfg)
    if cfg.init_range is not None:
        for p in model.parameters():
            nn.init.uniform_(p, -cfg.init_range, cfg.init_range)
    for layer in model.modules():
        if isinstance(layer, LSTM):
            layer.init_forget_bias()
        if isinstance(layer, (LSTM, GRU)) and cfg.recurrent_init == "chrono":
            for row in layer.cell_weights():
                for w in row:
                    init_chrono(w.bias_ih, w.bias_hh, cfg.cell, cfg.chrono_t_max)
        if isinstance(layer, (RNN, LSTM, GRU)):
            init_recurrent(layer, cfg.recurrent_init, cfg.recurrent_gain)


def init_recurrent(layer: nn.Module, kind: str, gain: float = 1.0) -> None:
    """Set every ``weight_hh`` of a layer, gate block by gate block (H, H): ``default`` (and
    ``chrono``, which sets biases instead) keeps the block as it is, times ``gain``;
    ``orthogonal`` draws a random orthogonal matrix (Saxe et al. 2014), ``identity`` is I (Le et
    al. 2015, with ReLU: the IRNN); both times ``gain``, which is then the block's spectral
    radius."""
    with torch.no_grad():
        for name, weight in layer.named_parameters():
            if not name.startswith("weight_hh"):
                continue
            for block in weight.split(layer.hidden_size):  # (kH, H) -> k views of (H, H)
                if kind == "orthogonal":
                    nn.init.orthogonal_(block)
                elif kind == "identity":
                    nn.init.eye_(block)
                block.mul_(gain)
