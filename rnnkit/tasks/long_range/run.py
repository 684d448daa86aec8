"""A loaded adding or copy run: ``evaluate`` on its held-out sequences (there is no text to
predict from)."""

from __future__ import annotations

from typing import Any

from rnnkit.errors import UserError
from rnnkit.tasks.loaded import LoadedRun


class LongRangeRun(LoadedRun):
    """``rnnkit.load`` of an adding or copy run."""

    def evaluate(self, split: str = "test", data: Any = None) -> dict[str, float]:
        """adding: the MSE; copy: loss and recall accuracy, on the valid or test sequences."""
        if data is not None:
            raise UserError(f"{self.path}: a {self.task} run generates its data; use --split")
        kind = self.spec.trainer_side()
        splits = kind.read_data(self.cfg)
        return kind.training_task(self.cfg, None, self.engine.model, splits, self.device).score(
            splits[split]
        )
