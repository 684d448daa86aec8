"""rnnkit.allocator: freed tensor-sized blocks stay in the heap (glibc), and user settings win."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

# In a fresh interpreter: allocate and free a 16 MB tensor, then report how many bytes of free
# space the heap holds (glibc's mallinfo2().fordblks). A block served by mmap leaves none.
PROBE = """
import ctypes, ctypes.util, sys
from rnnkit.allocator import retain_freed_memory
import torch

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.mallinfo2.restype = MallInfo2
was_set = retain_freed_memory() if sys.argv[1] == "on" else None
x = torch.empty(4 * 1024 * 1024)  # 16 MB
x.fill_(1.0)
del x
print(was_set, libc.mallinfo2().fordblks)
"""

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's malloc"
)


def probe(mode: str, **env: str) -> tuple[str, int]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    environment.pop("GLIBC_TUNABLES", None)
    result = subprocess.run(
        [sys.executable, "-c", PROBE, mode],
        capture_output=True, text=True, check=True, env={**environment, **env},
    )  # fmt: skip
    was_set, free = result.stdout.split()
    return was_set, int(free)


def test_a_freed_16_mb_tensor_stays_in_the_heap():
    was_set, kept = probe("on")
    _, default = probe("off")
    assert was_set == "True"
    assert kept >= 16 * 1024 * 1024 > default


def test_the_users_own_malloc_settings_are_left_alone():
    was_set, kept = probe("on", MALLOC_TRIM_THRESHOLD_="131072")
    assert was_set == "False" and kept < 16 * 1024 * 1024
