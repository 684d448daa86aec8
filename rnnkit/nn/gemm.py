"""``linear(x, w) = x w^T``: the matrix products of the hand-written BPTT (``bptt.py``), and
``Linear``, a ``torch.nn.Linear`` that takes the same route (the models' output layers).

On a CPU, torch's fp32 matmul runs in MKL, and torch's fused LSTM runs in oneDNN. On AMD CPUs
MKL takes its AVX2 code while oneDNN takes AVX-512: on the 2-core EPYC of
``benchmarks/RESULTS.md``, (3200, 512) x (512, 2048) ran at 206 GFLOP/s in MKL and 448 in
oneDNN. So on the CPU, in fp32, ``linear`` calls oneDNN's inner product (the op torch's own
compiler emits for CPU linears, ``torch.ops.mkldnn._linear_pointwise``); elsewhere (CUDA, other
dtypes, a build without oneDNN) it is ``torch.nn.functional.linear``. Both are IEEE fp32; they
differ in summation order only (``tests/test_bptt.py`` compares them).
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


class Linear(torch.nn.Linear):
    """``torch.nn.Linear`` whose fp32 CPU products, forward and backward, run in oneDNN
    (``linear``); under autocast, on a GPU or in another dtype it is torch.nn.Linear's own.
    Same parameters, so ``load_state_dict`` and weight tying work as with torch's."""

    def forward(self, x: Tensor) -> Tensor:
        own = not onednn_fp32(x, self.weight) or torch.is_autocast_enabled("cpu")
        if own or torch.jit.is_tracing():  # autocast and tracing want torch's op
            return F.linear(x, self.weight, self.bias)
        return _LinearFunction.apply(x, self.weight, self.bias)
