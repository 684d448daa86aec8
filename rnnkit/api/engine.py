"""The engine of a loaded run: what runs its model. ``TorchEngine`` runs the PyTorch model;
another runtime (an exported graph) can take its place by offering the same calls.

The calls, each on tensors with the batch first (B rows):

- lm:        ``lm(tokens (B, T), lengths (B,) | None, state) -> logits (B, T, V), state``
- translate: ``start(source (B, S), lengths (B,), bos) -> first logits (B, V), state`` and
             ``search_step(tokens (B,), state) -> logits (B, V), state`` (``search.beam_search``'s
             step), ``attention(source, lengths, target_in) -> weights (B, T, S)``
- classify:  ``classify(tokens (B, T), lengths (B,)) -> logits (B, C)``
- tag:       ``tag(words (B, T), lengths (B,), chars) -> logits (B, T, K)``
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn


class TorchEngine:
    """A model in eval mode on a device; every call runs under ``torch.inference_mode``."""

    def __init__(self, model: nn.Module, device: torch.device) -> None:
        self.model, self.device = model.to(device).eval(), device

    def parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    @torch.inference_mode()
    def lm(self, tokens: Tensor, lengths: Tensor | None, state: Any) -> tuple[Tensor, Any]:
        return self.model(tokens, state, lengths=lengths)

    @torch.inference_mode()
    def start(self, source: Tensor, lengths: Tensor, bos: int) -> tuple[Tensor, Any]:
        return self.model.start(source, lengths, bos)

    @torch.inference_mode()
    def search_step(self, tokens: Tensor, state: Any) -> tuple[Tensor, Any]:
        return self.model.search_step(tokens, state)

    @torch.inference_mode()
    def attention(self, source: Tensor, lengths: Tensor, target_in: Tensor) -> Tensor:
        return self.model(source, lengths, target_in)[1]

    @torch.inference_mode()
    def classify(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        return self.model(tokens, lengths)

    @torch.inference_mode()
    def tag(self, words: Tensor, lengths: Tensor, chars: Any) -> Tensor:
        return self.model(words, lengths, chars)
