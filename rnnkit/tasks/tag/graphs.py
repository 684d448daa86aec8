"""The ONNX graph of a tag run, ``tagger.onnx``: words (B, T), lengths (B,) [, chars (U, W),
char_lengths (U,), char_index (B, T): the spelling of each distinct word, with character
features] -> logits (B, T, K). ``run.TaggerGraphs`` runs it."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from rnnkit.export.graphs import BT, GraphSpec, Wrapper, example_tokens
from rnnkit.tasks.tag.model import CharBatch


class TaggerGraph(Wrapper):
    def forward(self, words: Tensor, lengths: Tensor, *chars: Tensor) -> Tensor:
        return self.model(words, lengths, CharBatch(*chars) if chars else None)


def graph_specs(run: Any) -> list[GraphSpec]:
    model = run.engine.model
    tokens, lengths = example_tokens()
    inputs = {"words": tokens, "lengths": lengths}
    axes = {"words": BT, "lengths": {0: "B"}, "logits": BT}
    if model.char_features:
        inputs |= {"chars": torch.full((4, 5), 3), "char_lengths": torch.tensor([5, 1, 2, 3]),
                   "char_index": torch.tensor([[0, 1, 2], [3, 0, 1]])}  # fmt: skip
        axes |= {"chars": {0: "U", 1: "W"}, "char_lengths": {0: "U"}, "char_index": BT}
    return [GraphSpec("tagger.onnx", TaggerGraph(model), inputs, ["logits"], axes)]
