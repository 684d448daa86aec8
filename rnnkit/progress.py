"""Progress bars for long work (translating, scoring or labelling a file, sampling many texts):
tqdm on stderr, so that stdout stays the result.

A bar is drawn only where the CLI turned bars on (``enable(True)``; ``rnnkit --quiet`` leaves
them off) and stderr is a terminal (tqdm's ``disable=None``). The Python API draws none unless
asked: ``rnnkit.progress.enable(True)``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")
_enabled = False


def enable(on: bool) -> None:
    global _enabled
    _enabled = on


def progress(items: Iterable[T], *, total: int | None = None, desc: str = "") -> Iterator[T]:
    """``items``, drawing a bar of ``total`` steps while they are consumed."""
    return iter(
        tqdm(
            items,
            total=total,
            desc=desc,
            disable=None if _enabled else True,
            leave=False,
            file=sys.stderr,
        )
    )
