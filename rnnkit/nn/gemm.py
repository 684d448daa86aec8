"""``linear(x, w) = x w^T``: the matrix products of the hand-written BPTT (``bptt.py``).

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


def linear(x: Tensor, w: Tensor) -> Tensor:
    """x (..., K), w (N, K) -> x w^T (..., N); either may be a strided view."""
    if ONEDNN and x.device.type == "cpu" and x.dtype == w.dtype == torch.float32:
        return torch.ops.mkldnn._linear_pointwise(x, w, None, "none", [], "")
    return F.linear(x, w)
