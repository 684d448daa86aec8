"""``linear(x, w) = x w^T``: the matrix products of the hand-written BPTT (``bptt.py``);
``affine(x, w, b)``, the same route with autograd (the explicit cells, attention, every
model's linear layers); and ``Linear``, a ``torch.nn.Linear`` that takes it.

On a CPU, torch's fp32 matmul runs in MKL, and torch's fused LSTM runs in oneDNN. On AMD CPUs
MKL takes its AVX2 code while oneDNN takes AVX-512: on the 2-core EPYC of
``benchmarks/RESULTS.md``, (3200, 512) x (512, 2048) ran at 206 GFLOP/s in MKL and 448 in
oneDNN, and a decoder step's (250, 512) x (512, 1536) at 81 and 224 (one thread). So on the
CPU, in fp32, ``linear`` calls oneDNN's inner product (the op torch's own compiler emits for CPU
linears, ``torch.ops.mkldnn._linear_pointwise``); elsewhere (CUDA, other dtypes, a build
without oneDNN) it is ``torch.nn.functional.linear``. Both are IEEE fp32; they differ in
summation order only (``tests/test_bptt.py`` compares them).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _onednn_linear_available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


ONEDNN = _onednn_linear_available()


def onednn_fp32(x: Tensor, w: Tensor) -> bool:
    """Whether ``x w^T`` goes to oneDNN: fp32 on the CPU, where torch has the op."""
    return ONEDNN and x.device.type == "cpu" and x.dtype == w.dtype == torch.float32


def linear(x: Tensor, w: Tensor) -> Tensor:
    """x (..., K), w (N, K) -> x w^T (..., N); either may be a strided view."""
    if onednn_fp32(x, w):
        return torch.ops.mkldnn._linear_pointwise(x, w, None, "none", [], "")
    return F.linear(x, w)


class _LinearFunction(torch.autograd.Function):
    """y = x W^T + b with every product through ``linear``: dx = dy W, dW = dy^T x, db = sum dy."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        y = linear(x, weight)
        return y if bias is None else y.add_(bias)

    @staticmethod
    def backward(ctx, dy):
        x, weight = ctx.saved_tensors
        need = ctx.needs_input_grad
        rows = dy.flatten(0, -2)  # (N, out)
        dx = linear(dy, weight.t()) if need[0] else None
        dw = linear(rows.t(), x.flatten(0, -2).t()) if need[1] else None
        db = rows.sum(0) if need[2] else None
        return dx, dw, db


def affine(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``torch.nn.functional.linear``: x (..., K), W (N, K), b (N,) -> x W^T + b (..., N),
    differentiable, its fp32 CPU products (forward and backward) through ``linear``. Under
    autocast, while tracing (ONNX export), on a GPU, in another dtype or for a weight that is
    not ``dense`` it is torch's own op."""
    own = (
        not onednn_fp32(x, weight)
        or not dense(weight)
        or torch.is_autocast_enabled("cpu")
        or torch.jit.is_tracing()
    )
    return F.linear(x, weight, bias) if own else _LinearFunction.apply(x, weight, bias)


def cast_once(weight: Tensor) -> Tensor:
    """A weight in the dtype its products run in: under autocast, its dtype, cast here. Autocast
    caches the cast of a parameter, but casts a derived tensor (a block of a weight, copied)
    again at every product; a tensor used at every time step is cast once this way."""
    device = weight.device.type
    if torch.is_autocast_enabled(device):
        return weight.to(torch.get_autocast_dtype(device))
    return weight


def dense(weight: Tensor) -> bool:
    """Whether a (N, K) weight is contiguous or a contiguous one transposed. oneDNN takes other
    strides too (a block of columns, W[:, :k]), but copies them through a slow generic path:
    (64, 512) x (512, 1536) with W a column block took 0.5 s, against 0.2 ms contiguous."""
    return weight.is_contiguous() or weight.t().is_contiguous()


class Linear(torch.nn.Linear):
    """``torch.nn.Linear`` through ``affine``. Same parameters, so ``load_state_dict`` and
    weight tying work as with torch's."""

    def forward(self, x: Tensor) -> Tensor:
        return affine(x, self.weight, self.bias)
