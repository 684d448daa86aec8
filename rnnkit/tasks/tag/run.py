"""A loaded tagger: ``predict`` (a tag per token) and ``evaluate`` (token accuracy and, for
BIO/IOBES tag sets, entity precision/recall/F1); and the batching both share with the
training task.

Engine-neutral (``engine``): sentences become padded numpy batches (``collate``), the engine's
``tag`` gives logits (B, T, K) in its own arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from rnnkit.data.batch_order import BucketBatches
from rnnkit.data.labelled import LABELS_FILE, LabelVocabulary, TaggedSentence, read_tagged
from rnnkit.data.padding import pad_array
from rnnkit.data.tokenizers import CharTokenizer, WordTokenizer, load_tokenizer
from rnnkit.errors import UserError
from rnnkit.metrics import accuracy, entity_scores, is_entity_tagset
from rnnkit.progress import progress
from rnnkit.tasks.loaded import LoadedRun, labelled_examples


class Tokenizers(NamedTuple):
    """A tagging run's vocabularies: words, characters (with ``model.char_features``) and tags."""

    words: WordTokenizer
    chars: CharTokenizer | None
    tags: LabelVocabulary


IGNORE = -100  # the target of padding (and of a gold tag the run does not know): no loss
CHARS_DIR = "chars"


@dataclass
class Tagged:
    tokens: list[str]
    tags: list[str]


class CharIds(NamedTuple):
    """The characters of the distinct words of a batch: chars (U, L) padded with 0, lengths (U,)
    >= 1, and index (B, T): the row of ``chars`` that spells word (b, t). numpy int64; the
    PyTorch model takes them as its ``CharBatch``."""

    chars: np.ndarray
    lengths: np.ndarray
    index: np.ndarray


def read_file(cfg: Any, path: str | Path) -> list[TaggedSentence]:
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
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, CharIds | None]:
    """-> words (B, T) padded with ``pad``, lengths (B,), tags (B, T) padded with IGNORE (None
    without tags), and the char ids of the distinct spellings (None without char features)."""
    lengths = np.array([len(s.words) for s in sentences], dtype=np.int64)
    words = pad_array([s.words for s in sentences], pad)
    tags = pad_array([s.tags for s in sentences], IGNORE) if sentences[0].tags is not None else None
    chars = None
    if sentences[0].chars is not None:
        rows: dict[tuple[int, ...], int] = {(0,): 0}  # row 0: padding points at one pad char
        index = np.zeros_like(words)
        for b, s in enumerate(sentences):
            for t, spelling in enumerate(s.chars):
                index[b, t] = rows.setdefault(spelling or (0,), len(rows))
        char_lengths = np.array([len(spelling) for spelling in rows], dtype=np.int64)
        table = pad_array(list(rows), 0)  # dicts keep insertion order: spelling i is row i
        chars = CharIds(table, char_lengths, index)
    return words, lengths, tags, chars


def predict_encoded(
    engine: Any, tokenizers: Tokenizers, sentences: list[EncodedSentence], batch_size: int = 100
) -> tuple[list[list[int]], float, int]:
    """Tag ids of every sentence (input order), and the summed loss ``-log p(gold tag)`` and
    count of known gold tags, by length buckets of ``model.forward(words, lengths, chars)``."""
    predictions: list[list[int]] = [[] for _ in sentences]
    total, count = 0.0, 0
    nonempty = [i for i, s in enumerate(sentences) if s.words]
    if nonempty:
        batches = BucketBatches([len(sentences[i].words) for i in nonempty], batch_size)
        xp = engine.xp
        for k in progress(range(len(batches)), desc="tag"):
            rows = [nonempty[i] for i in batches.indices(0, k)]
            words, lengths, tags, chars = collate(
                [sentences[i] for i in rows], tokenizers.words.vocab.pad_index
            )
            logits = engine.call("forward", words, lengths, chars)  # (B, T, K)
            if tags is not None:
                known = tags != IGNORE  # (B, T)
                log_probs = xp.to_numpy(xp.log_softmax(logits))  # (B, T, K)
                picked = np.take_along_axis(log_probs, np.where(known, tags, 0)[..., None], -1)
                total, count = total - float(picked[..., 0][known].sum()), count + int(known.sum())
            best = xp.to_numpy(xp.argmax(logits))  # (B, T)
            for b, i in enumerate(rows):
                predictions[i] = best[b, : lengths[b]].tolist()
    return predictions, total, count


def predict(
    engine: Any, tokenizers: Tokenizers, sentences: list[list[str]], batch_size: int = 100
) -> list[list[str]]:
    """Token lists -> their tags (an empty sentence gets none)."""
    encoded = [EncodedSentence(tokenizers, tokens) for tokens in sentences]
    ids, _, _ = predict_encoded(engine, tokenizers, encoded, batch_size)
    names = tokenizers.tags.names
    return [[names[i] for i in row] for row in ids]


def evaluate(
    engine: Any,
    tokenizers: Tokenizers,
    sentences: list[TaggedSentence],
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
    ids, total, count = predict_encoded(engine, tokenizers, encoded, batch_size)
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


class TaggerGraphs:
    """An export's ``tagger`` graph standing in for ``SequenceTagger.forward``."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def forward(self, words: np.ndarray, lengths: np.ndarray, chars: CharIds | None) -> Any:
        extra = {} if chars is None else {"chars": chars.chars, "char_lengths": chars.lengths,
                                          "char_index": chars.index}  # fmt: skip
        return self.engine.run("tagger", words=words, lengths=lengths, **extra)["logits"]


class TaggerRun(LoadedRun):
    """``rnnkit.load`` of a tag run."""

    graphs = TaggerGraphs

    @staticmethod
    def load_vocabularies(directory: Path) -> Tokenizers:
        chars_dir = Path(directory) / CHARS_DIR
        chars = load_tokenizer(chars_dir) if chars_dir.is_dir() else None
        tags = LabelVocabulary.load(Path(directory) / LABELS_FILE)
        return Tokenizers(load_tokenizer(directory), chars, tags)

    def vocabulary_sizes(self) -> dict[str, int]:
        sizes = {"words": len(self.vocabularies.words.vocab), "tags": len(self.vocabularies.tags)}
        if self.vocabularies.chars is not None:
            sizes["chars"] = len(self.vocabularies.chars.vocab)
        return sizes

    def predict(
        self, sentences: str | Sequence[str | Sequence[str]], name: str = "input"
    ) -> list[Tagged]:
        """Tag each sentence: a list of tokens, or a string split at whitespace (``name``: where
        they came from, for symmetry with ``ClassifierRun.predict``; tagging has no bad input)."""
        if isinstance(sentences, str):
            sentences = [sentences]
        tokens = [s.split() if isinstance(s, str) else list(s) for s in sentences]
        tags = predict(self.engine, self.vocabularies, tokens, self.cfg.data.eval_batch_size)
        return [Tagged(t, g) for t, g in zip(tokens, tags, strict=True)]

    def evaluate(self, split: str = "test", data: str | Path | None = None) -> dict[str, Any]:
        sentences, name = labelled_examples(self, split, data, read_file)
        batch_size = self.cfg.data.eval_batch_size
        return evaluate(self.engine, self.vocabularies, sentences, name, batch_size)
