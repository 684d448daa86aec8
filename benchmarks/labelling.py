"""Sentence classification and tagging on the recipes: SST-2 test accuracy (and macro-F1) and UD
English-EWT UPOS test token accuracy, with the wall time of training on this machine.

``--train`` trains each recipe from scratch (the run directory is replaced) and times the whole
``train`` call: reading, vocabularies, every epoch with its validation, the test score. Without
it the finished runs are read: their test scores are computed again (timed) and the training
time is the trainer's own (epochs with validation) from ``metrics.jsonl``.

``--seeds 1 2 3`` trains (or reads) each recipe once per seed, in ``RUN_DIR-seedS``, and gives
the mean and standard deviation. A recipe that starts from language models
(``configs/sst2-transfer.yaml``) has them trained first, once, with ``--train``; beside it, the
same model from scratch (its transfer keys set off) with the same seeds, in
``RUN_DIR-scratch-seedS``.

    python benchmarks/labelling.py --train          # about 20 minutes on 2 CPU cores
    python benchmarks/labelling.py                  # the finished runs/sst2, runs/ud-en-upos
    python benchmarks/labelling.py --train --seeds 1 2 3 --config configs/sst2-transfer.yaml
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

from machine import describe

import rnnkit
from rnnkit.runs.rundir import RunDir
from rnnkit.tasks.registry import load_config
from rnnkit.workflows.train import train

RECIPES = {  # recipe -> the published number it is measured against
    "configs/sst2.yaml": "86.3 (2-layer LSTM, Tai et al. 2015)",
    "configs/ud-en-upos.yaml": "~95 (BiLSTM taggers); goal 95.5",
    "configs/sst2-transfer.yaml": "82.7 (CNN, no pretrained vectors, Kim 2014); goal 83.0",
    "configs/ud-en-upos-transfer.yaml": "~95 (BiLSTM taggers); goal 95.5",
}
PRETRAINING = {  # recipe -> the LM runs it starts from: (config, overrides)
    "configs/sst2-transfer.yaml": [
        ("configs/sst2-lm.yaml", []),
        ("configs/sst2-lm.yaml", ["data.reverse_text=true", "run_dir=runs/sst2-lm-backward"]),
    ],
    "configs/ud-en-upos-transfer.yaml": [
        ("configs/ud-en-lm.yaml", []),
        ("configs/ud-en-lm.yaml", ["data.reverse_text=true", "run_dir=runs/ud-en-lm-backward"]),
    ],
}
# the same model from scratch
SCRATCH = [
    "model.init_from=null",
    "model.init_from_backward=null",
    "train.discriminative_lr=null",
    "train.gradual_unfreezing=false",
]


def summary_of(run: str) -> dict:
    """The trainer's summary record of a finished run (epochs, seconds, best validation score)."""
    records = [r for r in RunDir.open(run).read_metrics() if r.get("kind") == "summary"]
    if not records:
        raise SystemExit(f"{run}: no finished training in metrics.jsonl; train it first (--train)")
    return records[-1]


def seed_run(config: str, do_train: bool, overrides: list[str]) -> dict:
    """One training (or finished) run of a recipe: its test scores, summary and timings."""
    cfg = load_config(config, overrides)
    wall = None
    if do_train:
        start = time.perf_counter()
        train(cfg, overwrite=True)
        wall = time.perf_counter() - start
    summary = summary_of(cfg.run_dir)
    start = time.perf_counter()
    loaded = rnnkit.load(cfg.run_dir)
    test = loaded.evaluate("test")
    return {
        "task": cfg.task,
        "test": test,
        "summary": summary,
        "wall": wall if wall is not None else summary["seconds"],
        "test_seconds": time.perf_counter() - start,
        "params": loaded.engine.parameters(),
        "best_valid": summary["best_valid_accuracy"],
    }


def row(config: str, name: str, do_train: bool, seeds: list[int] | None, overrides: list[str]):
    """A recipe over its seeds (None: the recipe's own seed and run directory)."""
    if seeds is None:
        runs = [seed_run(config, do_train, overrides)]
    else:
        run_dir = load_config(config, overrides).run_dir
        runs = [
            seed_run(config, do_train, [*overrides, f"seed={s}", f"run_dir={run_dir}-seed{s}"])
            for s in seeds
        ]
    return {"config": config, "name": name, "runs": runs, "trained": do_train}


def spread(values: list[float]) -> str:
    """'mean' or 'mean ± sd (v1, v2, ...)' of percentages."""
    mean = statistics.mean(values)
    if len(values) == 1:
        return f"**{100 * mean:.2f}**"
    each = ", ".join(f"{100 * v:.2f}" for v in values)
    return f"**{100 * mean:.2f}** ± {100 * statistics.stdev(values):.2f} ({each})"


def pretrain(config: str) -> list[str]:
    """Train the LMs a recipe starts from; -> one line per LM (run, wall time, valid ppl)."""
    lines = []
    for lm_config, overrides in PRETRAINING.get(config, []):
        cfg = load_config(lm_config, overrides)
        start = time.perf_counter()
        train(cfg, overwrite=True)
        summary = summary_of(cfg.run_dir)
        lines.append(
            f"- LM `{cfg.run_dir}` (`{lm_config}{''.join(' ' + o for o in overrides)}`): "
            f"{summary['epochs']} epochs in {(time.perf_counter() - start) / 60:.1f} min, "
            f"best valid perplexity {math.exp(summary['best_valid_loss']):.1f}"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", action="append", help="recipes (default: the first two)")
    parser.add_argument(
        "--train", action="store_true", help="train each recipe first (replaces its run)"
    )
    parser.add_argument("--seeds", type=int, nargs="+", help="one run per seed: RUN_DIR-seedS")
    parser.add_argument("overrides", nargs="*", help="section.key=value for every recipe")
    args = parser.parse_args()
    configs = args.config or list(RECIPES)[:2]
    print(f"# {describe()}\n")
    pretraining, rows = [], []
    for config in configs:
        if args.train:
            pretraining += pretrain(config)
        rows.append(row(config, config, args.train, args.seeds, args.overrides))
        if config in PRETRAINING:  # its own run directories: the transferred runs stay
            name = f"{config}, from scratch"
            scratch_dir = f"run_dir={load_config(config, args.overrides).run_dir}-scratch"
            scratch = [*args.overrides, *SCRATCH, scratch_dir]
            rows.append(row(config, name, args.train, args.seeds, scratch))
    print(
        "| recipe | params | seeds | test accuracy | other test scores | best dev accuracy | "
        "epochs | training wall time (each) | test scoring | published |"
    )
    print("|---|---:|---:|---:|---|---:|---:|---:|---:|---|")
    for r in rows:
        runs, first = r["runs"], r["runs"][0]
        test = first["test"]
        other = (
            f"macro-F1 {spread([x['test']['macro_f1'] for x in runs])}, "
            f"{test['examples']} sentences"
            if first["task"] == "classify"
            else f"{test['tokens']} tokens, {test['sentences']} sentences"
        )
        walls = ", ".join(f"{x['wall'] / 60:.1f}" for x in runs)
        kind = "whole run" if r["trained"] else "epochs only"
        print(
            f"| `{r['name']}` | {first['params'] / 1e6:.2f}M | {len(runs)} | "
            f"{spread([x['test']['accuracy'] for x in runs])} | {other} | "
            f"{spread([x['best_valid'] for x in runs])} | "
            f"{', '.join(str(x['summary']['epochs']) for x in runs)} | {walls} min ({kind}) | "
            f"{first['test_seconds']:.1f} s | {RECIPES.get(r['config'], '')} |"
        )
    if pretraining:
        print("\nPretraining, once for every seed:\n" + "\n".join(pretraining))
    for r in rows:
        for x in r["runs"]:
            if x["task"] == "classify":
                confusion = x["test"]["confusion"]
                print(
                    f"\n{r['name']} test confusion matrix (rows gold, columns predicted, "
                    f"labels {confusion['labels']}): {confusion['matrix']}"
                )
    overrides = "".join(f" {o}" for o in args.overrides)
    seeds = f" --seeds {' '.join(map(str, args.seeds))}" if args.seeds else ""
    print(
        f"\ncommand: python benchmarks/labelling.py{' --train' if args.train else ''}{seeds}"
        f"{''.join(f' --config {c}' for c in (args.config or []))}{overrides}"
    )


if __name__ == "__main__":
    main()
