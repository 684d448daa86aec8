"""A loaded adding or copy run: ``evaluate`` on its held-out sequences (there is no text to
predict from)."""

from __future__ import annotations

from typing import Any

from ..errors import UserError
from .base import LoadedRun


class LongRangeRun(LoadedRun):
    """``rnnkit.load`` of an adding or copy run."""

    tasks = ("adding", "copy")

    def evaluate(self, split: str = "test", data: Any = None) -> dict[str, float]:
        """adding: the MSE; copy: loss and recall accuracy, on the valid or test sequences."""
        if data is not None:
            raise UserError(f"{self.path}: a {self.task} run generates its data; use --split")
        from ..tasks import TASKS
        from ..tasks.long_range import LongRangeTask

        kind = TASKS[self.task]
        splits = kind.read_data(self.cfg)
        task = LongRangeTask(kind, self.cfg, self.engine.model, splits, self.device)
        return task.score(splits[split])
