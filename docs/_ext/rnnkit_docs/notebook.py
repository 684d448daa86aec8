"""A chapter as a Jupyter notebook, made from its page at build time.

The page's runnable blocks become the code cells, in order (a bash block becomes a ``%%bash``
cell), with the outputs and figures the docs tests recorded; the text between them becomes
markdown cells. Included source code (``literalinclude``) is written out, so the notebook reads
on its own; MyST markup becomes plain Markdown (anchors dropped, roles reduced to their text,
links to other pages pointed at their HTML).
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from types import SimpleNamespace

import nbformat
from nbformat import v4

from .pages import Fence, Heading, Math, Page, Prose, RunBlock, output_dir, parse

BASH_MAGIC = "%%bash\n"
ADMONITION_TITLES = {"en": {"note": "Note", "tip": "Tip"}, "vi": {"note": "Ghi chú", "tip": "Mẹo"}}
HEADER = {
    "en": "*A chapter of the rnnkit tutorial, made from `docs/{page}`. Run it from the root of a "
    "clone of rnnkit, with rnnkit installed (`make setup`): its configs read their data from "
    "`../shared/data`. The outputs below are the ones the page shows.*",
    "vi": "*Một chương của tài liệu rnnkit, được tạo từ `docs/{page}`. Hãy chạy sổ này từ thư mục "
    "gốc của rnnkit, sau khi đã cài rnnkit (`make setup`): các tệp cấu hình đọc dữ liệu ở "
    "`../shared/data`. Kết quả in sẵn bên dưới là kết quả trang web hiển thị.*",
}


def cell_source(block: RunBlock) -> str:
    return BASH_MAGIC + block.code if block.lang == "bash" else block.code


def block_code(source: str) -> str:
    """The block a code cell was made from (the inverse of ``cell_source``)."""
    return source.removeprefix(BASH_MAGIC)


def included_code(page: Page, fence: Fence) -> str:
    """The code a ``literalinclude`` shows, read as Sphinx reads it."""
    from sphinx.directives.code import LiteralIncludeReader

    path = (page.path.parent / fence.argument).resolve()
    config = SimpleNamespace(source_encoding="utf-8")
    text, _ = LiteralIncludeReader(str(path), dict(fence.options), config).read()
    return text


def markdown(text: str) -> str:
    text = re.sub(r"\{(?:term|doc|ref|math|abbr)\}`([^`<]*?)\s*(?:<[^>]*>)?`", r"\1", text)
    text = re.sub(r"\]\(([^)#\s]*)\.md(#[^)]*)?\)", r"](\1.html\2)", text)
    return text


def _outputs(page: Page, block: RunBlock) -> list:
    record_path = output_dir(page.stem) / f"{block.id}.json"
    if not record_path.is_file():
        return []
    record = json.loads(record_path.read_text(encoding="utf-8"))
    if record["digest"] != block.digest:
        return []
    outputs = []
    if record["output"]:
        outputs.append(v4.new_output("stream", name="stdout", text=record["output"]))
    for name in record["figures"]:
        png = base64.b64encode((record_path.parent / name).read_bytes()).decode()
        outputs.append(v4.new_output("display_data", data={"image/png": png}))
    return outputs


def notebook(page_path: Path) -> nbformat.NotebookNode:
    page = parse(page_path)
    cells = []
    header = HEADER[page.language].format(page=f"{page.language}/{page.path.name}")
    text: list[str] = []

    def flush() -> None:
        if text:
            cells.append(v4.new_markdown_cell("\n\n".join(text)))
            text.clear()

    for part in page.parts:
        if isinstance(part, Heading):
            text.append(markdown(part.raw))
            if header:  # under the title
                text.append(header)
                header = ""
        elif isinstance(part, Prose):
            if part.raw.startswith(("```", "~~~")):  # an admonition: a quoted paragraph
                body = part.raw.split("\n")[1:-1]
                name = part.raw.split("}")[0].lstrip("`~{")
                title = ADMONITION_TITLES[page.language].get(name, name.title())
                quoted = "\n".join("> " + line if line else ">" for line in body)
                text.append(f"> **{title}.**\n{quoted}")
            else:
                text.append(markdown(part.raw))
        elif isinstance(part, Math):
            text.append(part.raw)
        elif isinstance(part, Fence):
            if part.name == "literalinclude":
                source = part.argument.split("rnnkit/", 1)[-1]
                caption = part.options.get("caption", f"rnnkit/{source}")
                code = included_code(page, part)
                text.append(f"*{caption}*\n\n```python\n{code.rstrip()}\n```")
            elif part.name == "math":
                text.append(f"$$\n{part.body}\n$$")
            elif part.name in (None, "code-block"):
                lang = part.argument if part.name else part.info
                text.append(f"```{lang}\n{part.body}\n```")
            # other directives (toctree, figures of the site) have no notebook form
        elif isinstance(part, RunBlock):
            flush()
            cell = v4.new_code_cell(cell_source(part))
            cell.outputs = _outputs(page, part)
            cells.append(cell)
    flush()
    nb = v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def write(page_path: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook(page_path), str(target))
