"""A task defined outside rnnkit, through its public interface only: the running sum of digits
mod 10 ("3 5 4" -> "3 8 2"), many-to-many. ``tests/test_outside_task.py`` registers it and
trains, resumes, loads, serves and exports it with no change to ``rnnkit/``.

    python tests/running_sum_task.py CONFIG RUN_DIR     # train it from the command line

Everything a task is sits here: its config keys, data, model, training step and scores, its
loaded run (``rnnkit.load``), its ONNX graph and its ``POST /v1/running_sum`` endpoint.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel
from torch import Tensor, nn

import rnnkit
from rnnkit.config import COUNT, key
from rnnkit.data.batch_order import EvalBatchKeys
from rnnkit.export.graphs import BT, GraphSpec, Wrapper, example_tokens
from rnnkit.models.keys import EmbeddingKeys
from rnnkit.models.recurrent import build_recurrent, initialize
from rnnkit.serve.endpoints import Endpoint, joined, split
from rnnkit.serve.schemas import Body, model_name, passages
from rnnkit.tasks.base import Task
from rnnkit.tasks.loaded import LoadedRun
from rnnkit.tasks.registry import register
from rnnkit.tasks.trainable import TaskTraining, evaluating
from rnnkit.training.trainer import StatelessTask

DIGITS = 10


@dataclass
class RunningSumData:
    digits: int = key(8, **COUNT)  # the length of every sequence
    sequences: int = key(1000, **COUNT)  # training sequences (held-out sets: a quarter each)


def draw(n: int, length: int, seed: int) -> tuple[Tensor, Tensor]:
    """n sequences of digits (n, T) and their running sums mod 10 (n, T)."""
    x = torch.randint(0, DIGITS, (n, length), generator=torch.Generator().manual_seed(seed))
    return x, x.cumsum(1) % DIGITS


class RunningSumModel(nn.Module):
    """digits (B, T) -> embedding -> the config's recurrent stack -> logits (B, T, 10)."""

    def __init__(self, cfg: Any) -> None:
        super().__init__()
        self.embedding = nn.Embedding(DIGITS, cfg.model.embedding_size)
        self.rnn = build_recurrent(cfg.model, cfg.model.embedding_size)
        self.output = nn.Linear(cfg.model.hidden_size, DIGITS)
        initialize(self, cfg.model)

    def forward(self, digits: Tensor) -> Tensor:
        h, _ = self.rnn(self.embedding(digits))
        return self.output(h)


class RunningSumTraining(StatelessTask):
    best_metric, higher_is_better = "accuracy", True

    def __init__(self, cfg: Any, model: nn.Module, data: dict[str, Any], device: Any) -> None:
        self.cfg, self.model, self.data, self.device = cfg, model.to(device), data, device

    def num_batches(self) -> int:
        return -(-self.cfg.data.sequences // self.cfg.data.batch_size)

    def batch_loss(self, model: nn.Module, epoch: int, k: int) -> tuple[Tensor, int, int]:
        size = self.cfg.data.batch_size
        x, y = draw(size, self.cfg.data.digits, self.cfg.seed * 100_003 + epoch * 1_009 + k)
        logits = model(x.to(self.device))
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten().to(self.device), reduction="sum")
        return loss, y.numel(), size

    @torch.no_grad()
    def score(self, split: str) -> dict[str, float]:
        x, y = self.data[split]
        with evaluating(self.model):
            logits = self.model(x.to(self.device))
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten().to(self.device)).item()
        return {"loss": loss, "accuracy": (logits.argmax(-1).cpu() == y).float().mean().item()}

    def validate(self, model: nn.Module) -> dict[str, float]:
        return self.score("valid")


class RunningSum(TaskTraining):
    training_class = RunningSumTraining

    def read_data(self, cfg: Any) -> dict[str, Any]:
        held_out = max(1, cfg.data.sequences // 4)
        return {
            "valid": draw(held_out, cfg.data.digits, cfg.seed + 1),
            "test": draw(held_out, cfg.data.digits, cfg.seed + 2),
        }

    def build_vocabularies(self, cfg: Any, data: dict[str, Any]) -> None:
        return None

    def save_vocabularies(self, vocabularies: None, directory: Path) -> None:
        pass

    def build_model(self, cfg: Any, vocabularies: None) -> RunningSumModel:
        return RunningSumModel(cfg)

    def training_task(self, cfg, vocabularies, model, data, device, env) -> RunningSumTraining:
        return RunningSumTraining(cfg, model, data, device)

    def test_metrics(self, task: RunningSumTraining, data: dict[str, Any]) -> dict[str, float]:
        return task.score("test")


class RunningSumGraphs:
    """The export's graph standing in for ``RunningSumModel.forward``."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def forward(self, digits: np.ndarray) -> np.ndarray:
        return self.engine.run("running_sum", digits=digits)["logits"]


class RunningSumRun(LoadedRun):
    """``rnnkit.load`` of a running-sum run: ``running_sum(["3 5 4"]) -> ["3 8 2"]``."""

    graphs = RunningSumGraphs

    @staticmethod
    def load_vocabularies(directory: Path) -> None:
        return None

    def running_sum(self, texts: list[str]) -> list[str]:
        digits = np.array([[int(d) for d in t.split()] for t in texts], dtype=np.int64)
        logits = self.engine.xp.to_numpy(self.engine.call("forward", digits))
        return [" ".join(str(int(d)) for d in row) for row in logits.argmax(-1)]

    def evaluate(self, split: str = "test") -> dict[str, float]:
        x, y = self.spec.trainer_side().read_data(self.cfg)[split]
        texts = [" ".join(str(int(d)) for d in row) for row in x]
        predicted = self.running_sum(texts)
        expected = [" ".join(str(int(d)) for d in row) for row in y]
        right = sum(p == e for p, e in zip(predicted, expected, strict=True))
        return {"sequence_accuracy": right / len(texts)}


class RunningSumGraph(Wrapper):
    def forward(self, digits: Tensor) -> Tensor:
        return self.model(digits)


def graph_specs(run: Any) -> list[GraphSpec]:
    digits, _ = example_tokens()
    return [
        GraphSpec(
            "running_sum.onnx", RunningSumGraph(run.engine.model), {"digits": digits},
            ["logits"], {"digits": BT, "logits": BT},
        )
    ]  # fmt: skip


class RunningSumOut(BaseModel):
    sums: list[str]


def running_sum_request(limits: Any, runs: dict[str, Any]) -> type[Body]:
    Passages = passages(limits)

    class RunningSumRequest(Body):
        model: model_name(list(runs))
        sequences: Passages

        def inputs(self) -> list[str]:
            return self.sequences

    return RunningSumRequest


def answer_batch(run: RunningSumRun, jobs: list[Any]) -> None:
    for job, mine in zip(jobs, split(run.running_sum(joined(jobs)), jobs), strict=True):
        job.finish({"sums": mine})


TASK = Task(
    name="running_sum",
    keys={"data": (RunningSumData, EvalBatchKeys), "model": (EmbeddingKeys,)},
    run_type=RunningSumRun,
    training=RunningSum(),
    graphs=graph_specs,
    endpoints=(
        Endpoint(
            "running_sum",
            running_sum_request,
            RunningSumOut,
            answer_batch,
            "The running sum mod 10 of each sequence of digits.",
        ),
    ),
)


if __name__ == "__main__":  # train from the command line: CONFIG RUN_DIR
    register(TASK)
    cfg = rnnkit.load_config(sys.argv[1])
    cfg.run_dir = sys.argv[2]
    rnnkit.train(cfg)
