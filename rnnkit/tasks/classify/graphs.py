"""The ONNX graph of a classify run, ``classifier.onnx``: tokens (B, T), lengths (B,) ->
logits (B, C). ``run.ClassifierGraphs`` runs it."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from rnnkit.export.graphs import BT, GraphSpec, Wrapper, example_tokens


class ClassifierGraph(Wrapper):
    def forward(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        return self.model(tokens, lengths)


def graph_specs(run: Any) -> list[GraphSpec]:
    tokens, lengths = example_tokens()
    return [GraphSpec("classifier.onnx", ClassifierGraph(run.engine.model),
                      {"tokens": tokens, "lengths": lengths}, ["logits"],
                      {"tokens": BT, "lengths": {0: "B"}, "logits": {0: "B"}})]  # fmt: skip
