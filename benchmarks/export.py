"""PyTorch and onnxruntime side by side on CPU, in one run: a Multi30k de->en model exported
with ``rnnkit export``, decoded by ``rnnkit.load(RUN)`` (PyTorch) and ``rnnkit.load(EXPORT)``
(onnxruntime), the same search above both engines.

It reports the export's time and file sizes; batch-1 latency (each test sentence alone: p50
and p99) and batch-64 throughput (sentences/s), greedy and beam 5; and whether both engines
wrote the same translations. Unless ``--run`` is given it trains the model itself, 1 epoch of
``configs/multi30k-de-en-tok.yaml``.

    python benchmarks/export.py
    python benchmarks/export.py --run runs/multi30k-de-en-tok --sentences 200
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import onnxruntime
from machine import describe
from tabulate import tabulate

import rnnkit
from rnnkit.export.onnx_export import export_onnx
from rnnkit.tasks.registry import load_config

ROOT = Path(__file__).resolve().parent.parent
TEST_SOURCES = ROOT.parent / "shared/data/multi30k/tok/test_2016_flickr.lc.norm.tok.de"


def latency(run, sentences: list[str], beam: int) -> tuple[float, float, list[str]]:
    """p50 and p99 ms of translating each sentence alone, and the translations."""
    times, texts = [], []
    run.translate(sentences[0], beam=beam)  # warm up
    for s in sentences:
        start = time.perf_counter()
        (t,) = run.translate(s, beam=beam)
        times.append(1000 * (time.perf_counter() - start))
        texts.append(t.text)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(0.99 * len(times)))], texts


def throughput(run, sentences: list[str], beam: int, batch: int) -> tuple[float, list[str]]:
    run.cfg.decode.batch_size = batch
    run.translate(sentences[:batch], beam=beam)  # warm up
    start = time.perf_counter()
    texts = [t.text for t in run.translate(sentences, beam=beam)]
    return len(sentences) / (time.perf_counter() - start), texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="default: train one (1 epoch)")
    parser.add_argument("--sentences", type=int, default=200, help="for the batch-1 latency")
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = args.run
        if run_dir is None:
            once = [f"run_dir={tmp}/mt", "train.epochs=1", "train.progress=false"]
            cfg = load_config(ROOT / "configs/multi30k-de-en-tok.yaml", once)
            rnnkit.train(cfg)
            run_dir = Path(cfg.run_dir)
        start = time.perf_counter()
        export = export_onnx(rnnkit.load(run_dir), Path(tmp) / "export")
        seconds = time.perf_counter() - start
        sizes = {p.name: p.stat().st_size for p in export.glob("*.onnx")}
        engines = {"PyTorch": rnnkit.load(run_dir), "onnxruntime": rnnkit.load(export)}
        sentences = TEST_SOURCES.read_text(encoding="utf-8").splitlines()
        rows, texts = [], {}
        for beam in (1, 5):
            for name, run in engines.items():
                p50, p99, alone = latency(run, sentences[: args.sentences], beam)
                rate, batched = throughput(run, sentences, beam, args.batch)
                texts[name, beam] = (alone, batched)
                rows.append([f"beam {beam}" if beam > 1 else "greedy", name, f"{p50:.1f}",
                             f"{p99:.1f}", f"{rate:.1f}"])  # fmt: skip
                print(rows[-1], flush=True)
    same = {beam: texts["PyTorch", beam] == texts["onnxruntime", beam] for beam in (1, 5)}
    print(f"\n{describe()}; onnxruntime {onnxruntime.__version__}")
    print(f"export: {seconds:.1f} s; " + ", ".join(f"{n} {s / 2**20:.1f} MiB"
                                                  for n, s in sorted(sizes.items())))  # fmt: skip
    headers = ["decoding", "engine", "batch-1 p50 ms", "batch-1 p99 ms",
               f"batch-{args.batch} sentences/s"]  # fmt: skip
    print(tabulate(rows, headers, tablefmt="github"))
    print(
        f"same translations from both engines: greedy {same[1]}, beam 5 {same[5]} "
        f"({args.sentences} alone, {len(sentences)} batched)"
    )
    command = f"python benchmarks/export.py --sentences {args.sentences} --batch {args.batch}"
    print(f"\ncommand: {command}")


if __name__ == "__main__":
    main()
