"""Sentence classification (many-to-one): labelled lines -> tokenizer and labels ->
``SequenceClassifier`` -> cross-entropy, accuracy, macro-F1 and the confusion matrix.

Data: ``label<TAB>text`` or ``label text`` lines, or CSV with named columns
(``labelled_data.py``). Any tokenizer of ``data.tokenizer`` reads the text; the label names are
kept sorted in ``RUN/labels.json``. Training minimises the mean cross-entropy per sentence;
validation reports loss, accuracy and macro-F1, and the best weights are those of the best
accuracy. ``predict`` gives every class's probability, ``evaluate`` the scores and the
confusion matrix (rows gold, columns predicted).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..batch_order import BucketBatches
from ..config import Config
from ..distributed import SINGLE_PROCESS, Distributed
from ..embeddings import embedding_from_vectors
from ..errors import UserError
from ..labelled_data import LABELS_FILE, LabelledText, LabelVocabulary, read_classified, read_splits
from ..losses import token_cross_entropy
from ..metrics import accuracy, confusion_matrix, macro_f1
from ..models.classifier import SequenceClassifier
from ..progress import progress
from ..tokenizers import Tokenizer, load_tokenizer, tokenizer_from_config
from ..trainer import StatelessTask

Tokenizers = tuple[Tokenizer, LabelVocabulary]
IGNORE = -100  # a label index that no class has: an example the loss skips


def read_file(cfg: Config, path: str | Path) -> list[LabelledText]:
    return read_classified(path, cfg.data.format, cfg.data.label_column, cfg.data.text_column)


def read_data(cfg: Config) -> dict[str, list[LabelledText]]:
    return read_splits(cfg.data, lambda path: read_file(cfg, path))


def new_tokenizers(cfg: Config, data: dict[str, list[LabelledText]]) -> Tokenizers:
    train = data["train"]
    return (
        tokenizer_from_config(cfg.data, "\n".join(e.text for e in train)),
        LabelVocabulary.build([e.label for e in train]),
    )


def save_tokenizers(tokenizers: Tokenizers, directory: Path) -> None:
    tokenizers[0].save(directory)
    tokenizers[1].save(Path(directory) / LABELS_FILE)


def load_tokenizers(directory: Path) -> Tokenizers:
    return load_tokenizer(directory), LabelVocabulary.load(Path(directory) / LABELS_FILE)


def new_model(cfg: Config, tokenizers: Tokenizers) -> SequenceClassifier:
    vocab = tokenizers[0].vocab
    model = SequenceClassifier(len(vocab), len(tokenizers[1]), cfg.model, vocab.pad_index)
    embedding_from_vectors(
        model.embedding, cfg.model.pretrained_embeddings, vocab, cfg.model.freeze_embeddings
    )
    return model


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
    lengths = torch.tensor([len(x) for x in ids])
    tokens = torch.full((len(ids), int(lengths.max())), pad, dtype=torch.long)
    for row, x in enumerate(ids):
        tokens[row, : len(x)] = torch.tensor(x, dtype=torch.long)
    return tokens, lengths


@torch.no_grad()
def predict_ids(
    model: SequenceClassifier,
    ids: list[list[int]],
    pad: int,
    device: torch.device,
    batch_size: int = 100,
) -> Tensor:
    """Class probabilities (N, C) for token id lists, in input order."""
    was_training = model.training
    model.eval()
    probabilities = torch.empty(len(ids), model.output.out_features)
    batches = BucketBatches([len(x) for x in ids], batch_size, shuffle=False) if ids else []
    for k in progress(range(len(batches)), desc="classify"):
        rows = batches.indices(0, k)
        tokens, lengths = collate([ids[i] for i in rows], pad)
        probabilities[rows] = model(tokens.to(device), lengths.to(device)).float().softmax(-1).cpu()
    model.train(was_training)
    return probabilities


def predict(
    model: SequenceClassifier,
    tokenizers: Tokenizers,
    texts: list[str],
    device: torch.device,
    name: str = "input",
    batch_size: int = 100,
) -> list[tuple[str, list[float]]]:
    """Texts -> (the most probable label, every label's probability in ``labels.names`` order)."""
    probabilities = predict_ids(
        model,
        encode_texts(tokenizers[0], texts, name),
        tokenizers[0].vocab.pad_index,
        device,
        batch_size,
    )
    names = tokenizers[1].names
    return [(names[int(p.argmax())], p.tolist()) for p in probabilities]


def evaluate(
    model: SequenceClassifier,
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
    probabilities = predict_ids(model, ids, tokenizer.vocab.pad_index, device, batch_size)
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


class ClassificationTask(StatelessTask):
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
        self.cfg, self.tokenizers, self.model, self.device = (
            cfg,
            tokenizers,
            model.to(device),
            device,
        )
        self.data = data
        train = data["train"]
        self.ids = encode_texts(
            tokenizers[0], [e.text for e in train], str(cfg.data.train), [e.line for e in train]
        )
        self.labels = torch.tensor(label_ids(tokenizers[1], train, str(cfg.data.train)))
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
        tokens, lengths = collate([self.ids[i] for i in rows], self.tokenizers[0].vocab.pad_index)
        logits = model(tokens.to(self.device), lengths.to(self.device))  # (B, C)
        targets = self.labels[rows].to(self.device)  # (B,)
        loss, count = token_cross_entropy(
            logits.unsqueeze(1), targets.unsqueeze(1), IGNORE, self.cfg.train.label_smoothing
        )
        return loss, count, len(rows)

    def scores(self, split: str) -> dict[str, Any]:
        return evaluate(
            self.model,
            self.tokenizers,
            self.data[split],
            self.device,
            str(getattr(self.cfg.data, split) or self.cfg.data.train),
            self.cfg.data.eval_batch_size,
        )

    def validate(self, model: nn.Module) -> dict[str, float]:
        return {k: v for k, v in self.scores("valid").items() if k != "confusion"}


def new_task(
    cfg: Config,
    tokenizers: Tokenizers,
    data: dict[str, list[LabelledText]],
    device: torch.device,
    env: Distributed,
) -> ClassificationTask:
    return ClassificationTask(cfg, tokenizers, new_model(cfg, tokenizers), data, device, env)


def test_metrics(task: ClassificationTask, data: dict[str, list[LabelledText]]) -> dict[str, float]:
    """Accuracy, macro-F1 and loss on the test examples (``rnnkit evaluate`` adds the confusion
    matrix)."""
    return {k: v for k, v in task.scores("test").items() if k != "confusion"}
