"""The adding problem at growing T: which cells learn a long-range dependency, with and without
gradient clipping, and an exploding case that clipping tames.

Each run is ``rnnkit train configs/adding.yaml`` with the cell, T and clip_norm overridden and at
most ``--max-steps`` optimizer steps of 50 fresh sequences; it validates every 100 steps on
1,000 held-out sequences and stops once the MSE is below 0.01 ("solved"; answering 1 always
scores 0.167). The exploding case is the IRNN (ReLU, W_hh = I; Le et al. 2015) under plain SGD,
lr 0.01: one gradient of norm ~1e4 sends the weights to NaN unless the norm is clipped.

    python benchmarks/long_range.py                                   # the full table
    python benchmarks/long_range.py --lengths 50 --cells lstm --max-steps 500
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from machine import describe

from rnnkit.config import load_config
from rnnkit.gradient_report import CELLS
from rnnkit.rundir import RunDir
from rnnkit.training import train
from rnnkit.training.trainer import TrainingDiverged

EXPLODING = [
    "model.cell=rnn",
    "model.nonlinearity=relu",
    "model.recurrent_init=identity",
    "train.optimizer=sgd",
    "train.lr=0.01",
]


def run(name: str, length: int, clip: float | None, max_steps: int, extra: list[str]) -> dict:
    """One training run; -> its row: solved at which step, best MSE, largest gradient norm, time."""
    run_dir = f"runs/long-range/{name}-T{length}-clip{clip or 'none'}"
    cfg = load_config(
        "configs/adding.yaml",
        [
            *extra,
            f"data.sequence_length={length}",
            "data.train_size=5000",
            f"train.clip_norm={clip or 'null'}",
            f"train.max_steps={max_steps}",
            "train.epochs=1000",
            "train.progress=false",
            f"run_dir={run_dir}",
        ],
    )
    start = time.perf_counter()
    row = {"cell": name, "T": length, "clip": clip, "diverged": None}
    try:
        summary = train(cfg, overwrite=True)
        row.update(steps=summary["step"], mse=summary["best_valid_loss"])
    except TrainingDiverged as e:
        row.update(steps=None, mse=math.nan, diverged=str(e).split(":")[0])  # "step N"
    row["seconds"] = time.perf_counter() - start
    records = RunDir.open(run_dir).read_metrics()
    norms = [r["grad_norm"] for r in records if r.get("kind") == "step"]
    row["max_grad_norm"] = max(norms) if norms else math.nan
    row["solved"] = row["diverged"] is None and row["mse"] <= cfg.train.target_score
    return row


def result(row: dict) -> str:
    if row["diverged"]:
        return f"diverged ({row['diverged']}: loss NaN)"
    if row["solved"]:
        return f"solved at step {row['steps']}"
    return f"not solved in {row['steps']} steps"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[50, 100, 200])
    parser.add_argument(
        "--cells", nargs="+", default=["rnn-tanh", "lstm", "gru"], choices=list(CELLS)
    )
    parser.add_argument("--max-steps", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument(
        "--no-exploding", action="store_true", help="skip the exploding (IRNN, SGD) case"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = [
        run(cell, length, clip, args.max_steps, CELLS[cell])
        for length in args.lengths
        for cell in args.cells
        for clip in (1.0, None)
    ]
    if not args.no_exploding:
        rows += [run("irnn-sgd", 100, clip, 1000, EXPLODING) for clip in (None, 1.0)]
    print(
        f"\n# {describe()}; "
        "adding problem, hidden 100, batch 50, Adam 3e-3 (irnn-sgd: SGD 0.01), "
        "solved = held-out MSE < 0.01\n"
    )
    print(
        "| cell | T | clip_norm | result | best valid MSE | largest gradient norm | wall time (s) |"
    )
    print("|---|---:|---:|---|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['cell']} | {r['T']} | {r['clip'] or 'none'} | {result(r)} | {r['mse']:.4f} | "
            f"{r['max_grad_norm']:.3g} | {r['seconds']:.0f} |"
        )
    print(
        f"\ncommand: python benchmarks/long_range.py --lengths {' '.join(map(str, args.lengths))} "
        f"--cells {' '.join(args.cells)} --max-steps {args.max_steps} --threads {args.threads}"
        + (" --no-exploding" if args.no_exploding else "")
    )


if __name__ == "__main__":
    main()
