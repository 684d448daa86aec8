"""Fixtures shared by several test modules.

The toy tests (``@pytest.mark.toy``) train a small model to a score threshold. Two environment
variables let ``benchmarks/toy_margins.py`` measure how far above their thresholds they land:
``RNNKIT_TOY_SEED`` replaces each toy's own seed (its model's and its generated data's), and
``RNNKIT_TOY_SCORES`` names a file to which every toy appends its scores, one JSON line each.
Neither changes what a test asserts. The thread count is the environment's (OMP_NUM_THREADS).

Small trained runs, one per task, for the tests of ``rnnkit.load`` and ``rnnkit serve``:
``LM_RUN`` (committed), ``reverse_run``, and ``labelled_runs`` (classify, tag); and
``serve_process``, a real ``rnnkit serve`` on a free 127.0.0.1 port.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import typing
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import rnnkit
from rnnkit.tasks.registry import load_config

ROOT = Path(__file__).resolve().parent.parent
# tests/docs (the tutorial site's tests) import the code they share with its Sphinx extension
sys.path.insert(0, str(ROOT / "docs" / "_ext"))
LM_RUN = ROOT / "tests" / "fixtures" / "lm-run-v1"  # a tiny char-LSTM, committed


@pytest.fixture(scope="session")
def toy_seed() -> Callable[[int], int]:
    """``toy_seed(recipe_seed)``: RNNKIT_TOY_SEED when it is set, else the recipe's seed."""
    value = os.environ.get("RNNKIT_TOY_SEED", "").strip()
    return lambda recipe_seed: int(value) if value else recipe_seed


@pytest.fixture(scope="session")
def toy_score() -> Callable[..., None]:
    """``toy_score(name, value, threshold, higher=True, margin=0.02)``: note a toy's score, the
    bound the test holds it to (above it if ``higher``, else below) and the margin by which it
    should clear that bound on every seed and CPU, in RNNKIT_TOY_SCORES if set. The test asserts
    the bound itself; the margin is for benchmarks/toy_margins.py to check."""
    path = os.environ.get("RNNKIT_TOY_SCORES")

    def record(
        name: str, value: float, threshold: float, higher: bool = True, margin: float = 0.02
    ) -> None:
        if path:
            line = dict(name=name, value=value, threshold=threshold, higher=higher, margin=margin)
            with open(path, "a", encoding="utf-8") as f:
                f.write(json.dumps(line) + "\n")

    return record


def small_run(tmp: Path, *overrides: str) -> Path:
    cfg = load_config(None, [f"run_dir={tmp / 'run'}", "train.progress=false", *overrides])
    rnnkit.train(cfg)
    return tmp / "run"


@pytest.fixture(scope="session")
def reverse_run(tmp_path_factory) -> Path:
    """The reverse task, trained briefly: the equalities below hold for any weights."""
    tmp = tmp_path_factory.mktemp("reverse")
    recipe = ROOT / "configs" / "reverse.yaml"
    cfg = load_config(recipe, [f"run_dir={tmp / 'run'}", "train.progress=false", "train.epochs=1"])
    rnnkit.train(cfg)
    return tmp / "run"


@pytest.fixture(scope="session")
def labelled_runs(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("labelled")
    (tmp / "cls.txt").write_text("".join(f"{i % 2}\tw{i % 5} x{i % 3} y\n" for i in range(60)))
    (tmp / "tag.txt").write_text(
        "".join(f"w{i % 4}\tT{i % 2}\nx{i % 3}\tT{i % 3}\n\n" for i in range(40))
    )
    small = ["model.embedding_size=8", "model.hidden_size=8", "model.num_layers=1"]
    small += ["train.epochs=1", "train.optimizer=adam", "train.lr=0.01"]
    classify = small_run(
        tmp / "c", "task=classify", f"data.train={tmp / 'cls.txt'}", "model.pooling=mean", *small
    )
    tag = small_run(
        tmp / "t", "task=tag", f"data.train={tmp / 'tag.txt'}", "model.char_features=true", *small
    )
    return classify, tag


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served(typing.NamedTuple):
    process: subprocess.Popen
    url: str  # http://127.0.0.1:PORT
    log: Callable[[], str]  # what the process has written so far (stdout and stderr)


@contextlib.contextmanager
def serve_process(*args: str) -> Iterator[Served]:
    """``rnnkit serve ARGS`` on a free port, once ``/health`` answers. Its output goes to a file
    (a pipe nobody reads would fill and stall the server). Killed on the way out if running."""
    import httpx

    port = free_port()
    output = tempfile.TemporaryFile("w+")
    process = subprocess.Popen(
        [sys.executable, "-m", "rnnkit.cli", "serve", *args, "--port", str(port)],
        stdout=output, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip

    def log() -> str:
        output.seek(0)
        return output.read()

    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log()
            assert time.monotonic() < deadline, "rnnkit serve did not answer /health in 60 s"
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            time.sleep(0.1)
        yield Served(process, url, log)
    finally:
        process.kill()
        process.wait()
        output.close()


def pytest_terminal_summary(terminalreporter) -> None:
    """After ``pytest -m docs``: how many tutorial blocks ran, for how long, and the slowest."""
    module = next((m for n, m in sys.modules.items() if n.endswith("test_docs_blocks")), None)
    times = getattr(module, "TIMES", None)
    if not times:
        return
    total = sum(seconds for *_, seconds in times)
    slowest = sorted(times, key=lambda t: -t[2])[:3]
    terminalreporter.write_line(
        f"docs: {len(times)} blocks ran in {total:.0f} s; slowest: "
        + ", ".join(f"{chapter}/{block} {seconds:.0f} s" for chapter, block, seconds in slowest)
    )
