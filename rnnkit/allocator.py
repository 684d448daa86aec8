"""Keeping freed tensor memory in the process: two settings of glibc's allocator.

glibc's malloc serves a block above ``M_MMAP_THRESHOLD`` (128 KiB at first, raised as such
blocks are freed, up to 32 MiB) with freshly mapped pages, and hands heap space back to the
kernel once more than ``M_TRIM_THRESHOLD`` lies free at its top. A training or decoding step
allocates and frees tensors of several MB (the PTB LM's logits, 400 x 10,000 fp32, are 16 MB;
a beam's attention scores (250, 28, 512) fp32, 14 MB), so each step faults those pages in
again, and the kernel zero-fills every one. On the 2-core EPYC of ``benchmarks/RESULTS.md`` a
bf16 PTB LM step took 35.5 ms, with a third of the CPU time in the kernel; with the settings
below, 20.3 ms.

``retain_freed_memory`` sets ``M_MMAP_THRESHOLD`` to its maximum (32 MiB) and
``M_TRIM_THRESHOLD`` to 1 GiB, so that freed blocks stay in the heap for the next step. The
price is that the process keeps the heap it has grown (its resident size stays near its peak).
``rnnkit.load`` and the trainer call it; it does nothing where the user has set glibc's
``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` (or ``GLIBC_TUNABLES``) themselves, or
where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import platform

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's largest (DEFAULT_MMAP_THRESHOLD_MAX, 64-bit)
TRIM_THRESHOLD = 1024 * 1024 * 1024
USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")


def environment() -> dict[str, str]:
    """The same two settings as glibc's environment variables, for another process (a peer's,
    in a benchmark: the ratio then measures the code, not the allocator)."""
    return {
        "MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD),
        "MALLOC_TRIM_THRESHOLD_": str(TRIM_THRESHOLD),
    }


@functools.cache
def retain_freed_memory() -> bool:
    """Set the two thresholds once per process; True if they were set."""
    if platform.libc_ver()[0] != "glibc" or any(name in os.environ for name in USER_SETTINGS):
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    return bool(
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
