"""The engine of a loaded run: what runs its model. ``TorchEngine`` runs the PyTorch model;
another runtime (an exported graph) can take its place by offering the same calls.

The calls, each on arrays with the batch first (B rows). An engine takes numpy arrays (what
the loaded runs build from text) or its own arrays (what the search feeds back), returns its
own, and names their operations ``xp`` (``arrays``): torch tensors on the model's device
here, numpy arrays in ``onnx_engine.OnnxEngine``.

- lm:        ``lm(tokens (B, T), lengths (B,) | None, state) -> logits (B, T, V), state``
- translate: ``start(source (B, S), lengths (B,), bos) -> first logits (B, V), state`` and
             ``search_step(tokens (B,), state) -> logits (B, V), state`` (``search.beam_search``'s
             step), ``attention(source, lengths, target_in) -> weights (B, T, S)``
- classify:  ``classify(tokens (B, T), lengths (B,)) -> logits (B, C)``
- tag:       ``tag(words (B, T), lengths (B,), chars: CharIds | None) -> logits (B, T, K)``
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..arrays import TorchArrays
from ..errors import UserError
from ..models.tagger import CharBatch
from ..training.trainer import PRECISION_DTYPES, effective_precision


def weight_dtype(precision: str, device: torch.device) -> torch.dtype:
    """The dtype of a loaded model's weights for ``precision`` (``trainer.effective_precision``:
    bf16 on a CPU without native bf16 says so and stays fp32; fp16 needs a GPU)."""
    if precision not in PRECISION_DTYPES:
        raise UserError(f"precision: one of {', '.join(PRECISION_DTYPES)}, not {precision!r}")
    return PRECISION_DTYPES[effective_precision(precision, device, "precision", "decoding")]


class TorchEngine:
    """A model in eval mode on a device, its weights in ``dtype`` (``weight_dtype``); every
    call runs under ``torch.inference_mode``. Logits come in that dtype; the search and the
    loaded runs compute probabilities from them in fp32."""

    def __init__(
        self, model: nn.Module, device: torch.device, dtype: torch.dtype = torch.float32
    ) -> None:
        self.model, self.device = model.to(device=device, dtype=dtype).eval(), device
        self.xp = TorchArrays(device)

    def ids(self, x: Any) -> Tensor:
        """Token ids or lengths (numpy or a tensor) -> a long tensor on the device."""
        return self.xp.asarray(x)

    def parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    @torch.inference_mode()
    def lm(self, tokens: Any, lengths: Any | None, state: Any) -> tuple[Tensor, Any]:
        lengths = None if lengths is None else self.ids(lengths)
        return self.model(self.ids(tokens), state, lengths=lengths)

    @torch.inference_mode()
    def start(self, source: Any, lengths: Any, bos: int) -> tuple[Tensor, Any]:
        return self.model.start(self.ids(source), self.ids(lengths), bos)

    @torch.inference_mode()
    def search_step(self, tokens: Tensor, state: Any) -> tuple[Tensor, Any]:
        return self.model.search_step(tokens, state)

    @torch.inference_mode()
    def attention(self, source: Any, lengths: Any, target_in: Any) -> Tensor:
        return self.model(self.ids(source), self.ids(lengths), self.ids(target_in))[1]

    @torch.inference_mode()
    def classify(self, tokens: Any, lengths: Any) -> Tensor:
        return self.model(self.ids(tokens), self.ids(lengths))

    @torch.inference_mode()
    def tag(self, words: Any, lengths: Any, chars: Any) -> Tensor:
        chars = None if chars is None else CharBatch(*(self.ids(x) for x in chars))
        return self.model(self.ids(words), self.ids(lengths), chars)
