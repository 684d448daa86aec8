"""One line naming the machine a benchmark ran on, printed above every table: the processor or
GPU, the CPU's kernel capability, whether oneDNN has native bf16, torch and its thread count."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch


def cpu_name() -> str:
    """The processor's model name from /proc/cpuinfo where there is one (Linux)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def describe(device: torch.device | str = "cpu") -> str:
    device = torch.device(device)
    if device.type == "cuda":
        where = f"{torch.cuda.get_device_name(device)}, CUDA {torch.version.cuda}"
    else:
        where = (
            f"{cpu_name()}, {os.cpu_count()} cores, CPU capability "
            f"{torch.backends.cpu.get_cpu_capability()}, oneDNN bf16 "
            f"{'yes' if torch.ops.mkldnn._is_mkldnn_bf16_supported() else 'no'}"
        )
    return f"{where}; torch {torch.__version__}, {torch.get_num_threads()} threads"
