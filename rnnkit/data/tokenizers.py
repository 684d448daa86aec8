"""Text <-> token ids: the vocabulary and the three tokenizers (characters, words, subwords).

Every tokenizer is built from the training text, turns one line into ids (``encode``), ids back
into text (``decode``), and a whole corpus into one stream of ids for language modelling
(``encode_corpus``). Index 0 is always ``<pad>``, so padding and ``ignore_index`` agree
everywhere.

- ``char``: every character is a token, "\\n" included; specials ``<pad> <unk>``.
- ``word``: ``str.split()`` tokens, each line closed by ``<eos>`` as in the Penn Treebank
  language-model setup (Mikolov et al. 2010; pytorch/examples word_language_model); specials
  ``<pad> <unk> <eos> <bos>``.
- ``subword``: a sentencepiece model (Kudo & Richardson 2018), unigram (Kudo 2018) or BPE
  (Sennrich et al. 2016), lines closed by ``<eos>`` as for words.

A tokenizer is saved as ``tokenizer.json`` (kind, options, vocabulary), plus the sentencepiece
model ``tokenizer.model`` for subwords, and read back by ``load_tokenizer``.
"""

from __future__ import annotations

import io
import json
import unicodedata
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import sentencepiece as spm

from rnnkit.atomic import atomic_write_bytes
from rnnkit.config import COUNT, key
from rnnkit.errors import UserError
from rnnkit.textio import read_text, split_lines

if TYPE_CHECKING:
    from rnnkit.config import DataConfig

PAD = "<pad>"
UNK = "<unk>"
EOS = "<eos>"
BOS = "<bos>"

TOKENIZER_FILE = "tokenizer.json"
SUBWORD_MODEL_FILE = "tokenizer.model"
TOKENIZERS = ("char", "word", "subword")  # data.tokenizer (TOKENIZER_KINDS holds each class)
SUBWORD_MODELS = ("unigram", "bpe")  # data.subword_model: sentencepiece's model types


@dataclass
class TokenizerKeys:
    """How text becomes tokens (``tokenizer_from_config``)."""

    tokenizer: str = key("word", choices=TOKENIZERS)
    max_size: int | None = key(None, **COUNT)  # vocabulary size, specials included
    min_freq: int = key(1, **COUNT)
    lowercase: bool = key(False)  # word
    normalize: bool = key(False)  # word: Unicode NFKC before splitting


@dataclass
class SubwordKeys:
    vocab_size: int = key(8000, **COUNT)  # subword
    subword_model: str = key("unigram", choices=SUBWORD_MODELS)


class Vocabulary:
    """The list of token types: ``itos[i]`` is the token of index i, ``stoi`` its inverse.

    ``itos[0]`` is always ``<pad>``; the other specials follow it, then the ordinary tokens.
    """

    def __init__(self, itos: list[str]) -> None:
        if not itos or itos[0] != PAD:
            raise ValueError(f"a vocabulary starts with {PAD}")
        if len(set(itos)) != len(itos):
            duplicates = sorted(t for t, n in Counter(itos).items() if n > 1)
            raise ValueError(f"duplicate tokens in the vocabulary: {duplicates[:5]}")
        self.itos = itos
        self.stoi = {token: i for i, token in enumerate(itos)}

    @classmethod
    def build(
        cls,
        counts: Counter[str],
        specials: list[str],
        max_size: int | None = None,
        min_freq: int = 1,
    ) -> Vocabulary:
        """specials, then the tokens seen at least ``min_freq`` times by descending count, ties in
        alphabetical order (the same text always gives the same indices), cut to ``max_size``
        entries in all, specials included.

        A special that occurs in the text (``<unk>`` in the Penn Treebank files) keeps its special
        index and is not counted again as an ordinary token.
        """
        if max_size is not None and max_size <= len(specials):
            raise UserError(
                f"vocabulary max_size {max_size} leaves no room beside the "
                f"{len(specials)} special tokens {specials}"
            )
        ordinary = sorted(
            (t for t, n in counts.items() if n >= min_freq and t not in specials),
            key=lambda t: (-counts[t], t),
        )
        if max_size is not None:
            ordinary = ordinary[: max_size - len(specials)]
        return cls(specials + ordinary)

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    def index(self, token: str) -> int:
        """The index of ``token``; an unknown token gets ``unk_index``, or a UserError if the
        vocabulary has no ``<unk>``."""
        return self.indices([token])[0]

    def indices(self, tokens: Sequence[str]) -> list[int]:
        """``[index(t) for t in tokens]``, at the speed a whole corpus needs."""
        stoi, unk = self.stoi, self.unk_index
        ids = [stoi.get(t, unk) for t in tokens]
        if unk is None and None in ids:
            unknown = next(t for t in tokens if t not in stoi)
            raise UserError(f"token {unknown!r} is not in the vocabulary (which has no {UNK})")
        return ids

    @property
    def pad_index(self) -> int:
        return 0

    @property
    def unk_index(self) -> int | None:
        """None when the vocabulary has no ``<unk>``; likewise for eos and bos."""
        return self.stoi.get(UNK)

    @property
    def eos_index(self) -> int | None:
        return self.stoi.get(EOS)

    @property
    def bos_index(self) -> int | None:
        return self.stoi.get(BOS)

    def to_json(self) -> dict[str, Any]:
        """``{"itos": [token, ...]}``."""
        return {"itos": self.itos}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Vocabulary:
        """Inverse of ``to_json``; ValueError if ``data`` is not a vocabulary."""
        itos = data["itos"]
        if not isinstance(itos, list) or not all(isinstance(t, str) for t in itos):
            raise ValueError("itos must be a list of strings")
        return cls(itos)


class Tokenizer(ABC):
    """What every tokenizer offers; ``kind`` names it in configs and in ``tokenizer.json``."""

    kind: ClassVar[str]

    def __init__(self, vocab: Vocabulary) -> None:
        self.vocab = vocab

    @abstractmethod
    def encode(self, text: str) -> list[int]:
        """One line (or any segment) -> ids, no ``<eos>`` added."""

    @abstractmethod
    def decode(self, ids: Sequence[int]) -> str:
        """ids -> text; ``<pad>`` and ``<bos>`` are skipped, ``<eos>`` becomes "\\n"."""

    def decode_splits_after(self, token: int) -> bool:
        """Whether text decodes in two parts at ``token``: ``decode(a + [token] + b) ==
        decode(a + [token]) + decode(b)`` for every a and b. True after ``<eos>`` (a line
        decodes alone); ``generate_stream`` then decodes only the text after it."""
        return token == self.vocab.eos_index

    def encode_corpus(self, text: str) -> list[int]:
        """A corpus -> one stream of ids: each line's tokens then ``<eos>`` (an empty line gives
        ``<eos>`` alone), as ``line.split() + ["<eos>"]`` in the PTB language-model setup."""
        eos = self.vocab.eos_index
        ids: list[int] = []
        for line in split_lines(text):
            ids += self.encode(line)
            ids.append(eos)
        return ids

    def options(self) -> dict[str, Any]:
        """The keyword arguments, besides the vocabulary, that rebuild this tokenizer."""
        return {}

    def save(self, directory: Path) -> None:
        """Write ``directory/tokenizer.json``: ``{"kind", "options", "vocabulary"}``."""
        document = {
            "kind": self.kind,
            "options": self.options(),
            "vocabulary": self.vocab.to_json(),
        }
        atomic_write_bytes(
            Path(directory) / TOKENIZER_FILE,
            json.dumps(document, ensure_ascii=False, indent=1).encode("utf-8"),
        )

    @classmethod
    def _load(cls, directory: Path, vocab: Vocabulary, options: dict[str, Any]) -> Tokenizer:
        """Rebuild from what ``save`` wrote (``load_tokenizer`` has read ``tokenizer.json``)."""
        return cls(vocab, **options)

    def _decode_lines(self, ids: Sequence[int]) -> list[list[int]]:
        """ids -> the ids of each line, split at ``<eos>``, without ``<pad>`` and ``<bos>``."""
        skip = {self.vocab.pad_index, self.vocab.bos_index}
        lines: list[list[int]] = [[]]
        for i in ids:
            if i == self.vocab.eos_index:
                lines.append([])
            elif i not in skip:
                lines[-1].append(i)
        return lines


class CharTokenizer(Tokenizer):
    """Characters as tokens; a newline is a character, so a corpus needs no ``<eos>``."""

    kind = "char"

    @classmethod
    def train(
        cls,
        text: str,
        max_size: int | None = None,
        min_freq: int = 1,
        sentence_markers: bool = False,
    ) -> CharTokenizer:
        """``sentence_markers``: add ``<eos>`` and ``<bos>`` (a translation target needs them)."""
        specials = [PAD, UNK, EOS, BOS] if sentence_markers else [PAD, UNK]
        return cls(Vocabulary.build(Counter(text), specials, max_size, min_freq))

    def encode(self, text: str) -> list[int]:
        return self.vocab.indices(text)

    def decode(self, ids: Sequence[int]) -> str:
        """ids -> text (``<pad>`` skipped; ``<unk>`` is written as "<unk>")."""
        return "".join(self.vocab.itos[i] for i in ids if i != self.vocab.pad_index)

    def decode_splits_after(self, token: int) -> bool:
        return True  # one character per id: text splits anywhere

    def encode_corpus(self, text: str) -> list[int]:
        """Every character, "\\n" included."""
        return self.encode(text)


class WordTokenizer(Tokenizer):
    """Whitespace-separated words, optionally Unicode-normalised (NFKC: ligatures, full-width
    forms and composed accents made canonical) and lowercased.

    On the Penn Treebank (Mikolov's ptb.train.txt, which already holds ``<unk>`` for its rare
    words) the vocabulary is its 10,000 types, ``<unk>`` and ``<eos>`` included, plus ``<pad>``
    and ``<bos>``: 10,002 entries, so the output layer has V = 10,002.
    """

    kind = "word"

    def __init__(self, vocab: Vocabulary, lowercase: bool = False, normalize: bool = False) -> None:
        super().__init__(vocab)
        self.lowercase, self.normalize = lowercase, normalize

    @classmethod
    def train(
        cls,
        text: str,
        max_size: int | None = None,
        min_freq: int = 1,
        lowercase: bool = False,
        normalize: bool = False,
    ) -> WordTokenizer:
        words = cls.words(text, lowercase, normalize)
        return cls(
            Vocabulary.build(Counter(words), [PAD, UNK, EOS, BOS], max_size, min_freq),
            lowercase,
            normalize,
        )

    @staticmethod
    def words(text: str, lowercase: bool, normalize: bool) -> list[str]:
        text = unicodedata.normalize("NFKC", text) if normalize else text
        return (text.lower() if lowercase else text).split()

    def options(self) -> dict[str, Any]:
        return {"lowercase": self.lowercase, "normalize": self.normalize}

    def encode(self, text: str) -> list[int]:
        return self.vocab.indices(self.words(text, self.lowercase, self.normalize))

    def decode(self, ids: Sequence[int]) -> str:
        """ids -> words joined by single spaces, one line per ``<eos>``."""
        itos = self.vocab.itos
        return "\n".join(" ".join(itos[i] for i in line) for line in self._decode_lines(ids))


class SubwordTokenizer(Tokenizer):
    """A sentencepiece model; its piece ids are the vocabulary indices
    (``<pad>`` 0, ``<unk>`` 1, ``<bos>`` 2, ``<eos>`` 3).

    sentencepiece normalises text (NFKC, runs of spaces collapsed), so ``decode(encode(x))`` is
    the normalised ``x``.
    """

    kind = "subword"
    MODEL_TYPES = SUBWORD_MODELS

    def __init__(self, model: bytes) -> None:
        """model: the serialized sentencepiece model (the bytes of ``tokenizer.model``)."""
        self.model = model
        self.processor = spm.SentencePieceProcessor(model_proto=model)
        super().__init__(
            Vocabulary(
                [self.processor.id_to_piece(i) for i in range(self.processor.get_piece_size())]
            )
        )

    @classmethod
    def train(
        cls, text: str, vocab_size: int = 8000, model_type: str = "unigram"
    ) -> SubwordTokenizer:
        """Train on the lines of ``text``, in memory (no files written).

        ``vocab_size`` is a hard limit: a text too small to fill it (or with more distinct
        characters than it allows) raises a UserError carrying sentencepiece's advice, e.g.
        "Please set it to a value <= 330", rather than silently giving a smaller vocabulary.
        """
        if model_type not in cls.MODEL_TYPES:
            raise UserError(
                f"unknown subword model_type {model_type!r}; "
                f"choose one of {', '.join(cls.MODEL_TYPES)}"
            )
        model = io.BytesIO()
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=(line for line in split_lines(text) if line.strip()),
                model_writer=model,
                vocab_size=vocab_size,
                model_type=model_type,
                character_coverage=1.0,
                pad_id=0,
                unk_id=1,
                bos_id=2,
                eos_id=3,
                pad_piece=PAD,
                unk_piece=UNK,
                bos_piece=BOS,
                eos_piece=EOS,
                # the default (4192 bytes) silently drops longer lines,
                # i.e. paragraph-per-line corpora
                max_sentence_length=1 << 20,
                # every sentence is used (no sampling), so training is deterministic
                input_sentence_size=0,
                num_threads=2,
                minloglevel=2,
            )
        except RuntimeError as e:
            reason = (
                str(e).split("] ")[-1].replace("\n", " ")
            )  # drop sentencepiece's source location
            raise UserError(
                f"subword tokenizer (vocab_size {vocab_size}, {model_type}): {reason}"
            ) from None
        return cls(model.getvalue())

    def encode(self, text: str) -> list[int]:
        return self.processor.encode(text, out_type=int)

    def decode(self, ids: Sequence[int]) -> str:
        return "\n".join(self.processor.decode(line) for line in self._decode_lines(ids))

    def save(self, directory: Path) -> None:
        """``tokenizer.json`` and the sentencepiece model ``tokenizer.model``."""
        atomic_write_bytes(Path(directory) / SUBWORD_MODEL_FILE, self.model)
        super().save(directory)

    @classmethod
    def _load(cls, directory: Path, vocab: Vocabulary, options: dict[str, Any]) -> SubwordTokenizer:
        path = Path(directory) / SUBWORD_MODEL_FILE
        try:
            tokenizer = cls(path.read_bytes(), **options)
        except FileNotFoundError:
            raise UserError(f"{path}: no such file") from None
        except RuntimeError:  # sentencepiece's parse error
            raise UserError(f"{path}: not a sentencepiece model") from None
        if tokenizer.vocab.itos != vocab.itos:
            raise UserError(f"{path}: does not match the vocabulary in {TOKENIZER_FILE}")
        return tokenizer


TOKENIZER_KINDS: dict[str, type[Tokenizer]] = {
    t.kind: t for t in (CharTokenizer, WordTokenizer, SubwordTokenizer)
}


def build_tokenizer(
    kind: str,
    text: str,
    *,
    max_size: int | None = None,
    min_freq: int = 1,
    lowercase: bool = False,
    normalize: bool = False,
    vocab_size: int = 8000,
    model_type: str = "unigram",
    sentence_markers: bool = False,
) -> Tokenizer:
    """Train a tokenizer of ``kind`` on the training text.

    max_size, min_freq: char and word vocabularies (max_size counts the specials);
    lowercase, normalize (NFKC): word only; vocab_size, model_type: subword only;
    sentence_markers: char only (word and subword vocabularies always hold ``<bos>`` and
    ``<eos>``).
    """
    if kind == "char":
        return CharTokenizer.train(text, max_size, min_freq, sentence_markers)
    if kind == "word":
        return WordTokenizer.train(text, max_size, min_freq, lowercase, normalize)
    if kind == "subword":
        return SubwordTokenizer.train(text, vocab_size, model_type)
    raise UserError(f"unknown tokenizer {kind!r}; choose one of {', '.join(TOKENIZER_KINDS)}")


def tokenizer_from_config(data: DataConfig, text: str, sentence_markers: bool = False) -> Tokenizer:
    """``build_tokenizer`` with the ``data.*`` keys of a config."""
    return build_tokenizer(
        data.tokenizer,
        text,
        max_size=data.max_size,
        min_freq=data.min_freq,
        lowercase=data.lowercase,
        normalize=data.normalize,
        vocab_size=data.vocab_size,
        model_type=data.subword_model,
        sentence_markers=sentence_markers,
    )


def load_tokenizer(directory: Path) -> Tokenizer:
    """The tokenizer ``save`` wrote into ``directory``; UserError naming the file at fault."""
    path = Path(directory) / TOKENIZER_FILE
    try:
        document = json.loads(read_text(path))
    except json.JSONDecodeError as e:
        raise UserError(f"{path}:{e.lineno}: malformed JSON ({e.msg})") from None
    try:
        kind = document["kind"]
        if kind not in TOKENIZER_KINDS:
            raise UserError(
                f"{path}: unknown tokenizer kind {kind!r}; "
                f"expected one of {', '.join(TOKENIZER_KINDS)}"
            )
        cls = TOKENIZER_KINDS[kind]
        vocab = Vocabulary.from_json(document["vocabulary"])
        options = document["options"]
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(f"{path}: not a tokenizer file ({type(e).__name__}: {e})") from None
    try:
        return cls._load(directory, vocab, options)
    except TypeError as e:  # options that this kind does not take
        raise UserError(f"{path}: bad options for a {cls.kind} tokenizer ({e})") from None
