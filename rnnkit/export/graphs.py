"""What a task's ONNX graphs are made of (``tasks/<task>/graphs.py`` builds them): a
``GraphSpec`` per graph (module, example inputs, names, free dimensions), the ``Wrapper`` whose
forward a graph traces, and the helpers every task's graphs share. ``onnx_export`` traces them.

Every tensor is batch-first; B, T and S are free (any batch, any length).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn


@dataclasses.dataclass
class GraphSpec:
    """One graph to export: the module, example inputs, and the names of its inputs, outputs
    and free dimensions (``{name: {axis: "B"}}``)."""

    file: str
    module: nn.Module
    inputs: dict[str, Tensor]
    outputs: list[str]
    axes: dict[str, dict[int, str]]


def state_names(lstm: bool) -> list[str]:
    return ["h", "c"] if lstm else ["h"]


class Wrapper(nn.Module):
    """A graph's forward around a model that it holds without registering it: the tracer then
    writes the weights as constants (as a registered submodule, its parameters would meet the
    native ops' symbolic function inside the trace, which torch 2.13's tracer cannot take)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.__dict__["model"] = model


def example_tokens(batch: int = 2, steps: int = 3) -> tuple[Tensor, Tensor]:
    """Ids (B, T) and ragged lengths (B,): any values; the graphs take any B and T."""
    return torch.full((batch, steps), 3, dtype=torch.long), torch.tensor([steps, steps - 1])


def is_lstm(layer: nn.Module) -> bool:
    return isinstance(layer, nn.LSTM)


BT = {0: "B", 1: "T"}  # a (B, T) tensor's free dimensions
