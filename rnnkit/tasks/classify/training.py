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

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from rnnkit.config import Config
from rnnkit.data.embeddings import embedding_from_vectors
from rnnkit.data.labelled import LABELS_FILE, LabelledText, LabelVocabulary
from rnnkit.data.shuffle import tensors
from rnnkit.data.splits import read_splits
from rnnkit.data.tokenizers import (
    tokenizer_from_config,
)
from rnnkit.losses import token_cross_entropy
from rnnkit.tasks.classify.model import SequenceClassifier
from rnnkit.tasks.classify.run import (
    IGNORE,
    Tokenizers,
    collate,
    encode_texts,
    evaluate,
    label_ids,
    read_file,
)
from rnnkit.tasks.trainable import TaskTraining, VocabularyTask, score_split, word_dropout
from rnnkit.training.distributed import SINGLE_PROCESS, Distributed
from rnnkit.training.transfer import TransferTarget, encoder_target


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
        self.word_dropout = word_dropout(cfg, self.ids, tokenizers.text.vocab)
        self.bucketed([len(x) for x in self.ids], env)

    def batch_loss(self, model: nn.Module, epoch: int, k: int) -> tuple[Tensor, int, int]:
        rows = self.train.indices(epoch, k)
        pad = self.tokenizers.text.vocab.pad_index
        tokens, lengths = tensors(*collate([self.ids[i] for i in rows], pad))
        if self.word_dropout is not None:
            tokens = self.word_dropout(tokens)
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


class Classification(TaskTraining):
    """``task: classify``: a tokenizer (``tokenizer.json``), the labels (``labels.json``), a
    ``SequenceClassifier``."""

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

    def build_model(self, cfg: Config, tokenizers: Tokenizers) -> SequenceClassifier:
        vocab = tokenizers.text.vocab
        model = SequenceClassifier(len(vocab), len(tokenizers.labels), cfg.model, vocab.pad_index)
        embedding_from_vectors(
            model.embedding, cfg.model.pretrained_embeddings, vocab, cfg.model.freeze_embeddings
        )
        return model

    def transfer_targets(
        self, cfg: Config, model: SequenceClassifier, tokenizers: Tokenizers
    ) -> list[TransferTarget]:
        return [encoder_target(cfg, model, tokenizers.text.vocab)]

    def test_metrics(
        self, task: ClassificationTask, data: dict[str, list[LabelledText]]
    ) -> dict[str, float]:
        """Accuracy, macro-F1 and loss on the test examples (``rnnkit evaluate`` adds the
        confusion matrix)."""
        return {k: v for k, v in task.scores("test").items() if k != "confusion"}


TRAINING = Classification()
