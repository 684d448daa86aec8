"""What every loaded run has: its directory, config, vocabularies and engine, a description
(for ``rnnkit serve``'s model list), and ``evaluate``."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class LoadedRun:
    """A trained run, ready to use (``rnnkit.load``). Subclasses add the task's own methods."""

    def __init__(self, path: Path, cfg: Any, vocabularies: Any, engine: Any) -> None:
        self.path, self.cfg, self.vocabularies, self.engine = Path(path), cfg, vocabularies, engine

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
