"""The array operations decoding needs, on torch tensors and on numpy arrays alike.

``search`` and the loaded runs (``api``) are written once against this small namespace, so
that the same search runs a PyTorch model (tensors, on any device) and an ONNX export in
onnxruntime (numpy arrays, with torch never imported)::

    xp = namespace(logits)            # TorchArrays on a tensor, NUMPY on an ndarray
    values, ids = xp.topk(logits, 5)  # (N, 5) each, best first

Every reduction is along the last axis. ``namespace`` imports torch only when handed a
tensor; an ndarray never pulls it in. Tests (``tests/test_arrays.py``, ``test_search.py``)
run every operation, and the whole search, on both and compare.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

Array = Any  # a torch.Tensor or a numpy.ndarray


class NumpyArrays:
    """numpy: what onnxruntime takes and returns. long is int64, float is float32."""

    name = "numpy"
    device = "cpu"
    dtypes = {"long": np.int64, "float": np.float32, "double": np.float64, "bool": np.bool_}

    def asarray(self, x: Any, dtype: str = "long") -> np.ndarray:
        return np.asarray(x, dtype=self.dtypes[dtype])

    def to_numpy(self, x: np.ndarray) -> np.ndarray:
        return x

    def no_grad(self) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def zeros(self, n: int, dtype: str = "long") -> np.ndarray:
        return self.asarray(np.zeros(n), dtype)

    def full(self, shape: tuple[int, ...], value: float) -> np.ndarray:
        return np.full(shape, value, dtype=np.float32)

    def full_like(self, x: np.ndarray, value: float) -> np.ndarray:
        return np.full_like(x, value)

    def where(self, condition: np.ndarray, value: float, x: np.ndarray) -> np.ndarray:
        return np.where(condition, np.asarray(value, dtype=x.dtype), x)

    def arange(self, n: int) -> np.ndarray:
        return np.arange(n, dtype=np.int64)

    def take(self, x: np.ndarray, index: np.ndarray, axis: int) -> np.ndarray:
        return np.take(x, index, axis=axis)

    def take_along(self, x: np.ndarray, index: np.ndarray) -> np.ndarray:
        return np.take_along_axis(x, index, axis=-1)

    def put_along(self, x: np.ndarray, index: np.ndarray, values: Any) -> np.ndarray:
        out = x.copy()
        np.put_along_axis(out, index, values, axis=-1)
        return out

    def topk(self, x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k largest of each row, best first: (values, indices), each (N, k)."""
        part = np.argpartition(-x, k - 1, axis=-1)[..., :k] if k < x.shape[-1] else None
        candidates = np.broadcast_to(np.arange(x.shape[-1]), x.shape) if part is None else part
        order = np.argsort(-np.take_along_axis(x, candidates, -1), axis=-1, kind="stable")
        ids = np.take_along_axis(candidates, order, -1)
        return np.take_along_axis(x, ids, -1), ids

    def sort_descending(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        order = np.argsort(-x, axis=-1, kind="stable")
        return np.take_along_axis(x, order, -1), order

    def argsort_stable(self, x: np.ndarray) -> np.ndarray:
        return np.argsort(x, axis=-1, kind="stable")

    def argmax(self, x: np.ndarray) -> np.ndarray:
        return x.argmax(-1)

    def max(self, x: np.ndarray) -> np.ndarray:
        return x.max(-1, keepdims=True)

    def softmax(self, x: np.ndarray) -> np.ndarray:
        e = np.exp(x - x.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    def log_softmax(self, x: np.ndarray) -> np.ndarray:
        """log softmax(x) = x - m - log sum exp(x - m), m = max x (float32)."""
        x = x.astype(np.float32, copy=False)
        shifted = x - x.max(-1, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))

    def cumsum(self, x: np.ndarray) -> np.ndarray:
        return x.astype(np.float64).cumsum(-1)

    def concat(self, xs: Sequence[np.ndarray], axis: int) -> np.ndarray:
        return np.concatenate(xs, axis=axis)

    def nonzero(self, x: np.ndarray) -> np.ndarray:
        return np.flatnonzero(x)

    def argwhere(self, x: np.ndarray) -> np.ndarray:
        return np.argwhere(x)

    def repeat(self, x: np.ndarray, k: int) -> np.ndarray:
        return np.repeat(x, k, axis=0)

    def add_at(self, x: np.ndarray, index: np.ndarray, values: np.ndarray) -> None:
        np.add.at(x, index, values)

    def broadcast(self, x: np.ndarray, n: int) -> np.ndarray:
        return np.broadcast_to(x, (n,))

    def minimum(self, x: np.ndarray, value: int) -> np.ndarray:
        return np.minimum(x, value)

    def tiny(self, x: np.ndarray) -> float:
        return float(np.finfo(x.dtype).tiny)


NUMPY = NumpyArrays()


class TorchArrays:
    """torch, on one device: what a PyTorch model takes and returns."""

    name = "torch"

    def __init__(self, device: Any = "cpu") -> None:
        import torch

        self.torch, self.device = torch, torch.device(device)
        self.dtypes = {
            "long": torch.long,
            "float": torch.float32,
            "double": torch.float64,
            "bool": torch.bool,
        }

    def asarray(self, x: Any, dtype: str = "long") -> Any:
        return self.torch.as_tensor(x, dtype=self.dtypes[dtype], device=self.device)

    def to_numpy(self, x: Any) -> np.ndarray:
        """On the CPU; bf16 and fp16 (which numpy lacks or computes slowly) as float32."""
        x = x.detach().cpu()
        return (x.float() if x.is_floating_point() else x).numpy()

    def no_grad(self) -> contextlib.AbstractContextManager:
        return self.torch.no_grad()

    def zeros(self, n: int, dtype: str = "long") -> Any:
        return self.torch.zeros(n, dtype=self.dtypes[dtype], device=self.device)

    def full(self, shape: tuple[int, ...], value: float) -> Any:
        return self.torch.full(shape, value, device=self.device)

    def full_like(self, x: Any, value: float) -> Any:
        return self.torch.full_like(x, value)

    def where(self, condition: Any, value: float, x: Any) -> Any:
        return x.masked_fill(condition, value)

    def arange(self, n: int) -> Any:
        return self.torch.arange(n, device=self.device)

    def take(self, x: Any, index: Any, axis: int) -> Any:
        return x.index_select(axis, index)

    def take_along(self, x: Any, index: Any) -> Any:
        return x.gather(-1, index)

    def put_along(self, x: Any, index: Any, values: Any) -> Any:
        return x.scatter(-1, index, values)

    def topk(self, x: Any, k: int) -> tuple[Any, Any]:
        return x.topk(k, dim=-1)

    def sort_descending(self, x: Any) -> tuple[Any, Any]:
        return x.sort(dim=-1, descending=True, stable=True)

    def argsort_stable(self, x: Any) -> Any:
        return x.argsort(dim=-1, stable=True)

    def argmax(self, x: Any) -> Any:
        return x.argmax(dim=-1)

    def max(self, x: Any) -> Any:
        return x.max(dim=-1, keepdim=True).values

    def softmax(self, x: Any) -> Any:
        return x.softmax(dim=-1)

    def log_softmax(self, x: Any) -> Any:
        return x.float().log_softmax(dim=-1)

    def cumsum(self, x: Any) -> Any:
        return x.double().cumsum(dim=-1)

    def concat(self, xs: Sequence[Any], axis: int) -> Any:
        return self.torch.cat(list(xs), dim=axis)

    def nonzero(self, x: Any) -> Any:
        return x.nonzero().flatten()

    def argwhere(self, x: Any) -> Any:
        return x.nonzero()

    def repeat(self, x: Any, k: int) -> Any:
        return x.repeat_interleave(k, dim=0)

    def add_at(self, x: Any, index: Any, values: Any) -> None:
        x.index_add_(0, index, values)

    def broadcast(self, x: Any, n: int) -> Any:
        return x.expand(n)

    def minimum(self, x: Any, value: int) -> Any:
        return x.clamp(max=value)

    def tiny(self, x: Any) -> float:
        return self.torch.finfo(x.dtype).tiny


@functools.cache
def torch_arrays(device: Any) -> TorchArrays:
    """One ``TorchArrays`` per device: the search asks for it at every step."""
    return TorchArrays(device)


def namespace(x: Array) -> NumpyArrays | TorchArrays:
    """The operations for ``x``'s kind of array (and, for a tensor, its device)."""
    if isinstance(x, np.ndarray):
        return NUMPY
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(x, torch.Tensor):
        return torch_arrays(x.device)
    raise TypeError(f"an array is a numpy.ndarray or a torch.Tensor, not {type(x).__name__}")
