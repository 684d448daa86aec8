"""rnnkit serve under load: latency, throughput and memory of a real server process.

It trains what it serves (unless given runs): a Multi30k de->en model for one epoch
(``configs/multi30k-de-en-tok.yaml``) and the demo char-LSTM for one epoch. Then it starts
``rnnkit serve`` on 127.0.0.1 and, for 1, 8, 32 and 128 concurrent clients (httpx, asyncio),
sends single-sentence ``/v1/translate`` requests (greedy and beam 5) and ``/v1/generate``
requests, a bounded number each. It reports p50 and p99 latency, requests/s, sentences or
tokens/s, errors and the client's CPU use; then the server's RSS before and after a soak of
10,000 greedy translate requests at 32 clients.

"Offline" is in-process ``rnnkit.load(RUN).translate`` of the same sentences at the same
maximum batch size (the server's ``--max-batch``), measured in the same run, before the
server starts (never two measurements at once: on 2 cores the timings would lie).

    python benchmarks/serve.py
    python benchmarks/serve.py --translate-run runs/mt --lm-run runs/demo --soak 10000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from machine import describe
from tabulate import tabulate

import rnnkit
from rnnkit.tasks.registry import load_config

ROOT = Path(__file__).resolve().parent.parent
TEST_SOURCES = ROOT.parent / "shared/data/multi30k/tok/test_2016_flickr.lc.norm.tok.de"
CLIENTS = (1, 8, 32, 128)
PROMPTS = ["ROMEO:", "JULIET:", "First Citizen:", "KING HENRY:"]


def train_runs(out: Path) -> tuple[Path, Path]:
    """A 1-epoch Multi30k translator and a 1-epoch demo char-LSTM, under ``out``."""
    once = ["train.epochs=1", "train.progress=false"]
    mt = load_config(ROOT / "configs/multi30k-de-en-tok.yaml", [f"run_dir={out / 'mt'}", *once])
    shakespeare = f"data.train={ROOT / 'rnnkit/data/tinyshakespeare.txt'}"
    lm = load_config(
        ROOT / "rnnkit/configs/demo.yaml", [f"run_dir={out / 'lm'}", shakespeare, *once]
    )
    for cfg in (mt, lm):
        start = time.perf_counter()
        rnnkit.train(cfg)
        print(f"trained {cfg.run_dir} in {time.perf_counter() - start:.0f} s", flush=True)
    return Path(mt.run_dir), Path(lm.run_dir)


def offline(run_dir: Path, sentences: list[str], max_batch: int, beam: int) -> float:
    """Sentences/s of in-process ``translate`` in batches of ``max_batch``."""
    run = rnnkit.load(run_dir)
    run.cfg.decode.batch_size = max_batch
    run.translate(sentences[:max_batch], beam=beam)  # warm up
    start = time.perf_counter()
    run.translate(sentences, beam=beam)
    return len(sentences) / (time.perf_counter() - start)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


@contextlib.contextmanager
def server(runs: list[str], port: int, max_batch: int) -> Iterator[subprocess.Popen]:
    log = tempfile.TemporaryFile("w+")
    process = subprocess.Popen(
        [sys.executable, "-m", "rnnkit.cli", "serve", *runs, "--port", str(port),
         "--max-batch", str(max_batch), "--queue-size", "1024"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                raise SystemExit(f"rnnkit serve did not start:\n{log.read()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            time.sleep(0.2)
        yield process
    finally:
        process.terminate()
        process.wait(60)
        log.close()


async def load(url: str, bodies: list[dict], clients: int) -> dict[str, float]:
    """Send ``bodies`` with ``clients`` concurrent workers: latencies, throughput, errors."""
    latencies: list[float] = []
    errors = units = 0
    queue = list(reversed(bodies))
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:

        async def worker() -> None:
            nonlocal errors, units
            while queue:
                path, body = queue.pop()
                start = time.perf_counter()
                try:
                    response = await client.post(path, json=body)
                    ok = response.status_code == 200
                except httpx.HTTPError:
                    ok = False
                latencies.append(time.perf_counter() - start)
                if not ok:
                    errors += 1
                    continue
                answer = response.json()
                units += len(answer.get("translations", [])) or sum(
                    len(g["token_ids"]) for g in answer.get("generations", [])
                )

        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    latencies.sort()
    return {
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "requests/s": len(latencies) / wall,
        "units/s": units / wall,
        "errors": errors,
        "client_cpu": cpu / wall,
        "requests": len(latencies),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--translate-run", type=Path, help="default: train one (1 epoch)")
    parser.add_argument("--lm-run", type=Path, help="default: train one (1 epoch)")
    parser.add_argument("--requests", type=int, default=400, help="per workload and level")
    parser.add_argument("--soak", type=int, default=10_000)
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--keep-runs", type=Path, help="train into this folder, and keep it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        mt, lm = args.translate_run, args.lm_run
        if mt is None or lm is None:
            mt, lm = train_runs(Path(args.keep_runs or tmp))
        run(args, mt, lm)


def run(args: argparse.Namespace, mt: Path, lm: Path) -> None:
    sentences = TEST_SOURCES.read_text(encoding="utf-8").splitlines()
    sentences = (sentences * (1 + args.requests // len(sentences)))[: args.requests]
    offline_rate = {beam: offline(mt, sentences, args.max_batch, beam) for beam in (1, 5)}
    workloads = {
        "translate greedy": [("/v1/translate", {"sentences": [s], "beam": 1}) for s in sentences],
        "translate beam 5": [("/v1/translate", {"sentences": [s], "beam": 5}) for s in sentences],
        "generate 50 tokens": [
            ("/v1/generate", {"prompt": PROMPTS[i % 4], "max_new_tokens": 50, "seed": i})
            for i in range(args.requests)
        ],
    }
    rows = []
    url = f"http://127.0.0.1:{args.port}"
    with server([f"mt={mt}", f"lm={lm}"], args.port, args.max_batch) as process:
        asyncio.run(load(url, workloads["translate greedy"][:64], 8))  # warm up
        for name, bodies in workloads.items():
            for clients in CLIENTS:
                r = asyncio.run(load(url, bodies, clients))
                beam = 5 if "beam" in name else 1
                ratio = r["units/s"] / offline_rate[beam] if "translate" in name else None
                rows.append([name, clients, r["requests"], f"{r['p50_ms']:.1f}",
                             f"{r['p99_ms']:.1f}", f"{r['requests/s']:.1f}",
                             f"{r['units/s']:.1f}", "" if ratio is None else f"{ratio:.2f}",
                             r["errors"], f"{r['client_cpu']:.2f}"])  # fmt: skip
                print(rows[-1], flush=True)
        before = rss_mib(process.pid)
        soak = (workloads["translate greedy"] * (1 + args.soak // len(sentences)))[: args.soak]
        s = asyncio.run(load(url, soak, 32))
        after = rss_mib(process.pid)
    print()
    print(describe())
    print(
        f"offline (in-process translate, batch {args.max_batch}): greedy "
        f"{offline_rate[1]:.1f} sentences/s, beam 5 {offline_rate[5]:.1f} sentences/s"
    )
    headers = ["workload", "clients", "requests", "p50 ms", "p99 ms", "requests/s",
               "sentences or tokens/s", "x offline", "errors", "client CPU (cores)"]  # fmt: skip
    print(tabulate(rows, headers, tablefmt="github"))
    print(
        f"\nsoak: {s['requests']} greedy translate requests at 32 clients, {s['errors']} "
        f"errors, {s['requests/s']:.1f} requests/s, p99 {s['p99_ms']:.1f} ms; server RSS "
        f"{before:.0f} MiB before, {after:.0f} MiB after ({after - before:+.0f} MiB)"
    )
    print(f"\ncommand: python benchmarks/serve.py --requests {args.requests} --soak {args.soak}"
          f" --max-batch {args.max_batch}")  # fmt: skip


if __name__ == "__main__":
    main()
