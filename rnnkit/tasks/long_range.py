"""The adding problem and the copy task as training tasks (``task: adding`` / ``task: copy``).

Training sequences are generated afresh for every batch (batch k of epoch e is a pure function
of ``seed``, e, k and the rank), so there is no training file and no overfitting; validation
and test sets are fixed held-out draws of ``data.valid_size`` / ``data.test_size`` sequences.

adding: loss = squared error of the answer, averaged over sequences (the MSE).
copy:   loss = cross-entropy per step over all T + 20 steps; ``accuracy`` counts the 10
        recalled symbols.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import Config
from ..distributed import SINGLE_PROCESS, Distributed
from ..long_range_data import COPY_LENGTH, adding_problem, copy_task, generator
from ..models.sequence_model import SequenceModel
from ..trainer import StatelessTask

Batch = tuple[Tensor, Tensor]
HELD_OUT = 2**40  # generator indices of the valid and test sets: never a training batch's


def draw(cfg: Config, n: int, seed: int, index: int) -> Batch:
    make = adding_problem if cfg.task == "adding" else copy_task
    return make(n, cfg.data.sequence_length, generator(seed, index))


def summed_loss(task: str, output: Tensor, targets: Tensor) -> tuple[Tensor, int]:
    """The summed loss of a batch and what it is averaged over (sequences, or steps for copy)."""
    if task == "adding":
        return ((output - targets) ** 2).sum(), targets.numel()
    return F.cross_entropy(
        output.flatten(0, 1), targets.flatten(), reduction="sum"
    ), targets.numel()


def last_step_loss(model: nn.Module, batch: Batch) -> Tensor:
    """L_T, the loss at the last step only (what ``rnnkit diagnose gradients`` differentiates):
    the adding problem's answer, or the copy task's last prediction."""
    inputs, targets = batch
    output = model(inputs)
    if output.dim() == 1:
        return F.mse_loss(output, targets)
    return F.cross_entropy(output[:, -1], targets[:, -1])


class LongRangeTask(StatelessTask):
    """The trainer's view of the adding and copy tasks (see ``trainer.TrainingTask``)."""

    best_metric, higher_is_better = "loss", False

    def __init__(
        self,
        cfg: Config,
        model: SequenceModel,
        data: dict[str, Batch],
        device: torch.device,
        env: Distributed = SINGLE_PROCESS,
    ) -> None:
        self.cfg, self.model, self.data, self.device, self.env = (
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
            t.to(self.device) for t in draw(self.cfg, self.rows, self.cfg.seed, index)
        )
        loss, count = summed_loss(self.cfg.task, model(inputs), targets)
        return loss, count, self.rows

    @torch.no_grad()
    def score(self, batch: Batch) -> dict[str, float]:
        """adding: loss = mse; copy: loss (nats per step) and accuracy on the 10 recalled
        symbols."""
        was_training = self.model.training
        self.model.eval()
        inputs, targets = (t.to(self.device) for t in batch)
        total, count, correct = 0.0, 0, 0
        for start in range(0, len(inputs), self.cfg.data.eval_batch_size):
            rows = slice(start, start + self.cfg.data.eval_batch_size)
            output = self.model(inputs[rows])
            loss, n = summed_loss(self.cfg.task, output, targets[rows])
            total, count = total + loss.item(), count + n
            if self.cfg.task == "copy":
                recalled = output[:, -COPY_LENGTH:].argmax(-1) == targets[rows, -COPY_LENGTH:]
                correct += int(recalled.sum())
        self.model.train(was_training)
        metrics = {"loss": total / count}
        if self.cfg.task == "adding":
            metrics["mse"] = metrics["loss"]
        else:
            metrics["accuracy"] = correct / (len(inputs) * COPY_LENGTH)
        return metrics

    def validate(self, model: nn.Module) -> dict[str, float]:
        return self.score(self.data["valid"])


# -- what ``training.py`` asks of every task (see tasks/lm.py) ------------------------------
def read_data(cfg: Config) -> dict[str, Batch]:
    """The fixed held-out sets (training batches are drawn as they are needed)."""
    return {
        "valid": draw(cfg, cfg.data.valid_size, cfg.seed, HELD_OUT),
        "test": draw(cfg, cfg.data.test_size, cfg.seed, HELD_OUT + 1),
    }


def new_tokenizers(cfg: Config, data: dict[str, Batch]) -> None:
    return None  # the inputs are numbers and symbol ids already


def save_tokenizers(tokenizers: None, directory: Path) -> None:
    pass


def load_tokenizers(directory: Path) -> None:
    return None


def new_model(cfg: Config, tokenizers: None) -> SequenceModel:
    return SequenceModel(cfg.task, cfg.model)


def new_task(
    cfg: Config, tokenizers: None, data: dict[str, Batch], device: torch.device, env: Distributed
) -> LongRangeTask:
    return LongRangeTask(cfg, new_model(cfg, tokenizers), data, device, env)


def test_metrics(task: LongRangeTask, data: dict[str, Batch]) -> dict[str, float]:
    return task.score(data["test"])


def diagnostic_batch(cfg: Config, tokenizers: None, data: dict[str, Batch], size: int) -> Batch:
    """``size`` held-out sequences: the batch ``rnnkit diagnose gradients`` differentiates."""
    inputs, targets = data["valid"]
    return inputs[:size], targets[:size]
