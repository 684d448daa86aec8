"""Old code against new, side by side: the same training and decoding work run by two
checkouts of rnnkit in alternating rounds, each in its own process, medians reported. Made for
the one-home-per-task layout change (issue 28), whose goal is "within 3%".

    git worktree add /tmp/old d816a88
    python benchmarks/layout.py --old /tmp/old [--rounds 5]

Work per round, each timed inside its process (imports excluded): training 60 steps of
configs/ptb-small.yaml (fp32, the recipe as it is: 2x200 LSTM); generating 300
characters greedily with tests/fixtures/lm-run-v1; translating 200 sentences with beam 5
through tests/fixtures/translate-export-v1 (onnxruntime) and translate-run-v1 (PyTorch).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from tabulate import tabulate

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"

WORK = r"""
import json, sys, time, tempfile
import rnnkit
try:
    from rnnkit import load_config
except ImportError:
    from rnnkit.config import load_config
fixtures = sys.argv[1]
out = {}
cfg = load_config("configs/ptb-small.yaml", ["train.max_steps=60", "train.progress=false",
                  "train.epochs=1", f"run_dir={tempfile.mkdtemp()}/run"])
start = time.perf_counter()
rnnkit.train(cfg)
out["train 60 PTB steps"] = time.perf_counter() - start
lm = rnnkit.load(f"{fixtures}/lm-run-v1")
start = time.perf_counter(); lm.generate("ROMEO:", max_new_tokens=300, temperature=0)
out["generate 300 chars"] = time.perf_counter() - start
letters = "abcdefghijklmnopqrst"
sentences = [" ".join(letters[(i * 7 + j) % 20] for j in range(3 + i % 9)) for i in range(200)]
for name in ("translate-run-v1", "translate-export-v1"):
    run = rnnkit.load(f"{fixtures}/{name}")
    start = time.perf_counter(); run.translate(sentences, beam=5)
    out[f"translate 200, beam 5 ({name.split('-')[1]})"] = time.perf_counter() - start
print(json.dumps(out))
"""


def one_round(checkout: Path) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    result = subprocess.run(
        [sys.executable, "-c", WORK, str(FIXTURES)], cwd=ROOT, env=env, capture_output=True,
        text=True, check=True,
    )  # fmt: skip
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", required=True, help="a checkout of the code before the change")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    times: dict[str, dict[str, list[float]]] = {"old": {}, "new": {}}
    for _ in range(args.rounds):
        for side, checkout in (("old", Path(args.old)), ("new", ROOT)):
            for work, seconds in one_round(checkout).items():
                times[side].setdefault(work, []).append(seconds)
    rows = []
    for work in times["new"]:
        old, new = statistics.median(times["old"][work]), statistics.median(times["new"][work])
        rows.append([work, f"{old:.3f}", f"{new:.3f}", f"{new / old - 1:+.1%}"])
    print(tabulate(rows, headers=["work", "old s (median)", "new s (median)", "new vs old"]))
    print(f"\n{args.rounds} alternating rounds; python benchmarks/layout.py --old {args.old}")


if __name__ == "__main__":
    main()
