"""The ONNX graph of an lm run, ``lm.onnx``: tokens (B, T) int64, lengths (B,) int64,
h (L, B, H) [, c] -> logits (B, T, V), h [, c]. The same graph reads a prompt (T tokens) and
takes single steps (T = 1); ``run.LanguageModelGraphs`` runs it."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from rnnkit.export.graphs import BT, GraphSpec, Wrapper, example_tokens, is_lstm, state_names
from rnnkit.models.recurrent import state_from_parts, state_parts


class LanguageModelGraph(Wrapper):
    def forward(self, tokens: Tensor, lengths: Tensor, *state: Tensor) -> tuple[Tensor, ...]:
        logits, state = self.model(tokens, state_from_parts(state), lengths=lengths)
        return (logits, *state_parts(state))


def graph_specs(run: Any) -> list[GraphSpec]:
    model = run.engine.model
    tokens, lengths = example_tokens()
    layer = model.rnn
    names = state_names(is_lstm(layer))
    states = {n: torch.zeros(layer.num_layers, 2, layer.hidden_size) for n in names}
    outputs = [n + "_out" for n in names]
    return [GraphSpec(
        "lm.onnx", LanguageModelGraph(model), {"tokens": tokens, "lengths": lengths, **states},
        ["logits", *outputs],
        {"tokens": BT, "lengths": {0: "B"}, "logits": BT,
         **{n: {1: "B"} for n in names + outputs}},
    )]  # fmt: skip
