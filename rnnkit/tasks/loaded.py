"""What every loaded run has: its directory, config, vocabularies and engine, a description
(for ``rnnkit serve``'s model list), and ``evaluate``."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from rnnkit.errors import UserError

T = TypeVar("T")


def per_input(value: T | Sequence[T], inputs: int, name: str) -> list[T]:
    """A setting for every input: one value for all, or a list with one per input."""
    if isinstance(value, (list, tuple)):
        if len(value) != inputs:
            raise UserError(f"{name}: {len(value)} values for {inputs} inputs")
        return list(value)
    return [value] * inputs


def deadline_after(time_limit: float | None) -> float | None:
    """The ``time.monotonic()`` at which ``time_limit`` seconds from now end (None: never)."""
    if time_limit is None:
        return None
    if not time_limit > 0:
        raise UserError(f"time_limit: must be > 0 seconds, got {time_limit}")
    return time.monotonic() + time_limit


def labelled_examples(run: LoadedRun, split: str, data: str | Path | None, read) -> tuple:
    """The examples a classifier or tagger scores: a labelled file (``read(cfg, path)``), or a
    split of the run's own data."""
    if data is not None:
        return read(run.cfg, data), str(data)
    splits = run.spec.trainer_side().read_data(run.cfg)  # read as training reads them
    if split not in splits:
        raise UserError(f"{run.path}: the run has no {split} data; pass --data FILE")
    return splits[split], str(getattr(run.cfg.data, split) or run.cfg.data.train)


class LoadedRun:
    """A trained run, ready to use (``rnnkit.load``): its task (``spec``, a ``base.Task``), its
    directory, config, vocabularies and engine. Subclasses add the task's own methods, and the
    ``graphs`` class by which an export's ONNX graphs stand in for the model
    (``decoding.onnx_engine``)."""

    graphs: Any = None

    @staticmethod
    def load_vocabularies(directory: Path) -> Any:
        """The vocabularies a run (or an export) keeps in ``directory``; None: it has none."""
        return None

    def __init__(self, spec: Any, path: Path, cfg: Any, vocabularies: Any, engine: Any) -> None:
        self.spec, self.path, self.cfg = spec, Path(path), cfg
        self.vocabularies, self.engine = vocabularies, engine

    @property
    def task(self) -> str:
        return self.cfg.task

    @property
    def device(self) -> Any:
        return self.engine.device

    def vocabulary_sizes(self) -> dict[str, int]:
        return {}

    def describe(self) -> dict[str, Any]:
        """The task, the cell and the sizes: what a user choosing among runs wants to see."""
        model = self.cfg.model
        return {
            "task": self.task,
            "cell": model.cell,
            "num_layers": model.num_layers,
            "hidden_size": model.hidden_size,
            "embedding_size": model.embedding_size,
            "parameters": self.engine.parameters(),
            "vocabulary_sizes": self.vocabulary_sizes(),
        }

    def evaluate(self, split: str = "test", **options: Any) -> dict[str, Any]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path} ({self.task}, {self.cfg.model.cell})>"
