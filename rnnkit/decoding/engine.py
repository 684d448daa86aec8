"""The engine of a loaded run: what runs its model. ``TorchEngine`` runs the PyTorch model;
another runtime (``onnx_engine.OnnxEngine``, an exported graph) can take its place.

A loaded run (``tasks/<task>/run.py``) builds numpy arrays from text and calls its model's
methods through ``engine.call("method", *arrays)``: here that is ``model.method`` on tensors
on the model's device, under ``torch.inference_mode``. Arrays come back as the engine's own
(torch tensors here, numpy in ``OnnxEngine``), whose operations ``engine.xp`` names
(``arrays``), so the search feeds them back without copies.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from rnnkit.decoding.torch_arrays import TorchArrays
from rnnkit.errors import UserError
from rnnkit.nn.device import PRECISION_DTYPES, effective_precision


def weight_dtype(precision: str, device: torch.device) -> torch.dtype:
    """The dtype of a loaded model's weights for ``precision`` (``device.effective_precision``:
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

    def parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def tensors(self, value: Any) -> Any:
        """Numpy arrays (token ids, lengths), also inside tuples, as tensors on the device."""
        if isinstance(value, np.ndarray):
            return self.xp.asarray(value)
        if isinstance(value, tuple) and hasattr(value, "_fields"):  # a NamedTuple of arrays
            return type(value)(*(self.tensors(v) for v in value))
        return value

    @torch.inference_mode()
    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """``model.method(*args, **kwargs)`` with numpy arguments on the device."""
        args = tuple(self.tensors(a) for a in args)
        kwargs = {k: self.tensors(v) for k, v in kwargs.items()}
        return getattr(self.model, method)(*args, **kwargs)
