"""The ``rnnkit`` command: train, evaluate, generate, translate, demo.

    rnnkit demo                                   # train the built-in char-LSTM, print samples
    rnnkit train configs/ptb-small.yaml [train.lr=0.5 ...] [--run-dir DIR] [--overwrite]
    rnnkit train --resume RUN [train.epochs=20 ...]
    rnnkit evaluate RUN [--split test | --data FILE]
    rnnkit generate RUN --prompt "ROMEO:" --max-tokens 200 --temperature 0.8 --top-k 40 --num-samples 3
    rnnkit translate RUN [--input FILE] [--beam 5] [--n-best 3] [--attention-plot DIR]
    rnnkit evaluate RUN --src test.de --ref test.en [--beam 5]      # BLEU, chrF (sacrebleu)
    torchrun --nproc_per_node=2 -m rnnkit.cli train cfg.yaml     # DDP, one process per core/GPU

Bad input ends in one line, ``rnnkit: error: <what and where>``, and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib.resources
import json
import math
import sys
import time

from .config import load_config
from .errors import UserError


def add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model from a YAML config (or resume a run)")
    p.add_argument("config", nargs="?", help="YAML config file")
    p.add_argument("overrides", nargs="*", help="section.key=value, e.g. train.lr=0.5")
    p.add_argument("--run-dir", help="where the run is written (overrides run_dir)")
    p.add_argument("--resume", metavar="RUN", help="continue this run from its last checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run directory")


def cmd_train(args: argparse.Namespace) -> None:
    from .training import train

    if args.resume:
        overrides = ([args.config] if args.config else []) + args.overrides
        summary = train(None, resume=args.resume, overrides=overrides)
    else:
        if args.config is None:
            raise UserError("train: give a config file, or --resume RUN")
        cfg = load_config(args.config, args.overrides)
        if args.run_dir:
            cfg.run_dir = args.run_dir
        summary = train(cfg, overwrite=args.overwrite)
    print(json.dumps({k: v for k, v in summary.items() if k != "kind"}, indent=1))


def add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="a language model's loss and perplexity (bits per char); "
                                        "a translation model's BLEU and chrF")
    p.add_argument("run", help="run directory")
    p.add_argument("--split", default="test", choices=["valid", "test"])
    p.add_argument("--data", help="language model: score this text file instead of a split")
    p.add_argument("--src", help="translation: translate this file ...")
    p.add_argument("--ref", help="... and score it against this one (line-aligned)")
    p.add_argument("--beam", type=int, default=None, help="translation: beam size (default: decode.beam_size)")
    p.add_argument("--device", default="cpu")


def cmd_evaluate(args: argparse.Namespace) -> None:
    from .rundir import RunDir
    from .training import evaluate_run, evaluate_translation

    if RunDir.open(args.run).load_config().get("task", "lm") == "translate":
        scores = evaluate_translation(args.run, args.split, args.src, args.ref, args.beam, args.device)
        print(f"BLEU {scores['bleu']:.2f} chrF {scores['chrf']:.2f}")
        print(f"{scores['bleu_signature']}\n{scores['chrf_signature']}")
        return
    metrics = evaluate_run(args.run, args.split, args.data, args.device)
    print(" ".join(f"{k} {v:.6f}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items()))


def add_translate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("translate", help="translate lines with a trained translation run")
    p.add_argument("run", help="run directory")
    p.add_argument("--input", help="a file of source lines (default: standard input)")
    p.add_argument("--beam", type=int, default=None, help="beam size (1: greedy; default: decode.beam_size)")
    p.add_argument("--n-best", type=int, default=1, help="print the N best, as 'line<TAB>score<TAB>text'")
    p.add_argument("--attention-plot", metavar="DIR", help="write one attention heatmap PNG per line here")
    p.add_argument("--device", default="cpu")


def cmd_translate(args: argparse.Namespace) -> None:
    from pathlib import Path

    from .plots import attention_heatmap
    from .tasks.translate import attention_matrix, encode_sources, translate_ids
    from .textio import read_lines, split_lines
    from .training import load_run, require_task, select_device

    cfg, tokenizers, model = load_run(args.run, args.device)
    require_task(cfg, "translate", args.run)
    name = args.input or "stdin"
    lines = read_lines(args.input) if args.input else split_lines(sys.stdin.read())
    device = select_device(args.device)
    sources = encode_sources(tokenizers[0], lines, cfg.decode.max_source_length, name)
    beam = args.beam or cfg.decode.beam_size
    if not 1 <= args.n_best <= beam:
        raise UserError(f"translate: --n-best must be between 1 and the beam size ({beam})")
    results = translate_ids(model, tokenizers, sources, cfg.decode, device, beam, args.n_best)
    if args.attention_plot:
        Path(args.attention_plot).mkdir(parents=True, exist_ok=True)
    for number, (source, hypotheses) in enumerate(zip(sources, results), 1):
        for ids, score in hypotheses:
            text = tokenizers[1].decode(ids)
            print(f"{number}\t{score:.4f}\t{text}" if args.n_best > 1 else text)
        if args.attention_plot and hypotheses:
            weights, source_labels, target_labels = attention_matrix(model, tokenizers, source,
                                                                     hypotheses[0][0], device)
            attention_heatmap(weights, source_labels, target_labels,
                              Path(args.attention_plot) / f"{number:05d}.png", title=f"{name}:{number}")


def add_generate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="write text with a trained language model")
    p.add_argument("run", help="run directory")
    p.add_argument("--prompt", default="")
    p.add_argument("--max-tokens", type=int, default=200)
    p.add_argument("--temperature", type=float, default=1.0, help="0: greedy")
    p.add_argument("--top-k", type=int, default=0)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--beam", type=int, default=1, help="beam size (> 1: beam search)")
    p.add_argument("--num-samples", type=int, default=1)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--device", default="cpu")


def cmd_generate(args: argparse.Namespace) -> None:
    from .tasks.lm import generate
    from .training import load_run, require_task

    cfg, tokenizer, model = load_run(args.run, args.device)
    require_task(cfg, "lm", args.run)
    try:
        texts = generate(model, tokenizer, args.prompt, max_tokens=args.max_tokens,
                         temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                         beam=args.beam, num_samples=args.num_samples, seed=args.seed)
    except ValueError as e:  # a sampling option out of range
        raise UserError(f"generate: {e}") from None
    for i, text in enumerate(texts):
        if len(texts) > 1:
            print(f"--- sample {i + 1} ---")
        print(text)


def add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="train the built-in char-LSTM on Tiny Shakespeare and print samples")
    p.add_argument("overrides", nargs="*", help="section.key=value, e.g. train.max_steps=100")
    p.add_argument("--run-dir", default=None, help="default: runs/demo-<time>")


def cmd_demo(args: argparse.Namespace) -> None:
    from .tasks.lm import generate
    from .training import load_run, train

    package = importlib.resources.files("rnnkit")
    cfg = load_config(package / "configs" / "demo.yaml", args.overrides)
    cfg.data.train = str(package / "data" / "tinyshakespeare.txt")
    cfg.run_dir = args.run_dir or time.strftime("runs/demo-%Y%m%d-%H%M%S")
    print(f"rnnkit demo: a {cfg.model.num_layers}x{cfg.model.hidden_size} char-LSTM on Tiny Shakespeare "
          f"(bundled), {cfg.train.epochs} epochs; run directory {cfg.run_dir}", flush=True)
    summary = train(cfg)
    valid = summary["best_valid_loss"]
    print(f"\ntrained in {summary['seconds']:.0f} s: validation loss {valid:.3f} nats/char "
          f"({valid / math.log(2):.3f} bits/char)\n")
    _, tokenizer, model = load_run(cfg.run_dir)
    for prompt in ("ROMEO:", "JULIET:"):
        print(f"--- rnnkit generate {cfg.run_dir} --prompt '{prompt}' --temperature 0.8 ---")
        print(generate(model, tokenizer, prompt, max_tokens=300, temperature=0.8, seed=0)[0], "\n")


COMMANDS = {"train": (add_train, cmd_train), "evaluate": (add_evaluate, cmd_evaluate),
            "generate": (add_generate, cmd_generate), "translate": (add_translate, cmd_translate),
            "demo": (add_demo, cmd_demo)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rnnkit", description="Recurrent sequence learning on PyTorch.")
    sub = parser.add_subparsers(dest="command", required=True)
    for add, _ in COMMANDS.values():
        add(sub)
    args, extra = parser.parse_known_args(argv)
    # Overrides may follow options too: `rnnkit train cfg.yaml --run-dir R train.lr=0.5`.
    if extra and hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
        args.overrides += extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    from .trainer import TrainingDiverged

    try:
        COMMANDS[args.command][1](args)
    except UserError as e:
        print(f"rnnkit: error: {e}", file=sys.stderr)
        return 2
    except TrainingDiverged as e:
        print(f"rnnkit: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("rnnkit: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
