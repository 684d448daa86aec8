"""Multi30k test BLEU for every attention score, at equal epochs: one recipe, trained once per
``model.attention`` value (``none`` is the context-vector model, without input feeding), each
run scored on the test set with the recipe's beam. Runs go to ``runs/attention-<kind>``.

    python benchmarks/attention_kinds.py --config configs/multi30k-de-en-tok.yaml --epochs 2
"""

from __future__ import annotations

import argparse
import time

from rnnkit.tasks.registry import load_config
from rnnkit.workflows.train import train

KINDS = ("none", "dot", "general", "concat", "additive")


def run_kind(config: str, kind: str, epochs: int) -> dict:
    """Train one variant from scratch; -> its row of the table."""
    overrides = [
        f"model.attention={kind}",
        f"train.epochs={epochs}",
        f"run_dir=runs/attention-{kind}",
    ]
    if kind == "none":
        overrides.append("model.input_feeding=false")  # nothing to feed without attention
    start = time.perf_counter()
    summary = train(load_config(config, overrides), overwrite=True)
    return {
        "kind": kind,
        "minutes": (time.perf_counter() - start) / 60,
        "dev_bleu": summary["best_valid_bleu"],
        **summary["test"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/multi30k-de-en-tok.yaml")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    args = parser.parse_args()
    rows = [run_kind(args.config, kind, args.epochs) for kind in args.kinds]
    print(f"\n{args.config}, {args.epochs} epochs each, test BLEU with the recipe's beam\n")
    print("| attention | test BLEU | test chrF | dev BLEU (greedy, best epoch) | wall time (min) |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['kind']} | {r['bleu']:.2f} | {r['chrf']:.2f} | {r['dev_bleu']:.2f} | "
            f"{r['minutes']:.1f} |"
        )
    print(
        f"\ncommand: python benchmarks/attention_kinds.py --config {args.config}"
        f" --epochs {args.epochs} --kinds {' '.join(args.kinds)}"
    )


if __name__ == "__main__":
    main()
