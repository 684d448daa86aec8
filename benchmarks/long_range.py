"""The adding problem (and the copy task) at growing T: which cells learn a long-range
dependency, with and without gradient clipping, with torch's or the chrono initialisation, and
an exploding case that clipping tames.

Each run is ``rnnkit train configs/adding.yaml`` (``--task copy``: ``configs/copy.yaml``, whose
sequences are T + 20 long) with the cell, T and clip_norm overridden and at most
``--max-steps`` optimizer steps of 50 fresh sequences; it validates every 100 steps on 1,000
held-out sequences and stops once the held-out loss (adding: MSE; copy: cross-entropy per
symbol) is below 0.01 ("solved"; on the adding problem answering 1 always scores 0.167).
``--init chrono`` sets ``model.recurrent_init=chrono`` with ``model.chrono_t_max`` the sequence
length (Tallec & Ollivier 2018) for the gated cells; the vanilla RNN has no gates and keeps
torch's. The exploding case is the IRNN (ReLU, W_hh = I; Le et al. 2015) under plain SGD,
lr 0.01: one gradient of norm ~1e4 sends the weights to NaN unless the norm is clipped.

    python benchmarks/long_range.py                                   # the full table
    python benchmarks/long_range.py --lengths 50 --cells lstm --max-steps 500
    python benchmarks/long_range.py --lengths 500 --cells rnn-tanh lstm gru --init chrono \
        --clips 1.0 --no-exploding
    python benchmarks/long_range.py --task copy --lengths 100 200 --init chrono --clips 1.0
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from machine import describe

from rnnkit.runs.rundir import RunDir
from rnnkit.tasks.long_range.data import COPY_LENGTH
from rnnkit.tasks.registry import load_config
from rnnkit.training.trainer import TrainingDiverged
from rnnkit.workflows.diagnose import CELLS
from rnnkit.workflows.train import train

EXPLODING = [
    "model.cell=rnn",
    "model.nonlinearity=relu",
    "model.recurrent_init=identity",
    "train.optimizer=sgd",
    "train.lr=0.01",
]


# task -> (recipe, how much longer than T its sequences are: the copy task's symbols, then as
# many blanks before the answer)
TASKS = {"adding": ("configs/adding.yaml", 0), "copy": ("configs/copy.yaml", 2 * COPY_LENGTH)}


def run(
    task: str, name: str, length: int, clip: float | None, max_steps: int, extra: list[str],
    init: str,
) -> dict:  # fmt: skip
    """One training run; -> its row: solved at which step, best held-out loss, largest gradient
    norm, time."""
    config, extra_length = TASKS[task]
    init = init if name in ("lstm", "gru") else "default"  # the RNNs have no gate biases
    chrono = [] if init == "default" else [
        "model.recurrent_init=chrono", f"model.chrono_t_max={length + extra_length}"
    ]  # fmt: skip
    run_dir = f"runs/long-range/{task}-{name}-T{length}-clip{clip or 'none'}-{init}"
    cfg = load_config(
        config,
        [
            *extra,
            *chrono,
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
    row = {"cell": name, "T": length, "clip": clip, "init": init, "diverged": None}
    try:
        summary = train(cfg, overwrite=True)
        row.update(steps=summary["step"], loss=summary["best_valid_loss"])
    except TrainingDiverged as e:
        row.update(steps=None, loss=math.nan, diverged=str(e).split(":")[0])  # "step N"
    row["seconds"] = time.perf_counter() - start
    records = RunDir.open(run_dir).read_metrics()
    norms = [r["grad_norm"] for r in records if r.get("kind") == "step"]
    row["max_grad_norm"] = max(norms) if norms else math.nan
    row["solved"] = row["diverged"] is None and row["loss"] <= cfg.train.target_score
    return row


def result(row: dict) -> str:
    if row["diverged"]:
        return f"diverged ({row['diverged']}: loss NaN)"
    if row["solved"]:
        return f"solved at step {row['steps']}"
    return f"not solved in {row['steps']} steps"


def clip_value(text: str) -> float | None:
    return None if text == "none" else float(text)


def cfg_hidden(task: str) -> int:
    return load_config(TASKS[task][0]).model.hidden_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=list(TASKS), default="adding")
    parser.add_argument("--lengths", type=int, nargs="+", default=[50, 100, 200])
    parser.add_argument(
        "--cells", nargs="+", default=["rnn-tanh", "lstm", "gru"], choices=list(CELLS)
    )
    parser.add_argument("--init", choices=["default", "chrono"], default="default")
    parser.add_argument("--clips", type=clip_value, nargs="+", default=[1.0, None])
    parser.add_argument("--max-steps", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument(
        "--no-exploding", action="store_true", help="skip the exploding (IRNN, SGD) case"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = [
        run(args.task, cell, length, clip, args.max_steps, CELLS[cell], args.init)
        for length in args.lengths
        for cell in args.cells
        for clip in args.clips
    ]
    if not args.no_exploding:
        rows += [
            run("adding", "irnn-sgd", 100, clip, 1000, EXPLODING, "default") for clip in (None, 1.0)
        ]
    loss = "MSE" if args.task == "adding" else "cross-entropy per symbol"
    print(
        f"\n# {describe()}; {args.task}, hidden {cfg_hidden(args.task)}, batch 50, "
        f"Adam (irnn-sgd: SGD 0.01), solved = held-out {loss} < 0.01\n"
    )
    print(
        f"| cell | T | clip_norm | init | result | best valid {loss} | largest gradient norm | "
        "wall time (s) |"
    )
    print("|---|---:|---:|---|---|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['cell']} | {r['T']} | {r['clip'] or 'none'} | {r['init']} | {result(r)} | "
            f"{r['loss']:.4f} | {r['max_grad_norm']:.3g} | {r['seconds']:.0f} |"
        )
    clips = " ".join("none" if c is None else str(c) for c in args.clips)
    print(
        f"\ncommand: python benchmarks/long_range.py --task {args.task} "
        f"--lengths {' '.join(map(str, args.lengths))} --cells {' '.join(args.cells)} "
        f"--init {args.init} --clips {clips} --max-steps {args.max_steps} --threads {args.threads}"
        + (" --no-exploding" if args.no_exploding else "")
    )


if __name__ == "__main__":
    main()
