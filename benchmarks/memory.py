"""Peak memory (RSS) of training each recipe and of decoding with it, each in its own process.

Training: ``rnnkit train RECIPE train.max_steps=N`` (the epoch's validation included, the test
off) in a fresh process. Decoding, in another, with the run just trained: ``translate --beam 5``
over the first ``--inputs`` test sources (translate), ``generate --max-new-tokens`` as many
tokens (lm), ``predict`` over the first ``--inputs`` test texts (classify, tag); the adding and
copy tasks have nothing to decode. The peak is ``wait4``'s ``ru_maxrss`` of the process.

    python benchmarks/memory.py                                   # every recipe in configs/
    python benchmarks/memory.py --steps 20 configs/ptb-small.yaml configs/sst2.yaml
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from machine import describe
from timed import ROOT, run_timestamped

from rnnkit.tasks import registry
from rnnkit.tasks.registry import load_config


def decode_inputs(config: Path, limit: int) -> list[str] | None:
    """The first ``limit`` test (else valid) inputs of a recipe as the decoding command reads
    them, one per line; None for a task with nothing to decode."""
    cfg = load_config(config)
    if cfg.task in ("adding", "copy", "lm"):
        return None
    data = registry.get(cfg.task).trainer_side().read_data(cfg)
    examples = data.get("test") or data["valid"]
    if cfg.task == "translate":
        return [source for source, _ in examples[:limit]]
    if cfg.task == "tag":
        return [" ".join(e.tokens) for e in examples[:limit]]
    return [e.text for e in examples[:limit]]


def decode_command(task: str, run: Path, inputs: Path, tokens: int) -> list[str] | None:
    rnnkit = [sys.executable, "-m", "rnnkit"]
    if task == "translate":
        return [*rnnkit, "translate", str(run), "--beam", "5", "--input", str(inputs), "-q"]
    if task in ("classify", "tag"):
        return [*rnnkit, "predict", str(run), "--input", str(inputs), "-q"]
    if task == "lm":
        return [*rnnkit, "generate", str(run), "--max-new-tokens", str(tokens), "--seed", "1"]
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", nargs="*", help="recipes (default: configs/*.yaml)")
    parser.add_argument("--steps", type=int, default=20, help="optimizer steps of training")
    parser.add_argument("--inputs", type=int, default=500, help="sentences (tokens) to decode")
    args = parser.parse_args()
    configs = [Path(c) for c in args.configs] or sorted((ROOT / "configs").glob("*.yaml"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for config in configs:
            cfg = load_config(config)
            run = Path(tmp) / config.stem
            train = [sys.executable, "-m", "rnnkit", "train", str(config), "--run-dir", str(run),
                     f"train.max_steps={args.steps}", "train.progress=false",
                     "data.test=null"]  # fmt: skip
            try:
                trained = run_timestamped(train, lambda line, now: None, None, ROOT)
            except SystemExit as failed:  # one recipe's failure is its row, not the table's end
                print(failed, file=sys.stderr)
                rows.append((config.name, cfg.task, None, None))
                continue
            inputs = Path(tmp) / f"{config.stem}.in"
            texts = decode_inputs(config, args.inputs)
            if texts is not None:
                inputs.write_text("".join(t + "\n" for t in texts), encoding="utf-8")
            command = decode_command(cfg.task, run, inputs, args.inputs)
            decoded = None
            if command is not None:
                decoded = run_timestamped(command, lambda line, now: None, None, ROOT)
            rows.append((config.name, cfg.task, trained, decoded))
            print(rows[-1], flush=True)
    print(f"\n# peak RSS, MB; {describe()}")
    print(f"# python benchmarks/memory.py --steps {args.steps} --inputs {args.inputs}"
          + "".join(f" {c}" for c in args.configs) + "\n")  # fmt: skip
    print(f"| recipe | task | training ({args.steps} steps + validation) | decoding |")
    print("|---|---|---:|---:|")
    for name, task, trained, decoded in rows:
        print(f"| {name} | {task} | {'failed' if trained is None else f'{trained:,.0f}'} | "
              f"{'-' if decoded is None else f'{decoded:,.0f}'} |")  # fmt: skip


if __name__ == "__main__":
    main()
