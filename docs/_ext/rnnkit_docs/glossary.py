"""The glossary (docs/glossary.md) as data, and where its terms occur in a page's prose.

A row of the glossary's table: ``| English | Tiếng Việt | source |``. The English cell may hold
several forms of one term separated by `` / `` and an abbreviation in brackets:
``backpropagation through time (BPTT)``. A term is found as a whole word, case-insensitively; an
English form also in its plural (``hidden states``). Where terms overlap ("lan truyền ngược" in
"lan truyền ngược qua thời gian"), the longer one takes the words.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from .pages import DOCS

GLOSSARY = DOCS / "glossary.md"


@dataclass(frozen=True)
class Term:
    english: tuple[str, ...]
    abbreviation: str | None
    vietnamese: str
    source: str

    @property
    def same_in_both(self) -> bool:
        return self.vietnamese.lower() in (e.lower() for e in self.english)


def terms(path: Path = GLOSSARY) -> list[Term]:
    rows = []
    in_table = False
    for line in path.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| English | Tiếng Việt"):
            in_table = True
            continue
        if not in_table or not line.startswith("|") or set(line) <= set("|- "):
            continue
        english, vietnamese, source = cells[:3]
        abbreviation = None
        if m := re.search(r"\s*\(([^)]*)\)\s*$", english):
            abbreviation, english = m.group(1), english[: m.start()]
        forms = tuple(f.strip() for f in english.split(" / "))
        rows.append(Term(forms, abbreviation, vietnamese, source))
    return rows


def _normal(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def _pattern(phrase: str, plural: bool) -> re.Pattern:
    words = r"\s+".join(re.escape(w) for w in _normal(phrase).split())
    suffix = "(?:s|es)?" if plural else ""
    return re.compile(rf"(?<![\w-]){words}{suffix}(?![\w-])", re.IGNORECASE)


def occurrences(text: str, glossary: list[Term], language: str) -> dict[int, list[tuple]]:
    """Term index -> the (start, end) spans where the term occurs in ``text``, longest terms
    first, each word counted once."""
    text = _normal(text)
    phrases = []
    for index, term in enumerate(glossary):
        forms = term.english if language == "en" else (term.vietnamese,)
        phrases += [(form, index) for form in forms]
    phrases.sort(key=lambda item: -len(item[0]))
    taken = [False] * len(text)
    found: dict[int, list[tuple]] = {}
    for phrase, index in phrases:
        for m in _pattern(phrase, plural=language == "en").finditer(text):
            if any(taken[m.start() : m.end()]):
                continue
            taken[m.start() : m.end()] = [True] * (m.end() - m.start())
            found.setdefault(index, []).append((m.start(), m.end()))
    for spans in found.values():
        spans.sort()
    return found


def bracketed_english(text: str, end: int, term: Term) -> bool:
    """Whether the English term follows in brackets: 'trạng thái ẩn (hidden state)'."""
    after = _normal(text)[end : end + 120]
    names = [*term.english, *([term.abbreviation] if term.abbreviation else [])]
    return any(
        re.match(r"\s*\(\s*" + r"\s+".join(map(re.escape, name.split())), after, re.IGNORECASE)
        for name in names
    )
