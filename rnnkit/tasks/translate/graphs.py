"""The ONNX graphs of a translate run: ``encoder.onnx``: source (B, S) int64, lengths (B,)
int64 -> keys (B, S, K), mask (B, S) bool [, projected (B, S, A): the keys' attention
projection], the decoder's first state h (L, B, Hd) [, c]; and ``decoder_step.onnx``: tokens
(B,) int64, h [, c] [, feed (B, Hd): h~_{t-1}, with input feeding], keys, mask [, projected]
-> log_probs (B, V), h [, c], feed (B, Hd): h~_t, attention (B, S).
``run.TranslationGraphs`` runs them."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from rnnkit.export.graphs import GraphSpec, Wrapper, example_tokens, is_lstm, state_names
from rnnkit.models.recurrent import state_from_parts, state_parts
from rnnkit.tasks.translate.model import Memory


class EncoderGraph(Wrapper):
    def forward(self, source: Tensor, lengths: Tensor) -> tuple[Tensor, ...]:
        memory, state = self.model.encode(source, lengths)
        projected = () if memory.projected is None else (memory.projected,)
        return (memory.keys, memory.mask, *projected, *state_parts(state))


class DecoderStepGraph(Wrapper):
    """One decoder step; the inputs are flat: tokens, the state's parts, [feed], keys, mask,
    [projected], as ``decoder_inputs`` names them."""

    def __init__(self, model: nn.Module, parts: int, feeding: bool, projected: bool) -> None:
        super().__init__(model)
        self.parts, self.feeding, self.projected = parts, feeding, projected

    def forward(self, tokens: Tensor, *rest: Tensor) -> tuple[Tensor, ...]:
        state, rest = rest[: self.parts], rest[self.parts :]
        feed, rest = (rest[0], rest[1:]) if self.feeding else (None, rest)
        keys, mask = rest[0], rest[1]
        memory = Memory(keys, mask, rest[2] if self.projected else None)
        decoder = self.model.decoder
        feed, state, weights = decoder.step(tokens, state_from_parts(state), feed, memory)
        log_probs = torch.log_softmax(decoder.logits(feed), dim=-1)
        return (log_probs, *state_parts(state), feed, weights)


def graph_specs(run: Any) -> list[GraphSpec]:
    source, lengths = example_tokens()
    return translate_specs(run.engine.model, source, lengths)


def translate_specs(model: nn.Module, source: Tensor, lengths: Tensor) -> list[GraphSpec]:
    decoder = model.decoder
    names = state_names(is_lstm(decoder.rnn))
    with torch.no_grad():
        memory, state = model.encode(source, lengths)
    projected = memory.projected is not None
    memory_names = ["keys", "mask"] + (["projected"] if projected else [])
    bs = {0: "B", 1: "S"}
    encoder = GraphSpec(
        "encoder.onnx", EncoderGraph(model), {"source": source, "lengths": lengths},
        [*memory_names, *names],
        {"source": bs, "lengths": {0: "B"}, **{n: bs for n in memory_names},
         **{n: {1: "B"} for n in names}},
    )  # fmt: skip
    step_inputs: dict[str, Tensor] = {"tokens": source[:, 0]}
    step_inputs |= dict(zip(names, state_parts(state), strict=True))
    if decoder.input_feeding:
        step_inputs["feed"] = torch.zeros(source.shape[0], decoder.rnn.hidden_size)
    step_inputs |= dict(zip(memory_names, [t for t in memory if t is not None], strict=True))
    outputs = ["log_probs", *[n + "_out" for n in names], "feed_out", "attention"]
    axes = {"tokens": {0: "B"}, **{n: {1: "B"} for n in names + [n + "_out" for n in names]},
            "feed": {0: "B"}, "feed_out": {0: "B"}, **{n: bs for n in memory_names},
            "log_probs": {0: "B"}, "attention": bs}  # fmt: skip
    step = GraphSpec(
        "decoder_step.onnx",
        DecoderStepGraph(model, len(names), decoder.input_feeding, projected),
        step_inputs,
        outputs,
        axes,
    )
    return [encoder, step]
