"""Every runnable block of every chapter, run once, in a fresh process per chapter (marker
``docs``). The outputs and figures go to docs/_generated/, which the site shows under each block,
in both languages; a block must finish within 2 minutes on 2 CPU cores."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from rnnkit_docs.pages import DOCS, ROOT, chapters, output_dir, parse

pytestmark = pytest.mark.docs
BLOCK_LIMIT_S = 120
TIMES: list[tuple[str, str, float]] = []  # (chapter, block, seconds), for the summary


@pytest.mark.parametrize("page", chapters("en"), ids=[p.stem for p in chapters("en")])
def test_chapter_blocks_run(page):
    path = os.pathsep.join(filter(None, [str(DOCS / "_ext"), os.environ.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-m", "rnnkit_docs.runner", str(page)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-8000:]
    records = [
        json.loads((output_dir(page.stem) / f"{b.id}.json").read_text(encoding="utf-8"))
        for b in parse(page).blocks
    ]
    TIMES.extend((page.stem, r["id"], r["seconds"]) for r in records)
    slow = [(r["id"], r["seconds"]) for r in records if r["seconds"] > BLOCK_LIMIT_S]
    assert not slow, f"blocks over {BLOCK_LIMIT_S} s: {slow}"
