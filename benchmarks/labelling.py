"""Sentence classification and tagging on the two recipes: SST-2 test accuracy (and macro-F1)
and UD English-EWT UPOS test token accuracy, with the wall time of training on this machine.

``--train`` trains each recipe from scratch (the run directory is replaced) and times the whole
``train`` call: reading, vocabularies, every epoch with its validation, the test score. Without
it the finished runs are read: their test scores are computed again (timed) and the training
time is the trainer's own (epochs with validation) from ``metrics.jsonl``.

    python benchmarks/labelling.py --train          # about 20 minutes on 2 CPU cores
    python benchmarks/labelling.py                  # the finished runs/sst2, runs/ud-en-upos
"""

from __future__ import annotations

import argparse
import time

from machine import describe

import rnnkit
from rnnkit.config import load_config
from rnnkit.rundir import RunDir
from rnnkit.training.run import train

RECIPES = {  # recipe -> the published number it is measured against
    "configs/sst2.yaml": "86.3 (2-layer LSTM, Tai et al. 2015)",
    "configs/ud-en-upos.yaml": "~95 (BiLSTM taggers)",
}


def summary_of(run: str) -> dict:
    """The trainer's summary record of a finished run (epochs, seconds, best validation score)."""
    records = [r for r in RunDir.open(run).read_metrics() if r.get("kind") == "summary"]
    if not records:
        raise SystemExit(f"{run}: no finished training in metrics.jsonl; train it first (--train)")
    return records[-1]


def row(config: str, do_train: bool, overrides: list[str]) -> dict:
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
    test_seconds = time.perf_counter() - start
    return {
        "config": config,
        "run": cfg.run_dir,
        "task": cfg.task,
        "test": test,
        "summary": summary,
        "wall": wall,
        "test_seconds": test_seconds,
        "params": loaded.engine.parameters(),
        "best_valid": summary["best_valid_accuracy"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", action="append", help="recipes (default: both)")
    parser.add_argument(
        "--train", action="store_true", help="train each recipe first (replaces its run)"
    )
    parser.add_argument("overrides", nargs="*", help="section.key=value for every recipe")
    args = parser.parse_args()
    configs = args.config or list(RECIPES)
    print(f"# {describe()}\n")
    rows = [row(config, args.train, args.overrides) for config in configs]
    print(
        "| recipe | params | test accuracy | other test scores | dev accuracy (best epoch) | "
        "epochs | training wall time | test scoring | published |"
    )
    print("|---|---:|---:|---|---:|---:|---:|---:|---|")
    for r in rows:
        test = r["test"]
        other = (
            f"macro-F1 {100 * test['macro_f1']:.2f}, {test['examples']} sentences"
            if r["task"] == "classify"
            else f"{test['tokens']} tokens, {test['sentences']} sentences"
        )
        wall = r["wall"] if r["wall"] is not None else r["summary"]["seconds"]
        kind = "whole run" if r["wall"] is not None else "epochs only"
        print(
            f"| `{r['config']}` | {r['params'] / 1e6:.2f}M | **{100 * test['accuracy']:.2f}** | "
            f"{other} | {100 * r['best_valid']:.2f} | {r['summary']['epochs']} | "
            f"{wall / 60:.1f} min ({kind}) | {r['test_seconds']:.1f} s | "
            f"{RECIPES.get(r['config'], '')} |"
        )
    for r in rows:
        if r["task"] == "classify":
            labels, matrix = r["test"]["confusion"]["labels"], r["test"]["confusion"]["matrix"]
            print(
                f"\n{r['config']} test confusion matrix "
                f"(rows gold, columns predicted, labels {labels}): {matrix}"
            )
    overrides = "".join(f" {o}" for o in args.overrides)
    print(
        f"\ncommand: python benchmarks/labelling.py{' --train' if args.train else ''}"
        f"{''.join(f' --config {c}' for c in (args.config or []))}{overrides}"
    )


if __name__ == "__main__":
    main()
