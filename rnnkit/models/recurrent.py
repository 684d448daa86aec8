"""The recurrent layer a config asks for: ``model.cell`` and its variant keys -> rnnkit.nn layer."""

from __future__ import annotations

import torch
from torch import nn

from ..config import ModelConfig
from ..nn import GRU, LSTM, RNN


def build_recurrent(
    cfg: ModelConfig,
    input_size: int,
    *,
    hidden_size: int | None = None,
    bidirectional: bool = False,
    batch_first: bool = True,
) -> nn.Module:
    """A stacked ``rnnkit.nn`` layer: ``cfg.num_layers`` x ``hidden_size`` (default
    ``cfg.hidden_size``), dropout ``cfg.dropout`` between layers, and only the variant keys
    that belong to ``cfg.cell``."""
    hidden_size = hidden_size or cfg.hidden_size
    common = dict(
        num_layers=cfg.num_layers,
        batch_first=batch_first,
        bidirectional=bidirectional,
        dropout=cfg.dropout if cfg.num_layers > 1 else 0.0,
        fused=cfg.fused,
    )
    if cfg.cell == "rnn":
        return RNN(input_size, hidden_size, nonlinearity=cfg.nonlinearity, **common)
    if cfg.cell == "lstm":
        return LSTM(
            input_size, hidden_size, peephole=cfg.peephole, forget_bias=cfg.forget_bias, **common
        )
    return GRU(input_size, hidden_size, reset=cfg.reset, gate=cfg.gate, **common)


def init_recurrent(layer: nn.Module, kind: str, gain: float = 1.0) -> None:
    """Set every ``weight_hh`` of a layer, gate block by gate block (H, H): ``default`` keeps
    torch's U(-1/sqrt(H), 1/sqrt(H)) scaled by ``gain``; ``orthogonal`` draws a random orthogonal
    matrix (Saxe et al. 2014), ``identity`` is I (Le et al. 2015, with ReLU: the IRNN); both
    times ``gain``, which is then the block's spectral radius."""
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
