"""Sequence tagging (many-to-many): tagged sentences -> word, char and tag vocabularies ->
``SequenceTagger`` -> cross-entropy per token, token accuracy and, for BIO/IOBES tag sets,
entity precision/recall/F1.

Data: CoNLL-U (UPOS or XPOS, ``data.tag_column``) or ``token<TAB>tag`` files
(``data/labelled.py``). The tokens are taken as given, never re-split: each becomes one word id
(lowercased and/or NFKC-normalised as ``data.lowercase`` / ``data.normalize`` ask), words seen
fewer than ``data.min_freq`` times are ``<unk>``. A run keeps the word vocabulary in
``tokenizer.json``, the characters (``model.char_features``) in ``chars/tokenizer.json`` and the
tags in ``labels.json``. The best weights are those of the best validation token accuracy.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import torch
from torch import Tensor, nn

from rnnkit.config import Config
from rnnkit.data.embeddings import embedding_from_vectors
from rnnkit.data.labelled import LABELS_FILE, LabelVocabulary, TaggedSentence
from rnnkit.data.shuffle import tensors
from rnnkit.data.splits import read_splits
from rnnkit.data.tokenizers import (
    BOS,
    EOS,
    PAD,
    UNK,
    CharTokenizer,
    Vocabulary,
    WordTokenizer,
)
from rnnkit.errors import UserError
from rnnkit.losses import token_cross_entropy
from rnnkit.tasks.tag.model import CharBatch, SequenceTagger
from rnnkit.tasks.tag.run import (
    CHARS_DIR,
    IGNORE,
    EncodedSentence,
    Tokenizers,
    collate,
    evaluate,
    read_file,
    word_form,
)
from rnnkit.tasks.trainable import TaskTraining, VocabularyTask, score_split, word_dropout
from rnnkit.training.distributed import SINGLE_PROCESS, Distributed
from rnnkit.training.transfer import TransferTarget, encoder_target


class TaggingTask(VocabularyTask):
    """The trainer's view of tagging (see ``trainer.TrainingTask``)."""

    best_metric, higher_is_better = "accuracy", True

    def __init__(
        self,
        cfg: Config,
        tokenizers: Tokenizers,
        model: SequenceTagger,
        data: dict[str, list[TaggedSentence]],
        device: torch.device,
        env: Distributed = SINGLE_PROCESS,
    ) -> None:
        super().__init__(cfg, tokenizers, model, data, device)
        self.sentences = [EncodedSentence(tokenizers, s.tokens, s.tags) for s in data["train"]]
        self.word_dropout = word_dropout(
            cfg, [s.words for s in self.sentences], tokenizers.words.vocab
        )
        self.bucketed([len(s.words) for s in self.sentences], env)

    def batch_loss(self, model: nn.Module, epoch: int, k: int) -> tuple[Tensor, int, int]:
        batch = [self.sentences[i] for i in self.train.indices(epoch, k)]
        words, lengths, tags, chars = collate(batch, self.tokenizers.words.vocab.pad_index)
        words, lengths, tags = tensors(words, lengths, tags)
        if self.word_dropout is not None:
            words = self.word_dropout(words)  # chars still spell the real word
        words, lengths, tags = (t.to(self.device) for t in (words, lengths, tags))
        chars = CharBatch(*tensors(*chars)).to(self.device) if chars else None
        logits = model(words, lengths, chars)  # (B, T, K)
        return (
            *token_cross_entropy(logits, tags, IGNORE, self.cfg.train.label_smoothing),
            len(batch),
        )

    def scores(self, split: str) -> dict[str, float]:
        return score_split(self, evaluate, split)

    def validate(self, model: nn.Module) -> dict[str, float]:
        return self.scores("valid")


class Tagging(TaskTraining):
    """``task: tag``: words (``tokenizer.json``), characters (``chars/``), tags (``labels.json``),
    a ``SequenceTagger``."""

    training_class = TaggingTask

    def read_data(self, cfg: Config) -> dict[str, list[TaggedSentence]]:
        if cfg.data.tokenizer != "word":
            raise UserError(
                "data.tokenizer: tagging takes its tokens as given (word), "
                f"not {cfg.data.tokenizer!r}"
            )
        return read_splits(cfg.data, lambda path: read_file(cfg, path))

    def build_vocabularies(self, cfg: Config, data: dict[str, list[TaggedSentence]]) -> Tokenizers:
        data_cfg, train = cfg.data, data["train"]
        counts = Counter(
            word_form(t, data_cfg.lowercase, data_cfg.normalize) for s in train for t in s.tokens
        )
        words = WordTokenizer(
            Vocabulary.build(counts, [PAD, UNK, EOS, BOS], data_cfg.max_size, data_cfg.min_freq),
            data_cfg.lowercase,
            data_cfg.normalize,
        )
        chars = (
            CharTokenizer.train("".join(t for s in train for t in s.tokens))
            if cfg.model.char_features
            else None
        )
        return Tokenizers(words, chars, LabelVocabulary.build([t for s in train for t in s.tags]))

    def save_vocabularies(self, tokenizers: Tokenizers, directory: Path) -> None:
        tokenizers.words.save(directory)
        if tokenizers.chars is not None:
            (Path(directory) / CHARS_DIR).mkdir(exist_ok=True)
            tokenizers.chars.save(Path(directory) / CHARS_DIR)
        tokenizers.tags.save(Path(directory) / LABELS_FILE)

    def build_model(self, cfg: Config, tokenizers: Tokenizers) -> SequenceTagger:
        words, chars, tags = tokenizers
        if cfg.model.char_features and chars is None:
            raise UserError(
                "model.char_features: the run has no character vocabulary (chars/tokenizer.json)"
            )
        model = SequenceTagger(
            len(words.vocab),
            len(tags),
            cfg.model,
            words.vocab.pad_index,
            len(chars.vocab) if chars is not None else 0,
        )
        embedding_from_vectors(
            model.embedding,
            cfg.model.pretrained_embeddings,
            words.vocab,
            cfg.model.freeze_embeddings,
        )
        return model

    def transfer_targets(
        self, cfg: Config, model: SequenceTagger, tokenizers: Tokenizers
    ) -> list[TransferTarget]:
        return [encoder_target(cfg, model, tokenizers.words.vocab)]

    def test_metrics(
        self, task: TaggingTask, data: dict[str, list[TaggedSentence]]
    ) -> dict[str, float]:
        return task.scores("test")


TRAINING = Tagging()
