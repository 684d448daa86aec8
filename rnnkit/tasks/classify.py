"""Sentence classification (many-to-one): labelled lines -> tokenizer and labels ->
``SequenceClassifier`` -> cross-entropy, accuracy, macro-F1 and the confusion matrix.

Data: ``label<TAB>text`` or ``label text`` lines, or CSV with named columns
(``data/labelled.py``). Any tokenizer of ``data.tokenizer`` reads the text; the label names are
kept sorted in ``RUN/labels.json``. Training minimises the mean cross-entropy per sentence;
validation reports loss, accuracy and macro-F1, and the best weights are those of the best
accuracy. ``predict`` gives every class's probability, ``evaluate`` the scores and the
confusion matrix (rows gold, columns predicted).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from ..config import Config
from ..data.batch_order import BucketBatches
from ..data.embeddings import embedding_from_vectors
from ..data.labelled import LABELS_FILE, LabelledText, LabelVocabulary, read_classified
from ..data.padding import pad_ids
from ..data.splits import read_splits
from ..data.tokenizers import (
    SUBWORD_MODEL_FILE,
    TOKENIZER_FILE,
    Tokenizer,
    load_tokenizer,
    tokenizer_from_config,
)
from ..errors import UserError
from ..losses import token_cross_entropy
from ..metrics import accuracy, confusion_matrix, macro_f1
from ..models.classifier import SequenceClassifier
from ..progress import progress
from ..training.distributed import SINGLE_PROCESS, Distributed
from .base import Task, VocabularyTask, score_split


class Tokenizers(NamedTuple):
    """A classification run's vocabularies: the text's tokenizer and the label names."""

    text: Tokenizer
    labels: LabelVocabulary


IGNORE = -100  # a label index that no class has: an example the loss skips


def read_file(cfg: Config, path: str | Path) -> list[LabelledText]:
    return read_classified(path, cfg.data.format, cfg.data.label_column, cfg.data.text_column)


def encode_texts(
    tokenizer: Tokenizer, texts: list[str], name: str = "input", lines: list[int] | None = None
) -> list[list[int]]:
    """Texts -> token ids; a text with no token is a UserError naming its line."""
    encoded = []
    for i, text in enumerate(texts):
        ids = tokenizer.encode(text)
        if not ids:
            raise UserError(f"{name}:{lines[i] if lines else i + 1}: no token to classify")
        encoded.append(ids)
    return encoded


def label_ids(labels: LabelVocabulary, examples: list[LabelledText], name: str) -> list[int]:
    """The index of each example's label; a label the run does not know is a UserError."""
    ids = []
    for e in examples:
        if e.label not in labels.index:
            shown = ", ".join(labels.names[:10]) + (", ..." if len(labels) > 10 else "")
            raise UserError(
                f"{name}:{e.line}: label {e.label!r} is not one of the run's labels ({shown})"
            )
        ids.append(labels.index[e.label])
    return ids


def collate(ids: list[list[int]], pad: int) -> tuple[Tensor, Tensor]:
    """Token id lists -> tokens (B, T) padded with ``pad``, lengths (B,)."""
    return pad_ids(ids, pad), torch.tensor([len(x) for x in ids])


@torch.no_grad()
def predict_ids(
    forward: Callable[[Tensor, Tensor], Tensor],
    ids: list[list[int]],
    pad: int,
    device: torch.device,
    batch_size: int = 100,
) -> Tensor:
    """Class probabilities (N, C) for token id lists, in input order. ``forward(tokens (B, T),
    lengths (B,)) -> logits (B, C)``: a model in eval mode, or an engine's ``classify``."""
    probabilities = torch.empty(len(ids), 0)
    batches = BucketBatches([len(x) for x in ids], batch_size, shuffle=False) if ids else []
    for k in progress(range(len(batches)), desc="classify"):
        rows = batches.indices(0, k)
        tokens, lengths = collate([ids[i] for i in rows], pad)
        batch = forward(tokens.to(device), lengths.to(device)).float().softmax(-1).cpu()
        if k == 0:
            probabilities = torch.empty(len(ids), batch.shape[1])
        probabilities[rows] = batch
    return probabilities


def predict(
    forward: Callable[[Tensor, Tensor], Tensor],
    tokenizers: Tokenizers,
    texts: list[str],
    device: torch.device,
    name: str = "input",
    batch_size: int = 100,
) -> list[tuple[str, list[float]]]:
    """Texts -> (the most probable label, every label's probability in ``labels.names`` order)."""
    probabilities = predict_ids(
        forward,
        encode_texts(tokenizers.text, texts, name),
        tokenizers.text.vocab.pad_index,
        device,
        batch_size,
    )
    names = tokenizers.labels.names
    return [(names[int(p.argmax())], p.tolist()) for p in probabilities]


def evaluate(
    forward: Callable[[Tensor, Tensor], Tensor],
    tokenizers: Tokenizers,
    examples: list[LabelledText],
    device: torch.device,
    name: str = "data",
    batch_size: int = 100,
) -> dict[str, Any]:
    """loss (mean cross-entropy), accuracy, macro_f1, examples, and ``confusion``:
    {"labels": [...], "matrix": M} with M[i][j] the examples of gold label i predicted as j."""
    tokenizer, labels = tokenizers
    gold = label_ids(labels, examples, name)
    ids = encode_texts(tokenizer, [e.text for e in examples], name, [e.line for e in examples])
    probabilities = predict_ids(forward, ids, tokenizer.vocab.pad_index, device, batch_size)
    loss = (
        -probabilities[torch.arange(len(gold)), torch.tensor(gold)]
        .clamp_min(1e-30)
        .log()
        .mean()
        .item()
    )
    gold_names = [e.label for e in examples]
    predicted = [labels.names[i] for i in probabilities.argmax(1).tolist()]
    order, matrix = confusion_matrix(gold_names, predicted, labels.names)
    return {
        "loss": loss,
        "accuracy": accuracy(gold_names, predicted),
        "macro_f1": macro_f1(gold_names, predicted),
        "examples": len(examples),
        "confusion": {"labels": order, "matrix": matrix},
    }


class ClassificationTask(VocabularyTask):
    """The trainer's view of classification (see ``trainer.TrainingTask``)."""

    best_metric, higher_is_better = "accuracy", True

    def __init__(
        self,
        cfg: Config,
        tokenizers: Tokenizers,
        model: SequenceClassifier,
        data: dict[str, list[LabelledText]],
        device: torch.device,
        env: Distributed = SINGLE_PROCESS,
    ) -> None:
        super().__init__(cfg, tokenizers, model, data, device)
        train = data["train"]
        self.ids = encode_texts(
            tokenizers.text, [e.text for e in train], str(cfg.data.train), [e.line for e in train]
        )
        self.labels = torch.tensor(label_ids(tokenizers.labels, train, str(cfg.data.train)))
        self.train = BucketBatches(
            [len(x) for x in self.ids],
            cfg.data.batch_size // env.world_size,
            seed=cfg.seed,
            rank=env.rank,
            world_size=env.world_size,
        )

    def num_batches(self) -> int:
        return len(self.train)

    def batch_loss(self, model: nn.Module, epoch: int, k: int) -> tuple[Tensor, int, int]:
        rows = self.train.indices(epoch, k)
        tokens, lengths = collate([self.ids[i] for i in rows], self.tokenizers.text.vocab.pad_index)
        logits = model(tokens.to(self.device), lengths.to(self.device))  # (B, C)
        targets = self.labels[rows].to(self.device)  # (B,)
        loss, count = token_cross_entropy(
            logits.unsqueeze(1), targets.unsqueeze(1), IGNORE, self.cfg.train.label_smoothing
        )
        return loss, count, len(rows)

    def scores(self, split: str) -> dict[str, Any]:
        return score_split(self, evaluate, split)

    def validate(self, model: nn.Module) -> dict[str, float]:
        return {k: v for k, v in self.scores("valid").items() if k != "confusion"}


class Classification(Task):
    """``task: classify``: a tokenizer (``tokenizer.json``), the labels (``labels.json``), a
    ``SequenceClassifier``."""

    name = "classify"
    run_files = (TOKENIZER_FILE, SUBWORD_MODEL_FILE, LABELS_FILE)
    training_class = ClassificationTask

    def read_data(self, cfg: Config) -> dict[str, list[LabelledText]]:
        return read_splits(cfg.data, lambda path: read_file(cfg, path))

    def build_vocabularies(self, cfg: Config, data: dict[str, list[LabelledText]]) -> Tokenizers:
        train = data["train"]
        return Tokenizers(
            tokenizer_from_config(cfg.data, "\n".join(e.text for e in train)),
            LabelVocabulary.build([e.label for e in train]),
        )

    def save_vocabularies(self, tokenizers: Tokenizers, directory: Path) -> None:
        tokenizers.text.save(directory)
        tokenizers.labels.save(Path(directory) / LABELS_FILE)

    def load_vocabularies(self, directory: Path) -> Tokenizers:
        return Tokenizers(
            load_tokenizer(directory), LabelVocabulary.load(Path(directory) / LABELS_FILE)
        )

    def build_model(self, cfg: Config, tokenizers: Tokenizers) -> SequenceClassifier:
        vocab = tokenizers.text.vocab
        model = SequenceClassifier(len(vocab), len(tokenizers.labels), cfg.model, vocab.pad_index)
        embedding_from_vectors(
            model.embedding, cfg.model.pretrained_embeddings, vocab, cfg.model.freeze_embeddings
        )
        return model

    def test_metrics(
        self, task: ClassificationTask, data: dict[str, list[LabelledText]]
    ) -> dict[str, float]:
        """Accuracy, macro-F1 and loss on the test examples (``rnnkit evaluate`` adds the
        confusion matrix)."""
        return {k: v for k, v in task.scores("test").items() if k != "confusion"}

    def loaded(self, path: Path, cfg: Config, tokenizers: Tokenizers, engine: Any) -> Any:
        from ..api.labelling import ClassifierRun

        return ClassifierRun(path, cfg, tokenizers, engine)
