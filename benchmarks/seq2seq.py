"""Translation speed and quality: training target tokens/s, decoding sentences/s, test BLEU.

Training: ``--steps`` optimizer steps of the recipe's real training step (``Trainer.train_step``)
after 3 warm-up steps; time per epoch = batches per epoch x time per step. Decoding: every
trained run given with ``--run`` translates the test set greedily and with beam 5, timed, and
is scored with sacrebleu (BLEU and chrF, on the run's own test references: the raw files give
cased detokenized BLEU, the tok/ files lowercased tokenized BLEU).

A ``--config`` may carry overrides after the path ("configs/x.yaml model.reset=before");
``--bptt both`` times each recipe twice, with the explicit path's hand-written BPTT and with
autograd over the cells (``model.bptt``), and prints the ratio.

    python benchmarks/seq2seq.py --config configs/multi30k-de-en-tok.yaml --steps 30
    python benchmarks/seq2seq.py --config "configs/multi30k-de-en-tok.yaml model.reset=before" \
        --bptt both --steps 20
    python benchmarks/seq2seq.py --run runs/multi30k-de-en-tok --run runs/multi30k-de-en
    python benchmarks/seq2seq.py --config configs/multi30k-de-en-tok.yaml --alternate 12

``--alternate`` measures bf16 against fp32 in one process, alternating blocks of the same
batches (``alternating_speed``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from machine import describe

import rnnkit
from rnnkit.tasks import registry
from rnnkit.tasks.registry import load_config
from rnnkit.tasks.translate.training import corpus_scores
from rnnkit.training.distributed import SINGLE_PROCESS
from rnnkit.training.trainer import Trainer, effective_precision

ROOT = Path(__file__).resolve().parent.parent


def recipe_trainer(config: str, device: torch.device) -> Trainer:
    """The recipe's trainer, its model built. ``config``: a path, then any overrides,
    separated by spaces."""
    path, *overrides = config.split()
    cfg = load_config(path, ["data.test=null", *overrides])
    kind = registry.get("translate").trainer_side()
    data = kind.read_data(cfg)
    tokenizers = kind.build_vocabularies(cfg, data)
    torch.manual_seed(cfg.seed)
    model = kind.build_model(cfg, tokenizers)
    task = kind.training_task(cfg, tokenizers, model, data, device, SINGLE_PROCESS)
    return Trainer(task, cfg.train, None, SINGLE_PROCESS, device)


def training_speed(
    config: str, steps: int, device: torch.device
) -> tuple[float, float, int, float]:
    """-> target tokens/s, seconds per epoch, parameters, seconds per step."""
    trainer = recipe_trainer(config, device)
    task = trainer.task
    for k in range(3):
        trainer.train_step(k)
    tokens, start = 0, time.perf_counter()
    for k in range(3, 3 + steps):
        tokens += trainer.train_step(k)[1]
    seconds = time.perf_counter() - start
    return (
        tokens / seconds,
        seconds / steps * task.num_batches(),
        sum(p.numel() for p in task.model.parameters()),
        seconds / steps,
    )


def alternating_speed(
    config: str, rounds: int, device: torch.device, block: int = 10
) -> dict[str, float]:
    """bf16 against fp32 in one process, on the same batches: each round trains ``block``
    batches in one precision, then the same batches in the other, the order swapped every
    round. -> target tokens/s of each precision over all rounds. The machine's drift (other
    processes, the CPU's clock) then falls on both alike, which it does not for two runs
    minutes apart; the model takes both precisions' steps, so it trains on each batch twice."""
    trainer = recipe_trainer(config, device)
    precisions = ("fp32", effective_precision("bf16", device))
    for precision in precisions:  # warm-up: three steps in each
        trainer.precision = precision
        for k in range(3):
            trainer.train_step(k)
    seconds = dict.fromkeys(precisions, 0.0)
    tokens = dict.fromkeys(precisions, 0)
    for r in range(rounds):
        first = 3 + block * r
        for precision in precisions if r % 2 == 0 else precisions[::-1]:
            trainer.precision = precision
            start = time.perf_counter()
            for k in range(first, first + block):
                tokens[precision] += trainer.train_step(k)[1]
            seconds[precision] += time.perf_counter() - start
    return {p: tokens[p] / seconds[p] for p in precisions}


def decoding(run: str, beam: int, device: torch.device) -> tuple[float, dict]:
    """-> sentences/s translating the run's test set with this beam, and the scores."""
    loaded = rnnkit.load(run, str(device))
    pairs = registry.get("translate").trainer_side().read_data(loaded.cfg)["test"]
    start = time.perf_counter()
    translations = loaded.translate([s for s, _ in pairs], beam=beam)
    seconds = time.perf_counter() - start
    return len(pairs) / seconds, corpus_scores(
        [t.text for t in translations], [t for _, t in pairs]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--config", action="append", default=[], help="time training of this recipe"
    )
    parser.add_argument(
        "--run", action="append", default=[], help="time decoding and score this trained run"
    )
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument(
        "--bptt", choices=["default", "both"], default="default",
        help="both: time each recipe with model.bptt=handwritten and =autograd",
    )  # fmt: skip
    parser.add_argument(
        "--alternate", type=int, metavar="ROUNDS",
        help="bf16 against fp32 in one process: ROUNDS blocks of 10 batches in each, alternating",
    )  # fmt: skip
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f"# {describe(device)}")
    if args.alternate:
        for config in args.config:
            rates = alternating_speed(config, args.alternate, device)
            print(
                f"\n{config}: {args.alternate} rounds of 10 batches in each precision, alternating"
                "\n\n| precision | target tokens/s |\n|---|---:|"
            )
            for precision, rate in rates.items():
                print(f"| {precision} | {rate:,.0f} |")
            if "bf16" in rates:
                print(f"\nbf16 over fp32: {rates['bf16'] / rates['fp32']:.2f}x")
            else:
                print("\nbf16 over fp32: unmeasured (this CPU has no native bf16)")
        print(
            "\ncommand: python benchmarks/seq2seq.py "
            + " ".join(f"--config {c!r}" for c in args.config)
            + f" --alternate {args.alternate} --device {args.device}"
        )
        return
    if args.config:
        print(
            "\n| recipe | parameters | target tokens/s | ms/step | s/epoch |\n"
            "|---|---:|---:|---:|---:|"
        )
        for config in args.config:
            modes = ["handwritten", "autograd"] if args.bptt == "both" else [None]
            steps = {}
            for mode in modes:
                recipe = config if mode is None else f"{config} model.bptt={mode}"
                rate, epoch, params, steps[mode] = training_speed(recipe, args.steps, device)
                print(
                    f"| {recipe} | {params / 1e6:.2f}M | {rate:,.0f} | {steps[mode] * 1000:.0f} | "
                    f"{epoch:,.0f} |", flush=True,
                )  # fmt: skip
            if args.bptt == "both":
                ratio = steps["autograd"] / steps["handwritten"]
                print(f"| hand-written BPTT: {ratio:.2f}x as fast as autograd | | | | |")
    if args.run:
        print(
            "\n| run | greedy sent/s | greedy BLEU | beam 5 sent/s | beam 5 BLEU | beam 5 chrF |\n"
            "|---|---:|---:|---:|---:|---:|"
        )
        for run in args.run:
            greedy_rate, greedy_scores = decoding(run, 1, device)
            beam_rate, beam_scores = decoding(run, 5, device)
            print(
                f"| {run} | {greedy_rate:.1f} | {greedy_scores['bleu']:.2f} | {beam_rate:.1f} | "
                f"{beam_scores['bleu']:.2f} | {beam_scores['chrf']:.2f} |"
            )
        print(f"\nsacrebleu: {beam_scores['bleu_signature']}")
    configs = " ".join(f"--config {c!r}" for c in args.config)
    print(
        f"\ncommand: python benchmarks/seq2seq.py {configs} "
        f"{' '.join(f'--run {r}' for r in args.run)} --steps {args.steps} --device {args.device}"
        f"{' --bptt both' if args.bptt == 'both' else ''}"
    )


if __name__ == "__main__":
    main()
