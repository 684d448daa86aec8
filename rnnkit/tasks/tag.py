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
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from ..config import Config
from ..data.batch_order import BucketBatches
from ..data.embeddings import embedding_from_vectors
from ..data.labelled import LABELS_FILE, LabelVocabulary, TaggedSentence, read_tagged
from ..data.padding import pad_ids
from ..data.splits import read_splits
from ..data.tokenizers import (
    BOS,
    EOS,
    PAD,
    TOKENIZER_FILE,
    UNK,
    CharTokenizer,
    Vocabulary,
    WordTokenizer,
    load_tokenizer,
)
from ..errors import UserError
from ..losses import token_cross_entropy
from ..metrics import accuracy, entity_scores, is_entity_tagset
from ..models.tagger import CharBatch, SequenceTagger
from ..progress import progress
from ..training.distributed import SINGLE_PROCESS, Distributed
from .base import Task, VocabularyTask, score_split


class Tokenizers(NamedTuple):
    """A tagging run's vocabularies: words, characters (with ``model.char_features``) and tags."""

    words: WordTokenizer
    chars: CharTokenizer | None
    tags: LabelVocabulary


IGNORE = -100  # the target of padding (and of a gold tag the run does not know): no loss
CHARS_DIR = "chars"


def read_file(cfg: Config, path: str | Path) -> list[TaggedSentence]:
    return read_tagged(path, cfg.data.format, cfg.data.tag_column)


def word_form(token: str, lowercase: bool, normalize: bool) -> str:
    """The vocabulary entry of a given token, lowercased / NFKC-normalised as asked (the word
    tokenizer's options), never split."""
    return " ".join(WordTokenizer.words(token, lowercase, normalize)) or token


class EncodedSentence:
    """A sentence as ids: words (T,), chars (T lists), tags (T,) (IGNORE where unknown)."""

    __slots__ = ("words", "chars", "tags")

    def __init__(
        self, tokenizers: Tokenizers, tokens: list[str], tags: list[str] | None = None
    ) -> None:
        words, chars, tag_vocab = tokenizers
        self.words = words.vocab.indices(
            [word_form(t, words.lowercase, words.normalize) for t in tokens]
        )
        self.chars = [tuple(chars.encode(t)) for t in tokens] if chars is not None else None
        self.tags = [tag_vocab.index.get(t, IGNORE) for t in tags] if tags is not None else None


def collate(
    sentences: list[EncodedSentence], pad: int
) -> tuple[Tensor, Tensor, Tensor | None, CharBatch | None]:
    """-> words (B, T) padded with ``pad``, lengths (B,), tags (B, T) padded with IGNORE (None
    without tags), and the char batch of the distinct spellings (None without char features)."""
    lengths = torch.tensor([len(s.words) for s in sentences])
    words = pad_ids([s.words for s in sentences], pad)
    tags = pad_ids([s.tags for s in sentences], IGNORE) if sentences[0].tags is not None else None
    chars = None
    if sentences[0].chars is not None:
        rows: dict[tuple[int, ...], int] = {
            (0,): 0
        }  # row 0: padding positions point at one pad char
        index = torch.zeros_like(words)
        for b, s in enumerate(sentences):
            for t, spelling in enumerate(s.chars):
                index[b, t] = rows.setdefault(spelling or (0,), len(rows))
        char_lengths = torch.tensor([len(spelling) for spelling in rows])
        table = pad_ids(list(rows), 0)  # dicts keep insertion order: spelling i is row i
        chars = CharBatch(table, char_lengths, index)
    return words, lengths, tags, chars


@torch.no_grad()
def predict_encoded(
    forward: Callable[[Tensor, Tensor, CharBatch | None], Tensor],
    tokenizers: Tokenizers,
    sentences: list[EncodedSentence],
    device: torch.device,
    batch_size: int = 100,
) -> tuple[list[list[int]], float, int]:
    """Tag ids of every sentence (input order), and the summed loss and count of known gold tags.
    ``forward(words, lengths, chars) -> logits (B, T, K)``: a model in eval mode, or an engine's
    ``tag``."""
    predictions: list[list[int]] = [[] for _ in sentences]
    total, count = 0.0, 0
    nonempty = [i for i, s in enumerate(sentences) if s.words]
    if nonempty:
        batches = BucketBatches(
            [len(sentences[i].words) for i in nonempty], batch_size, shuffle=False
        )
        for k in progress(range(len(batches)), desc="tag"):
            rows = [nonempty[i] for i in batches.indices(0, k)]
            words, lengths, tags, chars = collate(
                [sentences[i] for i in rows], tokenizers.words.vocab.pad_index
            )
            logits = forward(
                words.to(device), lengths.to(device), chars.to(device) if chars else None
            )  # (B, T, K)
            if tags is not None:
                loss, n = token_cross_entropy(logits, tags.to(device), IGNORE)
                total, count = total + loss.item(), count + n
            best = logits.argmax(-1).cpu()  # (B, T)
            for b, i in enumerate(rows):
                predictions[i] = best[b, : int(lengths[b])].tolist()
    return predictions, total, count


def predict(
    forward: Callable[[Tensor, Tensor, CharBatch | None], Tensor],
    tokenizers: Tokenizers,
    sentences: list[list[str]],
    device: torch.device,
    batch_size: int = 100,
) -> list[list[str]]:
    """Token lists -> their tags (an empty sentence gets none)."""
    encoded = [EncodedSentence(tokenizers, tokens) for tokens in sentences]
    ids, _, _ = predict_encoded(forward, tokenizers, encoded, device, batch_size)
    names = tokenizers.tags.names
    return [[names[i] for i in row] for row in ids]


def evaluate(
    forward: Callable[[Tensor, Tensor, CharBatch | None], Tensor],
    tokenizers: Tokenizers,
    sentences: list[TaggedSentence],
    device: torch.device,
    name: str = "data",
    batch_size: int = 100,
) -> dict[str, float]:
    """loss (per token with a known tag), accuracy (per token), tokens, sentences; and
    entity_precision / entity_recall / entity_f1 when the tags are BIO/IOBES. A gold tag the run
    never saw counts as a wrong prediction; a file with no known tag at all is a UserError."""
    encoded = [EncodedSentence(tokenizers, s.tokens, s.tags) for s in sentences]
    if all(t == IGNORE for s in encoded for t in s.tags):
        shown = ", ".join(tokenizers.tags.names[:8])
        raise UserError(
            f"{name}: none of its tags is one the run knows ({shown}, ...); "
            "another tag set (data.tag_column)?"
        )
    ids, total, count = predict_encoded(forward, tokenizers, encoded, device, batch_size)
    names = tokenizers.tags.names
    predicted = [[names[i] for i in row] for row in ids]
    gold = [s.tags for s in sentences]
    flat_gold = [t for row in gold for t in row]
    scores = {
        "loss": total / max(count, 1),
        "accuracy": accuracy(flat_gold, [t for row in predicted for t in row]),
        "tokens": len(flat_gold),
        "sentences": len(sentences),
    }
    if is_entity_tagset(names):
        scores |= entity_scores(gold, predicted)
    return scores


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
        self.train = BucketBatches(
            [len(s.words) for s in self.sentences],
            cfg.data.batch_size // env.world_size,
            seed=cfg.seed,
            rank=env.rank,
            world_size=env.world_size,
        )

    def num_batches(self) -> int:
        return len(self.train)

    def batch_loss(self, model: nn.Module, epoch: int, k: int) -> tuple[Tensor, int, int]:
        batch = [self.sentences[i] for i in self.train.indices(epoch, k)]
        words, lengths, tags, chars = collate(batch, self.tokenizers.words.vocab.pad_index)
        logits = model(
            words.to(self.device), lengths.to(self.device), chars.to(self.device) if chars else None
        )  # (B, T, K)
        return (
            *token_cross_entropy(
                logits, tags.to(self.device), IGNORE, self.cfg.train.label_smoothing
            ),
            len(batch),
        )

    def scores(self, split: str) -> dict[str, float]:
        return score_split(self, evaluate, split)

    def validate(self, model: nn.Module) -> dict[str, float]:
        return self.scores("valid")


class Tagging(Task):
    """``task: tag``: words (``tokenizer.json``), characters (``chars/``), tags (``labels.json``),
    a ``SequenceTagger``."""

    name = "tag"
    run_files = (TOKENIZER_FILE, CHARS_DIR, LABELS_FILE)
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

    def load_vocabularies(self, directory: Path) -> Tokenizers:
        chars_dir = Path(directory) / CHARS_DIR
        chars = load_tokenizer(chars_dir) if chars_dir.is_dir() else None
        tags = LabelVocabulary.load(Path(directory) / LABELS_FILE)
        return Tokenizers(load_tokenizer(directory), chars, tags)

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

    def test_metrics(
        self, task: TaggingTask, data: dict[str, list[TaggedSentence]]
    ) -> dict[str, float]:
        return task.scores("test")

    def loaded(self, path: Path, cfg: Config, tokenizers: Tokenizers, engine: Any) -> Any:
        from ..api.labelling import TaggerRun

        return TaggerRun(path, cfg, tokenizers, engine)
