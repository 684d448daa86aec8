"""A loaded classifier: ``predict`` (each text's label, with every label's probability) and
``evaluate`` (loss, accuracy, macro-F1 and the confusion matrix, rows gold, columns
predicted); and the batching both share with the training task's validation.

Engine-neutral (``engine``): texts become padded numpy batches, ``engine.call("forward")``
gives logits (B, C) in its own arrays, and the probabilities come back as numpy (N, C).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from rnnkit.data.batch_order import BucketBatches
from rnnkit.data.labelled import LABELS_FILE, LabelledText, LabelVocabulary, read_classified
from rnnkit.data.padding import pad_array
from rnnkit.data.tokenizers import Tokenizer, load_tokenizer
from rnnkit.errors import UserError
from rnnkit.metrics import accuracy, confusion_matrix, macro_f1
from rnnkit.progress import progress
from rnnkit.tasks.loaded import LoadedRun, labelled_examples


class Tokenizers(NamedTuple):
    """A classification run's vocabularies: the text's tokenizer and the label names."""

    text: Tokenizer
    labels: LabelVocabulary


IGNORE = -100  # a label index that no class has: an example the loss skips


@dataclass
class Label:
    """A text's most probable label and every label's probability."""

    text: str
    label: str
    probabilities: dict[str, float]


def read_file(cfg: Any, path: str | Path) -> list[LabelledText]:
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


def collate(ids: list[list[int]], pad: int) -> tuple[np.ndarray, np.ndarray]:
    """Token id lists -> tokens (B, T) padded with ``pad``, lengths (B,), int64."""
    return pad_array(ids, pad), np.array([len(x) for x in ids], dtype=np.int64)


def predict_ids(engine: Any, ids: list[list[int]], pad: int, batch_size: int = 100) -> np.ndarray:
    """Class probabilities (N, C) for token id lists, in input order, by length buckets:
    ``softmax(model(tokens (B, T), lengths (B,)))`` through the engine."""
    probabilities = np.empty((len(ids), 0), dtype=np.float32)
    batches = BucketBatches([len(x) for x in ids], batch_size) if ids else []
    xp = engine.xp
    for k in progress(range(len(batches)), desc="classify"):
        rows = batches.indices(0, k)
        logits = engine.call("forward", *collate([ids[i] for i in rows], pad))  # (B, C)
        batch = xp.to_numpy(xp.softmax(xp.asarray(logits, "float")))
        if k == 0:
            probabilities = np.empty((len(ids), batch.shape[1]), dtype=np.float32)
        probabilities[rows] = batch
    return probabilities


def predict(
    engine: Any,
    tokenizers: Tokenizers,
    texts: list[str],
    name: str = "input",
    batch_size: int = 100,
) -> list[tuple[str, list[float]]]:
    """Texts -> (the most probable label, every label's probability in ``labels.names`` order)."""
    ids = encode_texts(tokenizers.text, texts, name)
    probabilities = predict_ids(engine, ids, tokenizers.text.vocab.pad_index, batch_size)
    names = tokenizers.labels.names
    return [(names[int(p.argmax())], p.tolist()) for p in probabilities]


def evaluate(
    engine: Any,
    tokenizers: Tokenizers,
    examples: list[LabelledText],
    name: str = "data",
    batch_size: int = 100,
) -> dict[str, Any]:
    """loss (mean cross-entropy), accuracy, macro_f1, examples, and ``confusion``:
    {"labels": [...], "matrix": M} with M[i][j] the examples of gold label i predicted as j."""
    tokenizer, labels = tokenizers
    gold = label_ids(labels, examples, name)
    ids = encode_texts(tokenizer, [e.text for e in examples], name, [e.line for e in examples])
    probabilities = predict_ids(engine, ids, tokenizer.vocab.pad_index, batch_size)
    picked = probabilities[np.arange(len(gold)), gold].astype(np.float64)
    loss = float(-np.log(np.maximum(picked, 1e-30)).mean())
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


class ClassifierGraphs:
    """An export's ``classifier`` graph standing in for ``SequenceClassifier.forward``."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def forward(self, tokens: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        return self.engine.run("classifier", tokens=tokens, lengths=lengths)["logits"]


class ClassifierRun(LoadedRun):
    """``rnnkit.load`` of a classify run."""

    graphs = ClassifierGraphs

    @staticmethod
    def load_vocabularies(directory: Path) -> Tokenizers:
        labels = LabelVocabulary.load(Path(directory) / LABELS_FILE)
        return Tokenizers(load_tokenizer(directory), labels)

    def vocabulary_sizes(self) -> dict[str, int]:
        return {
            "tokens": len(self.vocabularies.text.vocab),
            "labels": len(self.vocabularies.labels),
        }

    def predict(self, texts: str | Sequence[str], name: str = "input") -> list[Label]:
        """Label each text; ``name`` (a file) is what an error names, with the line."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        names = self.vocabularies.labels.names
        batch_size = self.cfg.data.eval_batch_size
        results = predict(self.engine, self.vocabularies, texts, name, batch_size)
        return [
            Label(text, label, dict(zip(names, probabilities, strict=True)))
            for text, (label, probabilities) in zip(texts, results, strict=True)
        ]

    def evaluate(self, split: str = "test", data: str | Path | None = None) -> dict[str, Any]:
        examples, name = labelled_examples(self, split, data, read_file)
        return evaluate(
            self.engine, self.vocabularies, examples, name, self.cfg.data.eval_batch_size
        )
