"""rnnkit.training: ``train(cfg)`` (``run.py``), the training loop (``trainer.py``) and running
it on several processes (``distributed.py``)."""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    # ``from rnnkit.training import train`` without importing torch and every task up front
    # (the tasks import this package's trainer).
    if name == "train":
        from .run import train

        return train
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
