"""The adding problem and the copy task as training tasks (``task: adding`` / ``task: copy``).

Training sequences are generated afresh for every batch (batch k of epoch e is a pure function
of ``seed``, e, k and the rank), so there is no training file and no overfitting; validation
and test sets are fixed held-out draws of ``data.valid_size`` / ``data.test_size`` sequences.

adding: loss = squared error of the answer, averaged over sequences (the MSE).
copy:   loss = cross-entropy per step over all T + 20 steps; ``accuracy`` counts the 10
        recalled symbols.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.config import Config
from rnnkit.tasks.long_range.data import (
    COPY_LENGTH,
    COPY_SYMBOLS,
    adding_problem,
    copy_task,
    generator,
)
from rnnkit.tasks.long_range.model import LongRangeModel
from rnnkit.tasks.trainable import TaskTraining, evaluating
from rnnkit.training.distributed import SINGLE_PROCESS, Distributed
from rnnkit.training.trainer import StatelessTask

Batch = tuple[Tensor, Tensor]
HELD_OUT = 2**40  # generator indices of the valid and test sets: never a training batch's


class LongRangeTask(StatelessTask):
    """The trainer's view of the adding and copy tasks (see ``trainer.TrainingTask``)."""

    best_metric, higher_is_better = "loss", False

    def __init__(
        self,
        kind: LongRange,
        cfg: Config,
        model: LongRangeModel,
        data: dict[str, Batch],
        device: torch.device,
        env: Distributed = SINGLE_PROCESS,
    ) -> None:
        self.kind, self.cfg, self.model, self.data, self.device, self.env = (
            kind,
            cfg,
            model.to(device),
            data,
            device,
            env,
        )
        self.rows = max(1, cfg.data.batch_size // env.world_size)

    def num_batches(self) -> int:
        return max(1, self.cfg.data.train_size // self.cfg.data.batch_size)

    def batch_loss(self, model: nn.Module, epoch: int, k: int) -> tuple[Tensor, int, int]:
        index = (epoch * self.num_batches() + k) * self.env.world_size + self.env.rank
        inputs, targets = (
            t.to(self.device) for t in self.kind.draw(self.cfg, self.rows, self.cfg.seed, index)
        )
        loss, count = self.kind.summed_loss(model(inputs), targets)
        return loss, count, self.rows

    @torch.no_grad()
    def score(self, batch: Batch) -> dict[str, float]:
        """adding: loss = mse; copy: loss (nats per step) and accuracy on the 10 recalled
        symbols."""
        with evaluating(self.model):
            inputs, targets = (t.to(self.device) for t in batch)
            total, count, correct = 0.0, 0, 0
            for start in range(0, len(inputs), self.cfg.data.eval_batch_size):
                rows = slice(start, start + self.cfg.data.eval_batch_size)
                output = self.model(inputs[rows])
                loss, n = self.kind.summed_loss(output, targets[rows])
                total, count = total + loss.item(), count + n
                correct += self.kind.recalled(output, targets[rows])
        return self.kind.metrics(total / count, correct, len(inputs))

    def validate(self, model: nn.Module) -> dict[str, float]:
        return self.score(self.data["valid"])


class LongRange(TaskTraining):
    """``task: adding`` and ``task: copy``: generated data, no vocabulary, a ``LongRangeModel``.
    ``Adding`` and ``Copy`` say what differs: the generator, the symbols and the loss."""

    make: ClassVar[Callable[[int, int, torch.Generator], Batch]]
    symbols: ClassVar[int | None]

    def draw(self, cfg: Config, n: int, seed: int, index: int) -> Batch:
        return type(self).make(n, cfg.data.sequence_length, generator(seed, index))

    def summed_loss(self, output: Tensor, targets: Tensor) -> tuple[Tensor, int]:
        """The summed loss of a batch and what it is averaged over."""
        raise NotImplementedError

    def recalled(self, output: Tensor, targets: Tensor) -> int:
        """How many symbols the batch recalled (copy), 0 where there are none (adding)."""
        return 0

    def metrics(self, loss: float, recalled: int, sequences: int) -> dict[str, float]:
        raise NotImplementedError

    def read_data(self, cfg: Config) -> dict[str, Batch]:
        """The fixed held-out sets (training batches are drawn as they are needed)."""
        return {
            "valid": self.draw(cfg, cfg.data.valid_size, cfg.seed, HELD_OUT),
            "test": self.draw(cfg, cfg.data.test_size, cfg.seed, HELD_OUT + 1),
        }

    def build_vocabularies(self, cfg: Config, data: dict[str, Batch]) -> None:
        return None  # the inputs are numbers and symbol ids already

    def save_vocabularies(self, vocabularies: None, directory: Path) -> None:
        pass

    def build_model(self, cfg: Config, vocabularies: None) -> LongRangeModel:
        return LongRangeModel(cfg.model, self.symbols)

    def training_task(
        self,
        cfg: Config,
        vocabularies: None,
        model: LongRangeModel,
        data: dict[str, Batch],
        device: torch.device,
        env: Distributed = SINGLE_PROCESS,
    ) -> LongRangeTask:
        return LongRangeTask(self, cfg, model, data, device, env)

    def test_metrics(self, task: LongRangeTask, data: dict[str, Batch]) -> dict[str, float]:
        return task.score(data["test"])

    def diagnostic_batch(
        self, cfg: Config, vocabularies: None, data: dict[str, Batch], size: int
    ) -> Batch:
        """``size`` held-out sequences: the batch ``rnnkit diagnose gradients`` differentiates."""
        inputs, targets = data["valid"]
        return inputs[:size], targets[:size]

    def last_step_loss(self, model: nn.Module, batch: Batch) -> Tensor:
        """L_T, the loss at the last step only: the adding problem's answer, or the copy task's
        last prediction."""
        inputs, targets = batch
        output = model(inputs)
        if output.dim() == 1:
            return F.mse_loss(output, targets)
        return F.cross_entropy(output[:, -1], targets[:, -1])


class Adding(LongRange):
    """The adding problem: the loss is the squared error of the answer (the MSE)."""

    name = "adding"
    make = staticmethod(adding_problem)
    symbols = None

    def summed_loss(self, output: Tensor, targets: Tensor) -> tuple[Tensor, int]:
        return ((output - targets) ** 2).sum(), targets.numel()

    def metrics(self, loss: float, recalled: int, sequences: int) -> dict[str, float]:
        return {"loss": loss, "mse": loss}


class Copy(LongRange):
    """The copy task: cross-entropy per step; accuracy over the 10 recalled symbols."""

    name = "copy"
    make = staticmethod(copy_task)
    symbols = COPY_SYMBOLS

    def summed_loss(self, output: Tensor, targets: Tensor) -> tuple[Tensor, int]:
        loss = F.cross_entropy(output.flatten(0, 1), targets.flatten(), reduction="sum")
        return loss, targets.numel()

    def recalled(self, output: Tensor, targets: Tensor) -> int:
        return int((output[:, -COPY_LENGTH:].argmax(-1) == targets[:, -COPY_LENGTH:]).sum())

    def metrics(self, loss: float, recalled: int, sequences: int) -> dict[str, float]:
        return {"loss": loss, "accuracy": recalled / (sequences * COPY_LENGTH)}


ADDING, COPY = Adding(), Copy()
