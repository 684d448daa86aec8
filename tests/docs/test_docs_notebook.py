"""A chapter's notebook, as a reader downloads it, runs as it is (marker ``docs``): chapter 2's,
executed by nbclient in a fresh kernel from the repository root, prints what its page shows."""

from __future__ import annotations

import json
import time

import pytest
from nbclient import NotebookClient
from rnnkit_docs import notebook
from rnnkit_docs.pages import DOCS, ROOT, output_dir, parse

pytestmark = pytest.mark.docs
NOTEBOOK_LIMIT_S = 120


def test_chapter_2_notebook_runs_as_it_is():
    page = DOCS / "en" / "02-bptt.md"
    nb = notebook.notebook(page)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
    client = NotebookClient(
        nb, timeout=NOTEBOOK_LIMIT_S, kernel_name="python3", resources={"metadata": {"path": ROOT}}
    )
    start = time.perf_counter()
    client.execute()
    elapsed = time.perf_counter() - start
    assert elapsed < NOTEBOOK_LIMIT_S
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert len(code) == len(parse(page).blocks)
    for cell, block in zip(code, parse(page).blocks, strict=True):
        assert not [o for o in cell.outputs if o.output_type == "error"], block.id
        printed = "".join(o.text for o in cell.outputs if o.output_type == "stream")
        record = json.loads((output_dir(page.stem) / f"{block.id}.json").read_text("utf-8"))
        assert printed == record["output"], f"block {block.id}: the notebook printed otherwise"
        pictures = [o for o in cell.outputs if "image/png" in o.get("data", {})]
        assert len(pictures) == len(record["figures"]), block.id
