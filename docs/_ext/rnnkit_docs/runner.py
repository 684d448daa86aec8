"""Run a page's runnable blocks in order, as a notebook runs its cells, and keep what they print
and draw.

    PYTHONPATH=docs/_ext python -m rnnkit_docs.runner docs/en/01-recurrence.md

Python blocks share one namespace (the page's state, as a notebook kernel's); a last bare
expression is printed as a notebook would show it. A bash block runs in bash (``-e -o pipefail``)
from the repository root, with this interpreter's bin directory first on PATH (so ``rnnkit`` is
this environment's). Figures: every matplotlib figure open at the end of a Python block, and the
files a block names in ``:figures:``. Everything goes to ``docs/_generated/<chapter>/``:
``<block>.json`` (the code's digest, the output, the figures, the seconds) and the PNGs. They are
written when every block of the page has run: a failure leaves the previous outputs as they were.
Both language twins show these outputs; the blocks run once, from the English page.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

from .pages import GENERATED, ROOT, RunBlock, output_dir, parse

# A block that runs longer than this is stopped (the pages aim at 2 minutes a block at most).
HARD_LIMIT_S = int(os.environ.get("RNNKIT_DOCS_BLOCK_TIMEOUT", "300"))


class BlockError(RuntimeError):
    pass


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.setdefault("MPLBACKEND", "Agg")
    return env


def _timeout(signum, frame):
    raise TimeoutError(f"the block ran past {HARD_LIMIT_S} s")


def run_python(block: RunBlock, namespace: dict, filename: str) -> str:
    tree = ast.parse(block.code, filename)
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    buffer = io.StringIO()
    signal.signal(signal.SIGALRM, _timeout)
    signal.alarm(HARD_LIMIT_S)
    try:
        with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
            exec(compile(tree, filename, "exec"), namespace)
            if last is not None:
                value = eval(compile(ast.Expression(last.value), filename, "eval"), namespace)
                if value is not None:
                    print(repr(value))
    except BaseException as e:
        raise BlockError(buffer.getvalue() + "".join(traceback.format_exception(e))) from e
    finally:
        signal.alarm(0)
    return buffer.getvalue()


def run_bash(block: RunBlock) -> str:
    try:
        done = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", block.code],
            cwd=ROOT,
            env=_environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=HARD_LIMIT_S,
        )
    except subprocess.TimeoutExpired as e:
        raise BlockError(f"{e.output or ''}\nthe block ran past {HARD_LIMIT_S} s") from None
    if done.returncode != 0:
        raise BlockError(f"{done.stdout}\nexit status {done.returncode}")
    return done.stdout


def save_figures(block: RunBlock, out: Path) -> list[str]:
    names = []
    if "matplotlib.pyplot" in sys.modules:
        import matplotlib.pyplot as plt

        for n, number in enumerate(plt.get_fignums(), 1):
            name = f"{block.id}-{n}.png"
            plt.figure(number).savefig(out / name, dpi=110, bbox_inches="tight")
            names.append(name)
        plt.close("all")
    for path in block.figures:
        source = ROOT / path
        if not source.is_file():
            raise BlockError(f"block {block.id}: it should have written {path}, and did not")
        name = f"{block.id}-{source.name}"
        shutil.copyfile(source, out / name)
        names.append(name)
    return names


def run_page(page_path: Path) -> list[dict]:
    """Run every block of a page; return the records (and write them) or raise BlockError."""
    page = parse(page_path)
    os.environ.update(_environment())
    os.chdir(ROOT)
    namespace: dict = {"__name__": "__main__"}
    records = []
    GENERATED.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=GENERATED) as tmp:
        out = Path(tmp)
        for block in page.blocks:
            start = time.perf_counter()
            where = f"{page_path.relative_to(ROOT)}:{block.line} (block {block.id})"
            try:
                if block.lang == "python":
                    output = run_python(block, namespace, f"<{where}>")
                elif block.lang == "bash":
                    output = run_bash(block)
                else:
                    raise BlockError(f"unknown :lang: {block.lang!r} (python or bash)")
                figures = save_figures(block, out)
            except BlockError as e:
                raise BlockError(f"{where} failed:\n{e}") from None
            record = {
                "page": str(page_path.relative_to(ROOT)),
                "id": block.id,
                "lang": block.lang,
                "digest": block.digest,
                "output": output,
                "figures": figures,
                "seconds": round(time.perf_counter() - start, 2),
            }
            (out / f"{block.id}.json").write_text(
                json.dumps(record, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
            )
            records.append(record)
            print(f"{where}: {record['seconds']:.1f} s", file=sys.__stderr__, flush=True)
        target = output_dir(page.stem)
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(out, target)
    return records


def stale(page_path: Path) -> bool:
    """True when some block of the page has no output, or one made from other code."""
    page = parse(page_path)
    for block in page.blocks:
        record = output_dir(page.stem) / f"{block.id}.json"
        if not record.is_file():
            return True
        if json.loads(record.read_text(encoding="utf-8"))["digest"] != block.digest:
            return True
    return False


def main(argv: list[str]) -> int:
    """``runner [--stale] PAGE ...``: run each page's blocks (with --stale, only the pages with a
    missing or stale output)."""
    only_stale = "--stale" in argv
    for name in (a for a in argv if a != "--stale"):
        path = Path(name).resolve()
        if only_stale and not stale(path):
            print(f"{name}: outputs up to date", file=sys.stderr)
            continue
        try:
            run_page(path)
        except BlockError as e:
            print(e, file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
