"""``TorchArrays``: the array operations of ``arrays`` on torch tensors, on one device (what a
PyTorch model takes and returns)."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch


class TorchArrays:
    """torch, on one device: what a PyTorch model takes and returns."""

    name = "torch"

    def __init__(self, device: Any = "cpu") -> None:
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
