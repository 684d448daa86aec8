"""The array operations decoding needs, on torch tensors and on numpy arrays alike.

``search`` and the loaded runs (``api``) are written once against this small namespace, so
that the same search runs a PyTorch model (tensors, on any device) and an ONNX export in
onnxruntime (numpy arrays, with torch never imported)::

    xp = namespace(logits)            # TorchArrays on a tensor, NUMPY on an ndarray
    values, ids = xp.topk(logits, 5)  # (N, 5) each, best first

Every reduction is along the last axis. ``TorchArrays`` lives in ``torch_arrays.py``, which
``namespace`` imports (by name) only when handed a tensor: an ndarray never pulls torch in.
Tests (``tests/test_arrays.py``, ``test_search.py``)
run every operation, and the whole search, on both and compare.
"""

from __future__ import annotations

import contextlib
import importlib
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


def namespace(x: Array) -> Any:
    """The operations for ``x``'s kind of array (and, for a tensor, its device)."""
    if isinstance(x, np.ndarray):
        return NUMPY
    torch = sys.modules.get("torch")  # a tensor exists only once torch is imported
    if torch is not None and isinstance(x, torch.Tensor):
        return importlib.import_module("rnnkit.decoding.torch_arrays").torch_arrays(x.device)
    raise TypeError(f"an array is a numpy.ndarray or a torch.Tensor, not {type(x).__name__}")
