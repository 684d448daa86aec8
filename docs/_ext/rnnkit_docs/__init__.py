"""The tutorial site's Sphinx extension (``docs/conf.py`` loads it).

- ``runblock``: a runnable block, shown with the output and figures the docs tests recorded
  for it (``docs/_generated/<chapter>/``); a block with no output, or one recorded from other
  code, is a build warning, so an error under ``-W``.
- Twin pages: a page under ``vi/`` shares its section anchors with its ``en/`` twin (the same
  HTML ids, so a link keeps its ``#anchor`` when the reader switches language); Sphinx's labels
  must be unique, so the Vietnamese page's labels are ``vi-<anchor>``. Each page of either
  language links to its twin, and each chapter to its notebook.
- Search: a word is found with or without its Vietnamese diacritics (``search.py``).
- At the end of the build: the notebooks are written, MathJax is copied from ``node_modules``
  (the site fetches nothing from elsewhere), and every internal link and image of every page is
  checked (a missing file or ``#anchor`` is a warning, so an error under ``-W``).
"""

from __future__ import annotations

import json
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx import addnodes
from sphinx.errors import ExtensionError
from sphinx.transforms import SphinxTransform
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

from . import notebook
from .pages import CHAPTER_NAME, LANGUAGES, ROOT, RunBlock, output_dir
from .search import SearchEnglishVietnamese

logger = logging.getLogger(__name__)

MATHJAX = ROOT / "node_modules" / "mathjax" / "es5"
# What tex-chtml.js loads at run time, relative to it: fonts, TeX extensions, the menu's parts.
MATHJAX_FILES = (
    "tex-chtml.js",
    "output/chtml/fonts/woff-v2",
    "input/tex/extensions",
    "a11y",
    "ui",
    "sre",
)
TWIN_TEXT = {"en": "Đọc bằng tiếng Việt", "vi": "Read it in English"}
NOTEBOOK_TEXT = {
    "en": "Download this chapter as a Jupyter notebook",
    "vi": "Tải chương này về dạng sổ Jupyter (notebook)",
}


def _language(docname: str) -> str | None:
    first = docname.split("/", 1)[0]
    return first if first in LANGUAGES and "/" in docname else None


def _is_chapter(docname: str) -> bool:
    return _language(docname) is not None and bool(
        CHAPTER_NAME.match(docname.split("/", 1)[1] + ".md")
    )


class RunBlockDirective(SphinxDirective):
    """```` ```{runblock} ID ```` with ``:lang: python|bash`` and ``:figures: FILE ...``."""

    required_arguments = 1
    has_content = True
    option_spec = {"lang": directives.unchanged, "figures": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        lang = self.options.get("lang", "python")
        code = "\n".join(self.content)
        block = RunBlock(self.arguments[0], lang, code, [], self.lineno, "")
        shown = nodes.literal_block(code, code, language=lang, classes=["runblock-code"])
        result: list[nodes.Node] = [shown]
        stem = Path(self.env.docname).name
        record_path = output_dir(stem) / f"{block.id}.json"
        self.env.note_dependency(str(record_path))
        if not record_path.is_file():
            logger.warning(
                "block %r has no recorded output: run `make test-docs` (or `make docs`)",
                block.id,
                location=self.get_location(),
            )
            return result
        record = json.loads(record_path.read_text(encoding="utf-8"))
        if record["digest"] != block.digest:
            logger.warning(
                "block %r changed since its output was recorded: run `make test-docs` "
                "(or `make docs`)",
                block.id,
                location=self.get_location(),
            )
            return result
        box = nodes.container(classes=["runblock-output"])
        if record["output"].strip():
            text = record["output"].rstrip("\n")
            box += nodes.literal_block(text, text, language="none")
        for name in record["figures"]:
            self.env.note_dependency(str(record_path.parent / name))
            box += nodes.image(uri=f"/_generated/{stem}/{name}", alt=f"{block.id}: {name}")
        if len(box):
            result.append(box)
        return result


class TwinLabels(SphinxTransform):
    """In a Vietnamese page, label ``x`` becomes ``vi-x`` (the HTML id stays ``x``)."""

    default_priority = 840  # before SphinxDomains (850) collects the labels

    def apply(self, **kwargs) -> None:
        if _language(self.env.docname) != "vi":
            return
        document = self.document
        for name, explicit in list(document.nametypes.items()):
            if not explicit:
                continue
            labelid = document.nameids.pop(name)
            del document.nametypes[name]
            document.nametypes["vi-" + name] = explicit
            document.nameids["vi-" + name] = labelid
            node = document.ids.get(labelid) if labelid else None
            if node is not None and name in node["names"]:
                node["names"][node["names"].index(name)] = "vi-" + name


class PageLinks(SphinxTransform):
    """Under a page's title: a link to its twin, and for a chapter its notebook."""

    default_priority = 845

    def apply(self, **kwargs) -> None:
        docname = self.env.docname
        language = _language(docname)
        if language is None:
            return
        other = "vi" if language == "en" else "en"
        twin = f"{other}/{docname.split('/', 1)[1]}"
        if not (Path(self.env.srcdir) / f"{twin}.md").is_file():
            return
        section = next(iter(self.document.findall(nodes.section)), None)
        if section is None:
            return
        para = nodes.paragraph(classes=["page-links"])
        ref = addnodes.pending_xref(
            "",
            refdomain="std",
            reftype="doc",
            reftarget="/" + twin,
            refexplicit=True,
            refwarn=True,
            refdoc=docname,
        )
        ref += nodes.inline(TWIN_TEXT[language], TWIN_TEXT[language])
        para += ref
        if _is_chapter(docname):
            para += nodes.Text(" · ")
            name = Path(docname).name + ".ipynb"
            para += nodes.reference(NOTEBOOK_TEXT[language], NOTEBOOK_TEXT[language], refuri=name)
        section.insert(1, para)


def set_page_language(app, pagename: str, templatename: str, context: dict, doctree) -> None:
    language = _language(pagename)
    if language:
        context["language"] = language


def check_mathjax(app) -> None:
    if app.builder.format == "html" and not (MATHJAX / "tex-chtml.js").is_file():
        raise ExtensionError(
            f"MathJax is missing ({MATHJAX.relative_to(ROOT)}): run `npm ci` at the "
            "repository root (`make docs` does)"
        )


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        values = dict(attrs)
        for key in ("id", "name") if tag != "meta" else ():
            if values.get(key):
                self.ids.add(values[key])
        for key in ("href", "src"):
            if values.get(key) and not (tag == "link" and values.get("rel") == "canonical"):
                self.links.append(values[key])


def check_links(outdir: Path) -> int:
    """Warn about every link or image of the site whose file or ``#anchor`` is missing."""
    pages: dict[Path, _Links] = {}
    for path in outdir.rglob("*.html"):
        parser = _Links()
        parser.feed(path.read_text(encoding="utf-8"))
        pages[path.resolve()] = parser
    broken = 0
    for path, parser in sorted(pages.items()):
        for link in parser.links:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc or link.startswith("javascript:"):
                continue
            target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            problem = None
            if not target.exists():
                problem = "no such file"
            elif target.is_dir() and not (target / "index.html").is_file():
                problem = "a folder without index.html"
            elif parts.fragment and target.suffix == ".html":
                ids = pages.get(target.resolve())
                if ids is not None and unquote(parts.fragment) not in ids.ids:
                    problem = f"no #{parts.fragment} there"
            if problem:
                broken += 1
                logger.warning(
                    "broken link in %s: %s (%s)", path.relative_to(outdir), link, problem
                )
    return broken


def finish(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    outdir = Path(app.outdir)
    for docname in sorted(app.env.found_docs):
        if _is_chapter(docname):
            notebook.write(Path(app.srcdir) / f"{docname}.md", outdir / f"{docname}.ipynb")
    target = outdir / "_static" / "mathjax"
    for name in MATHJAX_FILES:
        source, copy = MATHJAX / name, target / name
        if source.is_dir():
            shutil.copytree(source, copy, dirs_exist_ok=True)
        else:
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, copy)
    check_links(outdir)


def setup(app):
    app.add_directive("runblock", RunBlockDirective)
    app.add_transform(TwinLabels)
    app.add_transform(PageLinks)
    app.add_search_language(SearchEnglishVietnamese)
    app.connect("builder-inited", check_mathjax)
    app.connect("html-page-context", set_page_language)
    app.connect("build-finished", finish)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
