"""A tutorial page's MyST source, read as a list of parts: headings with their anchors, runnable
blocks, included code, other code, math, figures and prose.

The Sphinx extension renders the same source; this reader serves what Sphinx does not: running
the blocks (``runner.py``), writing the notebook (``notebook.py``) and the twin-page tests
(``tests/docs``). It understands the subset of MyST the pages use:

- a heading ``## Title`` preceded by its anchor line ``(anchor)=``;
- fenced directives ````` ```{name} argument````` with ``:option: value`` lines first;
- ``$$ ... $$`` display math, ``![alt](path)`` images, everything else prose.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2]  # docs/
ROOT = DOCS.parent  # the repository
GENERATED = DOCS / "_generated"
LANGUAGES = ("en", "vi")
CHAPTER_NAME = re.compile(r"^\d\d-[a-z0-9-]+\.md$")

_FENCE = re.compile(r"^(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_HEADING = re.compile(r"^(?P<hashes>#{1,6})\s+(?P<title>.+?)\s*#*\s*$")
_ANCHOR = re.compile(r"^\((?P<anchor>[A-Za-z0-9_-]+)\)=\s*$")
_DIRECTIVE = re.compile(r"^\{(?P<name>[a-zA-Z0-9_:-]+)\}\s*(?P<argument>.*)$")
_OPTION = re.compile(r"^:(?P<key>[a-zA-Z0-9_-]+):\s*(?P<value>.*)$")
_IMAGE = re.compile(r"!\[[^\]]*\]\((?P<path>[^)\s]+)")

# Directives whose body is prose (it is read for glossary terms and kept in notebooks).
PROSE_DIRECTIVES = {"note", "tip", "important", "warning", "admonition", "seealso"}


@dataclass
class Heading:
    level: int
    title: str
    anchor: str | None
    line: int
    raw: str


@dataclass
class Fence:
    """A fenced block: a directive (``name`` set) or plain code (``info`` its language)."""

    info: str
    name: str | None
    argument: str
    options: dict[str, str]
    body: str
    line: int
    raw: str


@dataclass
class RunBlock:
    """A runnable block: ```` ```{runblock} ID ```` with ``:lang: python`` (default) or ``bash``,
    and ``:figures:`` the files (relative to the repository) it writes that the page shows."""

    id: str
    lang: str
    code: str
    figures: list[str]
    line: int
    raw: str

    @property
    def digest(self) -> str:
        """Identifies the code: an output made from other code is stale."""
        return hashlib.sha256(f"{self.lang}\n{self.code}".encode()).hexdigest()


@dataclass
class Prose:
    """Running text: ``text`` as read (markup removed), ``raw`` as written."""

    text: str
    line: int
    raw: str


@dataclass
class Math:
    raw: str
    line: int


@dataclass
class Page:
    path: Path
    parts: list = field(default_factory=list)

    @property
    def language(self) -> str:
        return self.path.parent.name

    @property
    def stem(self) -> str:
        """The chapter's name without its language: both twins share it (and its outputs)."""
        return self.path.stem

    def of(self, kind: type) -> list:
        return [p for p in self.parts if isinstance(p, kind)]

    @property
    def headings(self) -> list[Heading]:
        return self.of(Heading)

    @property
    def blocks(self) -> list[RunBlock]:
        return self.of(RunBlock)

    @property
    def fences(self) -> list[Fence]:
        return self.of(Fence)

    def prose(self) -> str:
        """The page's running text: no headings, code, math, anchors or link targets."""
        return "\n".join(p.text for p in self.of(Prose))

    def figures(self) -> list[str]:
        """Every picture the page shows: its blocks' figures (by block) and its images."""
        shown = [f"{b.id}: {f}" for b in self.blocks for f in b.figures]
        for part in self.parts:
            if isinstance(part, Prose):
                shown += image_paths(part.raw)
            elif isinstance(part, Fence) and part.name in ("figure", "image"):
                shown.append(part.argument)
        return shown


def image_paths(text: str) -> list[str]:
    return [m.group("path") for m in _IMAGE.finditer(text)]


def _split_options(lines: list[str]) -> tuple[dict[str, str], list[str]]:
    options: dict[str, str] = {}
    i = 0
    while i < len(lines) and (m := _OPTION.match(lines[i])):
        options[m.group("key")] = m.group("value").strip()
        i += 1
    if i < len(lines) and not lines[i].strip():
        i += 1  # the blank line between options and content
    return options, lines[i:]


def clean_prose(text: str) -> str:
    """Prose as read: inline code, inline math, links and roles' markup removed."""
    text = re.sub(r"`[^`\n]*`", " ", text)  # inline code (and a role's argument with it)
    text = re.sub(r"\{[a-z:-]+\}", " ", text)  # role names
    text = re.sub(r"\$[^$\n]+\$", " ", text)  # inline math
    # links: their text names another page (as a heading does), their target is a path
    text = re.sub(r"!?\[[^\]]*\]\([^)]*\)", " ", text)
    text = re.sub(r"[*_]{1,2}(?=\S)|(?<=\S)[*_]{1,2}", "", text)  # emphasis
    return text


def parse(path: Path) -> Page:
    lines = path.read_text(encoding="utf-8").split("\n")
    page = Page(path)
    prose: list[str] = []
    prose_line = 1
    pending_anchor: str | None = None

    def flush() -> None:
        nonlocal prose
        text = "\n".join(prose).strip()
        if text:
            page.parts.append(Prose(clean_prose(text), prose_line, text))
        prose = []

    i = 0
    if lines and lines[0].strip() == "---":  # front matter
        i = lines.index("---", 1) + 1
    while i < len(lines):
        line = lines[i]
        if m := _FENCE.match(line):
            fence = m.group("fence")
            end = i + 1
            while end < len(lines) and not (
                lines[end].startswith(fence[0] * len(fence)) and not lines[end].strip(fence[0])
            ):
                end += 1
            if end == len(lines):
                raise ValueError(f"{path}:{i + 1}: unclosed fence")
            info = m.group("info").strip()
            body_lines = lines[i + 1 : end]
            d = _DIRECTIVE.match(info)
            name, argument, options = None, "", {}
            if d:
                name, argument = d.group("name"), d.group("argument").strip()
                options, body_lines = _split_options(body_lines)
            body = "\n".join(body_lines)
            raw = "\n".join(lines[i : end + 1])
            if name in PROSE_DIRECTIVES:
                flush()
                page.parts.append(Prose(clean_prose(body), i + 1, raw))
                prose_line = end + 2
            else:
                flush()
                if name == "runblock":
                    page.parts.append(
                        RunBlock(
                            id=argument,
                            lang=options.get("lang", "python"),
                            code=body,
                            figures=options.get("figures", "").split(),
                            line=i + 1,
                            raw=raw,
                        )
                    )
                else:
                    page.parts.append(Fence(info, name, argument, options, body, i + 1, raw))
                prose_line = end + 2
            i = end + 1
            pending_anchor = None
            continue
        if line.strip() == "$$":  # display math
            flush()
            end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == "$$"), None)
            if end is None:
                raise ValueError(f"{path}:{i + 1}: unclosed $$")
            page.parts.append(Math("\n".join(lines[i : end + 1]), i + 1))
            i = end + 1
            prose_line = i + 1
            continue
        if m := _ANCHOR.match(line):
            flush()
            pending_anchor = m.group("anchor")
            i += 1
            prose_line = i + 1
            continue
        if m := _HEADING.match(line):
            flush()
            page.parts.append(
                Heading(len(m.group("hashes")), m.group("title"), pending_anchor, i + 1, line)
            )
            pending_anchor = None
            i += 1
            prose_line = i + 1
            continue
        if line.strip():
            pending_anchor = None
        prose.append(line)
        i += 1
    flush()
    return page


def chapters(language: str = "en") -> list[Path]:
    """The chapter pages of one language, in order: ``docs/<language>/NN-name.md``."""
    return sorted(p for p in (DOCS / language).glob("*.md") if CHAPTER_NAME.match(p.name))


def twin(path: Path) -> Path:
    """The same page in the other language."""
    other = "vi" if path.parent.name == "en" else "en"
    return path.parent.parent / other / path.name


def output_dir(stem: str) -> Path:
    """Where a chapter's block outputs live (shared by both languages)."""
    return GENERATED / stem
