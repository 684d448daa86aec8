"""The torch side of a task (``base.Task.training``): ``TaskTraining`` is what every task's
``training.py`` implements, so that training, loading and diagnostics never switch on a name:

    read_data(cfg)                      -> {split: examples}
    build_vocabularies(cfg, data)       -> its vocabularies (a named type; lm: one tokenizer)
    save_vocabularies(vocabularies, directory)  (``base.Task.run_type`` reads them back)
    build_model(cfg, vocabularies)      -> nn.Module (fresh weights; pretrained vectors copied in)
    transfer_targets(cfg, model, vocabularies) -> what LM runs may fill (``training/transfer.py``)
    training_task(cfg, vocabularies, model, data, device, env) -> what the trainer trains
    test_metrics(training_task, data)   -> scores on the test split
    diagnostic_batch / last_step_loss   (``rnnkit diagnose gradients``, where diagnosable)

``evaluating(model)`` is here too, the eval mode every task's scoring runs in; splits are
``data.splits``, padding ``data.padding``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from rnnkit.data.batch_order import BucketBatches
from rnnkit.data.shuffle import permutation
from rnnkit.training.trainer import StatelessTask

if TYPE_CHECKING:
    import torch
    from torch import Tensor, nn

    from rnnkit.config import Config
    from rnnkit.data.tokenizers import Vocabulary
    from rnnkit.nn.dropout import WordDropout
    from rnnkit.training.distributed import Distributed


class TaskTraining:
    """The torch side of one task; subclasses implement the methods and set ``training_class``."""

    training_class: ClassVar[type]  # (cfg, vocabularies, model, data, device, env) -> the trainer's

    def read_data(self, cfg: Config) -> dict[str, Any]:
        raise NotImplementedError

    def build_vocabularies(self, cfg: Config, data: dict[str, Any]) -> Any:
        raise NotImplementedError

    def save_vocabularies(self, vocabularies: Any, directory: Path) -> None:
        raise NotImplementedError

    def build_model(self, cfg: Config, vocabularies: Any) -> nn.Module:
        raise NotImplementedError

    def training_task(
        self,
        cfg: Config,
        vocabularies: Any,
        model: nn.Module,
        data: dict[str, Any],
        device: torch.device,
        env: Distributed,
    ) -> Any:
        """What the trainer trains (``training.trainer.TrainingTask``): ``training_class``."""
        return self.training_class(cfg, vocabularies, model, data, device, env)

    def transfer_targets(self, cfg: Config, model: nn.Module, vocabularies: Any) -> list:
        """The embeddings and recurrent stacks of ``model`` that trained LM runs may fill
        (``transfer.TransferTarget``), with the runs the config names; none by default."""
        return []

    def test_metrics(self, training_task: Any, data: dict[str, Any]) -> dict[str, Any]:
        """Scores on the test split, at the end of training."""
        raise NotImplementedError

    def diagnostic_batch(
        self, cfg: Config, vocabularies: Any, data: dict[str, Any], size: int
    ) -> Any:
        """A batch for ``rnnkit diagnose gradients`` (where ``diagnosable``)."""
        raise NotImplementedError

    def last_step_loss(self, model: nn.Module, batch: Any) -> Tensor:
        raise NotImplementedError


@contextlib.contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """The model in eval mode (no dropout) for the block, its own mode restored after it."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def score_split(task: Any, evaluate: Callable[..., dict[str, Any]], split: str) -> dict[str, Any]:
    """A labelling task's scores on one of its splits: ``evaluate(engine, vocabularies,
    examples, name, batch_size)`` with the model in eval mode, errors naming the split's file."""
    from rnnkit.decoding.engine import TorchEngine

    with evaluating(task.model):
        return evaluate(
            TorchEngine(task.model, task.device),
            task.tokenizers,
            task.data[split],
            str(getattr(task.cfg.data, split) or task.cfg.data.train),
            task.cfg.data.eval_batch_size,
        )


def word_dropout(cfg: Config, sequences: list[list[int]], vocab: Vocabulary) -> WordDropout | None:
    """``model.word_dropout`` over the training ids ``sequences`` of ``vocab`` (None when 0)."""
    from rnnkit.nn.dropout import WordDropout

    alpha = cfg.model.word_dropout
    if alpha == 0:
        return None
    return WordDropout(alpha, sequences, len(vocab), vocab.pad_index, vocab.unk_index)


class VocabularyTask(StatelessTask):
    """What the trainer trains for translate, classify and tag: the config, the vocabularies,
    the model on its device and the data splits, kept as the subclasses read them."""

    def __init__(
        self, cfg: Config, tokenizers: Any, model: nn.Module, data: dict[str, Any], device: Any
    ) -> None:
        self.cfg, self.tokenizers, self.data, self.device = cfg, tokenizers, data, device
        self.model = model.to(device)

    def bucketed(self, lengths: list[int], env: Distributed) -> BucketBatches:
        """The training examples' batches (of these lengths): shuffled each epoch, bucketed by
        length, this rank's share; ``num_batches`` counts them."""
        self.train = BucketBatches(
            lengths,
            self.cfg.data.batch_size // env.world_size,
            permutation,
            seed=self.cfg.seed,
            rank=env.rank,
            world_size=env.world_size,
        )
        return self.train

    def num_batches(self) -> int:
        return len(self.train)
