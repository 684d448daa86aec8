"""The tutorial's pages, read as sources (fast; part of ``make test``).

Every English page has a Vietnamese twin with the same headings and anchors, the same code and
the same figures; the Vietnamese page uses the glossary's term wherever the English one uses the
English term, with the English in brackets the first time; code is included from the source by
object name, from files whose place is settled; a chapter's notebook holds its runnable blocks.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from rnnkit_docs import glossary, notebook
from rnnkit_docs.pages import DOCS, ROOT, Fence, chapters, parse, twin

ENGLISH = sorted((DOCS / "en").glob("*.md"))
VIETNAMESE = sorted((DOCS / "vi").glob("*.md"))
CHAPTERS = chapters("en") + chapters("vi")
GLOSSARY = glossary.terms()

# The files a page may include code from: their place in the package is settled.
STABLE_SOURCES = {
    "rnnkit/nn/cells.py",
    "rnnkit/nn/layers.py",
    "rnnkit/nn/recurrence.py",
    "rnnkit/nn/bptt.py",
    "rnnkit/reference.py",
    "rnnkit/models/attention.py",
}
# d2l-vi's machine-translated words for recurrent, hidden state and gradient.
MISTRANSLATIONS = ("tái phát", "nhà nước ẩn", "độ dốc")


def names(paths: list[Path]) -> list[str]:
    return [f"{p.parent.name}/{p.name}" for p in paths]


def test_there_are_chapters():
    assert len(chapters("en")) >= 4


@pytest.mark.parametrize("page", ENGLISH, ids=names(ENGLISH))
def test_english_page_has_vietnamese_twin(page):
    assert twin(page).is_file(), f"{twin(page).relative_to(ROOT)} is missing"


@pytest.mark.parametrize("page", VIETNAMESE, ids=names(VIETNAMESE))
def test_vietnamese_page_has_english_twin(page):
    assert twin(page).is_file(), f"{twin(page).relative_to(ROOT)} is missing"


@pytest.mark.parametrize("page", ENGLISH, ids=names(ENGLISH))
def test_twins_have_the_same_headings_and_anchors(page):
    english, vietnamese = parse(page), parse(twin(page))
    for p in (english, vietnamese):
        unanchored = [h.title for h in p.headings if not h.anchor]
        assert not unanchored, f"{p.path.name}: headings without an (anchor)= line: {unanchored}"
    assert [(h.level, h.anchor) for h in english.headings] == [
        (h.level, h.anchor) for h in vietnamese.headings
    ]


def _code(fence: Fence) -> tuple:
    if fence.name in ("figure", "image"):  # a caption is text, in each page's language
        return (fence.name, fence.argument)
    kind = fence.info if fence.name is None else fence.name
    return (kind, fence.argument, fence.options, fence.body)


@pytest.mark.parametrize("page", ENGLISH, ids=names(ENGLISH))
def test_twins_have_the_same_code(page):
    english, vietnamese = parse(page), parse(twin(page))
    assert [(b.id, b.lang, b.code, b.figures) for b in english.blocks] == [
        (b.id, b.lang, b.code, b.figures) for b in vietnamese.blocks
    ]
    skip = {"toctree"}  # the contents pages list their own language's chapters
    assert [_code(f) for f in english.fences if f.name not in skip] == [
        _code(f) for f in vietnamese.fences if f.name not in skip
    ]


@pytest.mark.parametrize("page", ENGLISH, ids=names(ENGLISH))
def test_twins_show_the_same_figures(page):
    assert parse(page).figures() == parse(twin(page)).figures()


@pytest.mark.parametrize("page", CHAPTERS, ids=names(CHAPTERS))
def test_block_ids_are_unique_names(page):
    ids = [b.id for b in parse(page).blocks]
    assert ids, "a chapter runs at least one block"
    assert len(ids) == len(set(ids))
    assert all(i.replace("-", "").isalnum() and i == i.lower() for i in ids)


def test_glossary_fixes_the_terms_of_the_issue():
    vietnamese = {t.vietnamese for t in GLOSSARY}
    for term in (
        "mạng nơ-ron hồi tiếp",
        "nút hồi tiếp có cổng",
        "lan truyền ngược qua thời gian",
        "tiêu biến gradient",
        "bùng nổ gradient",
        "gọt gradient",
        "tìm kiếm chùm",
        "trạng thái ẩn",
        "cơ chế tập trung",
        "bộ nhớ ngắn hạn dài",
        "cổng quên",
        "cổng vào",
        "cổng ra",
        "ô nhớ",
        "nhúng từ",
        "mô hình ngôn ngữ",
        "cưỡng ép giáo viên",
    ):
        assert term in vietnamese
    assert len(vietnamese) == len(GLOSSARY), "one Vietnamese term per row"
    english = [form.lower() for t in GLOSSARY for form in t.english]
    assert len(english) == len(set(english)), "an English term sits in one row"


@pytest.mark.parametrize("page", ENGLISH, ids=names(ENGLISH))
def test_vietnamese_uses_the_glossary_term_where_english_uses_the_term(page):
    used = glossary.occurrences(parse(page).prose(), GLOSSARY, "en")
    found = glossary.occurrences(parse(twin(page)).prose(), GLOSSARY, "vi")
    missing = [
        f"{GLOSSARY[i].english[0]!r} -> {GLOSSARY[i].vietnamese!r}" for i in used if i not in found
    ]
    assert not missing, f"{twin(page).name} lacks the glossary's term for: {missing}"


@pytest.mark.parametrize("page", VIETNAMESE, ids=names(VIETNAMESE))
def test_english_term_in_brackets_on_first_use(page):
    text = parse(page).prose()
    found = glossary.occurrences(text, GLOSSARY, "vi")
    bare = [
        term.vietnamese
        for term, spans in ((GLOSSARY[i], spans) for i, spans in found.items())
        if not term.same_in_both and not glossary.bracketed_english(text, spans[0][1], term)
    ]
    assert not bare, f"{page.name}: first use without the English term in brackets: {bare}"


@pytest.mark.parametrize("page", VIETNAMESE, ids=names(VIETNAMESE))
def test_no_known_mistranslation(page):
    text = page.read_text(encoding="utf-8").lower()
    assert not [word for word in MISTRANSLATIONS if word in text]


@pytest.mark.parametrize("page", CHAPTERS, ids=names(CHAPTERS))
def test_code_is_included_by_name_from_settled_files(page):
    for fence in parse(page).fences:
        if fence.name != "literalinclude":
            continue
        path = (page.parent / fence.argument).resolve()
        source = path.relative_to(ROOT).as_posix()
        assert not {"lines", "lineno-start", "emphasize-lines"} & set(fence.options), (
            f"{page.name}:{fence.line}: include by name (:pyobject:) or marker, not by line"
        )
        if path.suffix == ".py":
            assert source in STABLE_SOURCES, f"{page.name}:{fence.line}: {source} may move"
            assert "pyobject" in fence.options or {"start-after", "end-before"} <= set(
                fence.options
            ), f"{page.name}:{fence.line}: a .py file is included by object name or markers"
        else:
            assert source.startswith("configs/"), f"{page.name}:{fence.line}: {source}"


@pytest.mark.parametrize("page", chapters("en"), ids=names(chapters("en")))
def test_included_objects_exist(page):
    from sphinx.directives.code import LiteralIncludeReader

    config = SimpleNamespace(source_encoding="utf-8")
    for fence in parse(page).fences:
        if fence.name == "literalinclude":
            path = str((page.parent / fence.argument).resolve())
            text, _ = LiteralIncludeReader(path, dict(fence.options), config).read()
            assert text.strip()


@pytest.mark.parametrize("page", CHAPTERS, ids=names(CHAPTERS))
def test_links_to_sections_name_their_page(page):
    """``[text](#anchor)`` in a Vietnamese page would resolve to the English label: a link to a
    section names its file, ``[text](02-bptt.md#anchor)``, and reads the same in both twins."""
    assert "](#" not in page.read_text(encoding="utf-8")


@pytest.mark.parametrize("page", CHAPTERS, ids=names(CHAPTERS))
def test_notebook_code_cells_are_the_runnable_blocks(page):
    nb = notebook.notebook(page)
    cells = [notebook.block_code(c.source) for c in nb.cells if c.cell_type == "code"]
    assert cells == [b.code for b in parse(page).blocks]
    import nbformat

    nbformat.validate(nb)
