"""How far above their thresholds the toy tests land, over seeds and CPU kernel settings.

The toy tests (``pytest -m toy``) train a small model to a score threshold. This runs them once
per (CPU setting, seed): ``RNNKIT_TOY_SEED`` replaces each toy's seed (its model's and its
generated data's) and ``RNNKIT_TOY_SCORES`` collects the scores they note (``toy_score`` in
tests/conftest.py). For each score the table gives the worst value under each CPU setting, the
worst of all runs, and how far that clears the test's bound against the margin the toy is meant
to keep (0.02 on a 0-1 score, 2 BLEU points, about a tenth of a loss or MSE bound).

CPU settings (the Makefile's): native (the machine's own kernels), avx2, and default (the
portable scalar baseline). Runs are sequential; each takes ~40 s on one thread on a 2-core
machine, longer under ``default``.

    python benchmarks/toy_margins.py                              # 5 seeds x 3 settings, 2 threads
    python benchmarks/toy_margins.py --threads 1 --seeds 1 2 --cpu native avx2
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import describe

ROOT = Path(__file__).resolve().parent.parent
CPU = {
    "native": {},
    "avx2": {
        "ATEN_CPU_CAPABILITY": "avx2",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
    },
    "default": {
        "ATEN_CPU_CAPABILITY": "default",
        "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
        "ONEDNN_MAX_CPU_ISA": "SSE41",
    },
}
CPU_VARIABLES = {name for setting in CPU.values() for name in setting}


def run_toys(cpu: str, seed: int, threads: int, pytest_args: list[str]) -> dict:
    """One ``pytest -m toy`` run; -> its status, failed tests, wall time and noted scores."""
    with tempfile.TemporaryDirectory() as tmp:
        scores = Path(tmp) / "scores.jsonl"
        env = {k: v for k, v in os.environ.items() if k not in CPU_VARIABLES}
        env.update(CPU[cpu])
        env.update(
            OMP_NUM_THREADS=str(threads),
            RNNKIT_TOY_SEED=str(seed),
            RNNKIT_TOY_SCORES=str(scores),
        )
        command = [sys.executable, "-m", "pytest", "-q", "-m", "toy", "-p", "no:cacheprovider"]
        start = time.perf_counter()
        result = subprocess.run(
            [*command, *pytest_args], cwd=ROOT, env=env, capture_output=True, text=True
        )
        seconds = time.perf_counter() - start
        lines = scores.read_text().splitlines() if scores.exists() else []
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", result.stdout, re.MULTILINE)
    return {
        "cpu": cpu,
        "seed": seed,
        "returncode": result.returncode,
        "failed": failed,
        "seconds": seconds,
        "scores": [json.loads(line) for line in lines],
        "tail": result.stdout[-2000:] if result.returncode else "",
    }


def table(rows: list[list], headers: list[str]) -> str:
    try:
        from tabulate import tabulate
    except ImportError:
        lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
        return "\n".join(lines)
    return tabulate(rows, headers, tablefmt="github", floatfmt=".4g")


def summarise(runs: list[dict], settings: list[str]) -> tuple[list[list], list[str], bool]:
    """One row per noted score: the worst value per CPU setting and overall, and its margin."""
    by_name: dict[str, list[tuple[str, dict]]] = {}
    for run in runs:
        for score in run["scores"]:
            by_name.setdefault(score["name"], []).append((run["cpu"], score))
    rows, all_ok = [], True
    for name, noted in by_name.items():
        first = noted[0][1]
        higher, threshold, wanted = first["higher"], first["threshold"], first["margin"]
        worst = min if higher else max
        per_cpu = [[s["value"] for c, s in noted if c == cpu] for cpu in settings]
        per_cpu = [worst(values) if values else "-" for values in per_cpu]
        overall = worst([s["value"] for _, s in noted])
        margin = overall - threshold if higher else threshold - overall
        ok = margin >= wanted and len(noted) == len(runs)
        all_ok &= ok
        bound = f"{'above' if higher else 'below'} {threshold:.4g}"
        rows.append(
            [name, bound, *per_cpu, overall, margin, wanted, f"{len(noted)}/{len(runs)}"]
            + ["yes" if ok else "NO"]
        )
    headers = ["score", "test holds it", *[f"worst {c}" for c in settings]]
    headers += ["worst of all", "margin", "margin wanted", "runs", "ok"]
    return rows, headers, all_ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--cpu", nargs="+", choices=list(CPU), default=list(CPU))
    parser.add_argument("--threads", type=int, default=2, help="OMP_NUM_THREADS (default 2)")
    parser.add_argument("--json", help="also write every run's scores to this file")
    parser.add_argument("pytest_args", nargs="*", help="passed to pytest (after --)")
    args = parser.parse_args()

    runs = []
    for cpu in args.cpu:
        for seed in args.seeds:
            run = run_toys(cpu, seed, args.threads, args.pytest_args)
            runs.append(run)
            status = "passed" if run["returncode"] == 0 else f"FAILED {' '.join(run['failed'])}"
            print(f"# {cpu:7} seed {seed}: {status} ({run['seconds']:.0f} s)", flush=True)
            if run["returncode"] and not run["failed"]:
                print(run["tail"], file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(runs, indent=1) + "\n")

    rows, headers, ok = summarise(runs, args.cpu)
    passed = sum(run["returncode"] == 0 for run in runs)
    print()
    print(
        f"# {describe()}; "
        f"OMP_NUM_THREADS={args.threads}, seeds {' '.join(map(str, args.seeds))}; "
        f"{passed}/{len(runs)} pytest -m toy runs passed"
    )
    print(table(rows, headers))
    print()
    print(
        "reproduce: python "
        + " ".join(map(shlex.quote, ["benchmarks/toy_margins.py", *sys.argv[1:]]))
    )
    return 0 if ok and passed == len(runs) else 1


if __name__ == "__main__":
    sys.exit(main())
