"""Where a model runs and in which precision, for training and decoding alike.

``select_device("auto")`` picks this process's GPU when CUDA is there, else the CPU;
``effective_precision`` is a precision as that device runs it (fp16 needs a GPU; bf16 on a CPU
without native bf16 says so and runs fp32); ``autocast`` is its autocast context.
"""

from __future__ import annotations

import contextlib
import sys

import torch

from rnnkit.errors import UserError
from rnnkit.nn.layers import cpu_has_bf16

# train.precision (fp16 on CUDA only), and a loaded run's weights (rnnkit.load(precision=))
PRECISION_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def select_device(spec: str, local_rank: int = 0) -> torch.device:
    """``auto``: this rank's GPU when CUDA is there, else the CPU."""
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(spec)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"train.device: {spec} asked for, but CUDA is not available")
        if device.index is None:
            device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    return device


def effective_precision(
    precision: str, device: torch.device, key: str = "train.precision", doing: str = "training"
) -> str:
    """``precision`` as this device runs it, for training and for decoding alike: fp16 needs a
    GPU; bf16 on a CPU without native bf16 says so once and runs fp32 (emulated bf16 is about
    15x slower). ``key`` and ``doing`` word the messages."""
    if precision == "fp16" and device.type != "cuda":
        raise UserError(f"{key}: fp16 needs a CUDA device; use bf16 on the CPU")
    if precision == "bf16" and device.type == "cpu" and not cpu_has_bf16():
        print(f"rnnkit: this CPU has no native bf16 (oneDNN); {doing} in fp32", file=sys.stderr)
        return "fp32"
    return precision


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The autocast of an ``effective_precision`` (fp32: none)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=PRECISION_DTYPES[precision])
