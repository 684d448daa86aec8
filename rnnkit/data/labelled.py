"""Labelled text for classification and tagging: the readers and the label vocabulary.

Four formats, chosen by ``data.format`` (``auto``: ``.csv`` -> csv, ``.conllu`` -> conllu,
otherwise label_text for classification, token_tag for tagging and plain text, ``text``, for
a language model, which reads the text of any of the four without its labels:
``read_unlabelled``)::

    label_text   1<TAB>a gripping , funny film      one example per line: the label, then a
                 0 apparently reassembled ...       tab (or, without a tab, the first space)
    csv          label,text                         a header row names the columns
                 1,"a gripping, funny film"         (data.label_column, data.text_column)
    conllu       1<TAB>What<TAB>what<TAB>PRON<TAB>WP<TAB>...   CoNLL-U: 10 columns, FORM is
                 (blank line between sentences)     the token, UPOS (4) or XPOS (5) the tag;
                                                    ``#`` comments, multiword tokens ``n-m``
                                                    and empty nodes ``n.k`` are skipped
    token_tag    The<TAB>DET                        one token and its tag per line,
                 dog<TAB>NOUN                       a blank line between sentences
                 (blank line)

Every reader returns its examples with the line each starts on, and every malformed line is
a one-line ``UserError`` naming file and line, e.g. ``train.conllu:17: expected 10
tab-separated columns, found 9``.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from rnnkit.atomic import atomic_write_text
from rnnkit.config import key
from rnnkit.errors import UserError
from rnnkit.textio import read_lines, read_text

LABELS_FILE = "labels.json"


class LabelledText(NamedTuple):
    """One classification example: the label, the text, and the line it was read from."""

    label: str
    text: str
    line: int


class TaggedSentence(NamedTuple):
    """One tagging example: tokens and their tags (as many), and the line the sentence starts on."""

    tokens: list[str]
    tags: list[str]
    line: int


FORMATS = ("auto", "text", "label_text", "csv", "conllu", "token_tag")  # data.format
TAG_COLUMNS = {"upos": 3, "xpos": 4}  # data.tag_column -> its CoNLL-U column (0-based)


@dataclass
class FormatKeys:
    """The file format (auto: .csv -> csv, .conllu -> conllu, otherwise the task's own: plain
    text for lm, label_text for classify, token_tag for tag)."""

    format: str = key("auto", choices=FORMATS)


@dataclass
class TextColumnKeys:
    text_column: str = key("text")  # csv: the column that holds the text


def resolve_format(fmt: str, path: str | Path, otherwise: str) -> str:
    """``data.format`` for this file: ``auto`` picks by extension (.csv, .conllu), else
    ``otherwise`` (the reader's plain format)."""
    if fmt != "auto":
        return fmt
    suffix = Path(path).suffix.lower()
    if suffix in (".csv", ".conllu"):
        return suffix[1:]
    return otherwise


def read_label_text(path: str | Path) -> list[LabelledText]:
    """``label<TAB>text`` lines, or ``label text`` (split at the first space) where there is no
    tab. Blank lines are skipped; a line with no label or no text is an error."""
    examples = []
    for number, line in enumerate(read_lines(path), 1):
        if not line.strip():
            continue
        label, separator, text = (
            line.partition("\t") if "\t" in line else line.strip().partition(" ")
        )
        label, text = label.strip(), text.strip()
        if not label:
            raise UserError(
                f"{path}:{number}: missing label (expected 'label<TAB>text' or 'label text')"
            )
        if not separator or not text:
            raise UserError(
                f"{path}:{number}: missing text after the label {label!r} "
                "(expected 'label<TAB>text' or 'label text')"
            )
        examples.append(LabelledText(label, text, number))
    return examples


def read_csv(path: str | Path, label_column: str, text_column: str) -> list[LabelledText]:
    """CSV (RFC 4180 quoting) whose header row names ``label_column`` and ``text_column``."""
    rows = csv.reader([line + "\n" for line in read_lines(path)])  # line_num counts these lines
    try:
        header = next(rows)
        columns = {name.strip(): i for i, name in enumerate(header)}
        for name, key in ((label_column, "label_column"), (text_column, "text_column")):
            if name not in columns:
                raise UserError(
                    f"{path}:1: no column {name!r} (data.{key}) in the header; "
                    f"columns: {', '.join(repr(c) for c in columns)}"
                )
        label_at, text_at = columns[label_column], columns[text_column]
        examples = []
        start = rows.line_num + 1
        for row in rows:
            number, start = start, rows.line_num + 1
            if not any(field.strip() for field in row):
                continue
            if len(row) != len(header):
                raise UserError(f"{path}:{number}: {len(row)} fields, the header has {len(header)}")
            label, text = row[label_at].strip(), row[text_at].strip()
            if not label:
                raise UserError(f"{path}:{number}: missing label (column {label_column!r})")
            if not text:
                raise UserError(f"{path}:{number}: missing text (column {text_column!r})")
            examples.append(LabelledText(label, text, number))
    except csv.Error as e:
        raise UserError(f"{path}:{rows.line_num}: malformed CSV ({e})") from None
    return examples


def read_conllu(path: str | Path, tag_column: str = "upos") -> list[TaggedSentence]:
    """CoNLL-U sentences: (FORM, UPOS or XPOS) of each word line, in order.

    Checked: 10 tab-separated columns, word IDs 1, 2, 3, ... within a sentence, a non-empty FORM
    and a tag other than ``_``.
    """
    column = TAG_COLUMNS[tag_column]
    sentences: list[TaggedSentence] = []
    tokens: list[str] = []
    tags: list[str] = []
    first = 0
    lines = read_lines(path)
    for number, line in enumerate(lines + [""], 1):
        if not line.strip():
            if tokens:
                sentences.append(TaggedSentence(tokens, tags, first))
            tokens, tags = [], []
            continue
        if line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 10:
            raise UserError(
                f"{path}:{number}: expected 10 tab-separated CoNLL-U columns, found {len(fields)}"
            )
        word_id = fields[0]
        if "-" in word_id or "." in word_id:  # a multiword token's range, an empty node
            continue
        if not word_id.isdigit() or int(word_id) != len(tokens) + 1:
            raise UserError(f"{path}:{number}: word ID {word_id!r}, expected {len(tokens) + 1}")
        if not fields[1]:
            raise UserError(f"{path}:{number}: empty FORM (column 2)")
        if fields[column] in ("", "_"):
            raise UserError(f"{path}:{number}: no {tag_column.upper()} tag (column {column + 1})")
        if not tokens:
            first = number
        tokens.append(fields[1])
        tags.append(fields[column])
    return sentences


def read_token_tag(path: str | Path) -> list[TaggedSentence]:
    """``token<TAB>tag`` lines, sentences separated by blank lines; a line with no tag or more
    than one is an error."""
    sentences: list[TaggedSentence] = []
    tokens: list[str] = []
    tags: list[str] = []
    first = 0
    for number, line in enumerate(read_lines(path) + [""], 1):
        if not line.strip():
            if tokens:
                sentences.append(TaggedSentence(tokens, tags, first))
            tokens, tags = [], []
            continue
        fields = [field.strip() for field in line.split("\t")]
        if len(fields) == 1:
            raise UserError(
                f"{path}:{number}: token {fields[0]!r} has no tag (expected 'token<TAB>tag')"
            )
        if len(fields) > 2:
            raise UserError(
                f"{path}:{number}: {len(fields) - 1} tags for one token (expected 'token<TAB>tag')"
            )
        if not fields[0] or not fields[1]:
            raise UserError(
                f"{path}:{number}: empty {'token' if not fields[0] else 'tag'} "
                "(expected 'token<TAB>tag')"
            )
        if not tokens:
            first = number
        tokens.append(fields[0])
        tags.append(fields[1])
    return sentences


def read_tagged(path: str | Path, fmt: str, tag_column: str = "upos") -> list[TaggedSentence]:
    """Tagged sentences from a CoNLL-U or token<TAB>tag file (``fmt`` as ``data.format``)."""
    fmt = resolve_format(fmt, path, otherwise="token_tag")
    if fmt == "conllu":
        return read_conllu(path, tag_column)
    if fmt == "token_tag":
        return read_token_tag(path)
    other = "language models" if fmt == "text" else "classification"
    raise UserError(
        f"{path}: data.format {fmt!r} is for {other}; tagging reads conllu or token_tag"
    )


def read_classified(
    path: str | Path, fmt: str, label_column: str = "label", text_column: str = "text"
) -> list[LabelledText]:
    """Labelled texts from a label_text or CSV file (``fmt`` as ``data.format``)."""
    fmt = resolve_format(fmt, path, otherwise="label_text")
    if fmt == "label_text":
        return read_label_text(path)
    if fmt == "csv":
        return read_csv(path, label_column, text_column)
    other = "language models" if fmt == "text" else "tagging"
    raise UserError(
        f"{path}: data.format {fmt!r} is for {other}; classification reads label_text or csv"
    )


def read_unlabelled(path: str | Path, fmt: str, text_column: str = "text") -> list[str]:
    """The text of a labelled file, one line per example (a tagged sentence's tokens joined by
    spaces), its labels dropped: what a language model pretrains on (``rnnkit/transfer.py``).
    ``text`` (and ``auto`` on a file that is neither .csv nor .conllu): the file's lines."""
    fmt = resolve_format(fmt, path, otherwise="text")
    if fmt == "text":
        return read_lines(path)
    if fmt in ("conllu", "token_tag"):
        return [" ".join(s.tokens) for s in read_tagged(path, fmt)]
    return [e.text for e in read_classified(path, fmt, text_column=text_column)]


class LabelVocabulary:
    """The label (or tag) names of a task, sorted, so that the same data gives the same indices;
    saved as ``labels.json``: ``{"labels": [name, ...]}``."""

    def __init__(self, names: list[str]) -> None:
        if not names or len(set(names)) != len(names):
            raise ValueError(f"labels must be distinct and at least one: {names[:10]}")
        self.names = names
        self.index = {name: i for i, name in enumerate(names)}

    @classmethod
    def build(cls, labels: Counter[str] | list[str]) -> LabelVocabulary:
        return cls(sorted(set(labels)))

    def __len__(self) -> int:
        return len(self.names)

    def save(self, path: str | Path) -> None:
        atomic_write_text(path, json.dumps({"labels": self.names}, ensure_ascii=False, indent=1))

    @classmethod
    def load(cls, path: str | Path) -> LabelVocabulary:
        try:
            names = json.loads(read_text(path))["labels"]
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise TypeError("labels must be a list of strings")
            return cls(names)
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise UserError(f"{path}: not a label file ({type(e).__name__}: {e})") from None
