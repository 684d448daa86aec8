"""The ``rnnkit`` command: train, evaluate, generate, translate, predict, demo.

    rnnkit demo                                   # train the built-in char-LSTM, print samples
    rnnkit train configs/ptb-small.yaml [train.lr=0.5 ...] [--run-dir DIR] [--overwrite]
    rnnkit train --resume RUN [train.epochs=20 ...]
    rnnkit evaluate RUN [--split test | --data FILE]
    rnnkit generate RUN --prompt "ROMEO:" --max-new-tokens 200 --temperature 0.8 --top-k 40
    rnnkit translate RUN [--input FILE] [--beam 5] [--n-best 3] [--attention-plot DIR]
    rnnkit evaluate RUN --src test.de --ref test.en [--beam 5]      # BLEU, chrF (sacrebleu)
    rnnkit predict RUN [--input FILE]     # classify: label and probabilities; tag: token<TAB>tag
    rnnkit evaluate RUN --data test.conllu [--json scores.json]    # accuracy, macro-F1 / entity F1
    torchrun --nproc_per_node=2 -m rnnkit.cli train cfg.yaml     # DDP, one process per core/GPU
    rnnkit diagnose gradients configs/adding.yaml --cells rnn-tanh lstm gru [--run RUN] --out DIR
    rnnkit diagnose grad-norm RUN [--out PNG]               # loss and gradient norm per step
    rnnkit serve RUN [NAME=RUN ...] [--port 8000]           # HTTP API and web page
    rnnkit export RUN --format onnx --out DIR               # ONNX graphs and manifest.json

Bad input (a config key, a command-line argument, a data file) ends in one line,
``rnnkit: error: <what and where>``, and exit status 2. Long commands draw a tqdm progress bar on
stderr; ``--quiet``, or a stderr that is not a terminal, turns it off.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.resources
import inspect
import json
import math
import sys
import time
import typing

from rnnkit import __version__, progress
from rnnkit.errors import TrainingDiverged, UserError


class OneLineParser(argparse.ArgumentParser):
    """argparse whose errors (a missing or malformed argument) are one line, exit status 2."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"rnnkit: error: {self.prog}: {message} (see {self.prog} --help)\n")


def number(kind: type, at_least: float, at_most: float | None = None) -> typing.Callable:
    """An argparse ``type=``: ``kind(text)`` within [at_least, at_most]."""

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind.__name__}, got {text!r}") from None
        if not value >= at_least or (at_most is not None and not value <= at_most):
            upper = f" and <= {at_most}" if at_most is not None else ""
            raise argparse.ArgumentTypeError(f"must be >= {at_least}{upper}, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


COUNT = number(int, 1)


def add_runtime(p: argparse.ArgumentParser) -> None:
    """Where a loaded run runs: --device, and --engine (an export folder is onnxruntime's)."""
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 or auto")
    p.add_argument("--engine", choices=["auto", "torch", "onnxruntime"], default="auto",
                   help="auto: onnxruntime for an export folder, PyTorch for a run")  # fmt: skip
    add_precision(p)


def add_precision(p: argparse.ArgumentParser) -> None:
    """--precision: the dtype a loaded run's weights are held in (``rnnkit.load``'s)."""
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32",
                   help="the weights' dtype (bf16: where the CPU has it; fp16: GPU)")  # fmt: skip


def add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model from a YAML config (or resume a run)")
    p.add_argument("config", nargs="?", help="YAML config file")
    p.add_argument("overrides", nargs="*", help="section.key=value, e.g. train.lr=0.5")
    p.add_argument("--run-dir", help="where the run is written (overrides run_dir)")
    p.add_argument("--resume", metavar="RUN", help="continue this run from its last checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run directory")


def cmd_train(args: argparse.Namespace) -> None:
    from rnnkit.workflows.train import train

    if args.resume:
        overrides = ([args.config] if args.config else []) + args.overrides
        summary = train(None, resume=args.resume, overrides=overrides)
    else:
        if args.config is None:
            raise UserError("train: give a config file, or --resume RUN")
        from rnnkit.tasks.registry import load_config

        cfg = load_config(args.config, args.overrides)
        if args.run_dir:
            cfg.run_dir = args.run_dir
        summary = train(cfg, overwrite=args.overwrite)
    print(json.dumps({k: v for k, v in summary.items() if k != "kind"}, indent=1))


def add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="a language model's loss and perplexity (bits per char); "
        "a translation model's BLEU and chrF",
    )
    p.add_argument("run", help="run directory")
    p.add_argument("--split", default="test", choices=["valid", "test"])
    p.add_argument(
        "--data", help="score this file instead of a split (lm: text; classify, tag: labelled)"
    )
    p.add_argument(
        "--json",
        metavar="FILE",
        help="classify, tag: also write the scores (and the confusion matrix) to this JSON file",
    )
    p.add_argument("--src", help="translation: translate this file ...")
    p.add_argument("--ref", help="... and score it against this one (line-aligned)")
    p.add_argument(
        "--beam",
        type=COUNT,
        default=None,
        help="translation: beam size (default: decode.beam_size)",
    )
    add_runtime(p)


FLAGS = {"source": "src", "reference": "ref"}  # evaluate's keywords -> the flags that set them


def cmd_evaluate(args: argparse.Namespace) -> None:
    import rnnkit

    run = rnnkit.load(args.run, args.device, args.engine, args.precision)
    options: dict[str, object] = {"split": args.split}
    given = {"data": args.data, "source": args.src, "reference": args.ref, "beam": args.beam}
    options |= {key: value for key, value in given.items() if value is not None}
    takes = inspect.signature(run.evaluate).parameters
    foreign = [f"--{FLAGS.get(k, k)}" for k in options if k not in takes]
    if foreign:
        raise UserError(f"evaluate: {', '.join(foreign)} does not apply to a {run.task} run")
    scores = run.evaluate(**options)
    if "bleu" in scores:
        print(f"BLEU {scores['bleu']:.2f} chrF {scores['chrf']:.2f}")
        print(f"{scores['bleu_signature']}\n{scores['chrf_signature']}")
    else:
        print_scores(scores, args.json)


def print_scores(scores: dict, json_path: str | None) -> None:
    """One line of scores; for classification the confusion matrix under it (rows gold)."""
    from rnnkit.atomic import atomic_write_text, writing

    print(
        " ".join(
            f"{k} {v:.6f}" if isinstance(v, float) else f"{k} {v}"
            for k, v in scores.items()
            if k != "confusion"
        )
    )
    if "confusion" in scores:
        from tabulate import tabulate

        labels, matrix = scores["confusion"]["labels"], scores["confusion"]["matrix"]
        print("confusion matrix (rows: gold, columns: predicted)")
        print(
            tabulate(
                [[label, *row] for label, row in zip(labels, matrix, strict=True)],
                headers=["", *labels],
                tablefmt="simple",
            )
        )
    if json_path:
        with writing(json_path):
            atomic_write_text(json_path, json.dumps(scores, indent=1) + "\n")


def add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict", help="label lines (classify) or tag their tokens (tag) with a trained run"
    )
    p.add_argument("run", help="run directory")
    p.add_argument(
        "--input",
        help="one text (classify) or one whitespace-tokenized sentence (tag) per line "
        "(default: standard input)",
    )
    add_runtime(p)


def cmd_predict(args: argparse.Namespace) -> None:
    import rnnkit

    run = rnnkit.load(args.run, args.device, args.engine, args.precision)
    if not hasattr(run, "predict"):
        raise UserError(f"{args.run}: a {run.task} run; predict needs a classify or tag run")
    for result in run.predict(read_input(args.input), name=args.input or "stdin"):
        if hasattr(result, "label"):
            scores = " ".join(f"{n}={p:.4f}" for n, p in result.probabilities.items())
            print(f"{result.label}\t{scores}")
        else:
            print("".join(f"{t}\t{g}\n" for t, g in zip(result.tokens, result.tags, strict=True)))


def read_input(path: str | None) -> list[str]:
    """The lines of ``--input FILE``, or of standard input."""
    from rnnkit.textio import read_lines, split_lines

    return read_lines(path) if path else split_lines(sys.stdin.read())


def add_translate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("translate", help="translate lines with a trained translation run")
    p.add_argument("run", help="run directory")
    p.add_argument("--input", help="a file of source lines (default: standard input)")
    p.add_argument(
        "--beam", type=COUNT, default=None, help="beam size (1: greedy; default: decode.beam_size)"
    )
    p.add_argument(
        "--n-best", type=COUNT, default=1, help="print the N best, as 'line<TAB>score<TAB>text'"
    )
    p.add_argument(
        "--attention-plot", metavar="DIR", help="write one attention heatmap PNG per line here"
    )
    add_runtime(p)


def cmd_translate(args: argparse.Namespace) -> None:
    from pathlib import Path

    import rnnkit
    from rnnkit.plots import attention_heatmap

    run = require(rnnkit.load(args.run, args.device, args.engine, args.precision), "translate")
    name = args.input or "stdin"
    plots = args.attention_plot is not None
    translations = run.translate(
        read_input(args.input), beam=args.beam, n_best=args.n_best, attention=plots, name=name
    )
    if plots:
        Path(args.attention_plot).mkdir(parents=True, exist_ok=True)
    for number, translation in enumerate(translations, 1):
        for hypothesis in translation.hypotheses:
            text = hypothesis.text
            print(f"{number}\t{hypothesis.score:.4f}\t{text}" if args.n_best > 1 else text)
        if translation.attention is not None:
            matrix = translation.attention
            attention_heatmap(
                matrix.weights,
                matrix.source_tokens,
                matrix.target_tokens,
                Path(args.attention_plot) / f"{number:05d}.png",
                title=f"{name}:{number}",
            )


def require(run, method: str):
    """The loaded run, if its task has ``method`` (translate, generate, ...)."""
    if not hasattr(run, method):
        raise UserError(f"{run.path}: a {run.task} run; {method} needs another kind of run")
    return run


def add_generate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="write text with a trained language model")
    p.add_argument("run", help="run directory")
    p.add_argument("--prompt", default="")
    p.add_argument(
        "--max-new-tokens", "--max-tokens", type=COUNT, default=200, dest="max_new_tokens"
    )
    p.add_argument("--temperature", type=number(float, 0), default=1.0, help="0: greedy")
    p.add_argument("--top-k", type=number(int, 0), default=0, help="0: no top-k cut")
    p.add_argument("--top-p", type=number(float, 1e-9, 1), default=1.0, help="in (0, 1]")
    p.add_argument("--beam", type=COUNT, default=1, help="beam size (> 1: beam search)")
    p.add_argument("--num-samples", type=COUNT, default=1)
    p.add_argument("--seed", type=int, default=None)
    add_runtime(p)


def cmd_generate(args: argparse.Namespace) -> None:
    import rnnkit

    run = require(rnnkit.load(args.run, args.device, args.engine, args.precision), "generate")
    generations = run.generate(
        args.prompt,
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        beam=args.beam,
        num_samples=args.num_samples,
        seed=args.seed,
    )
    for i, generation in enumerate(generations):
        if len(generations) > 1:
            print(f"--- sample {i + 1} ---")
        print(generation.text)


def add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="train the built-in char-LSTM on Tiny Shakespeare and print samples"
    )
    p.add_argument("overrides", nargs="*", help="section.key=value, e.g. train.max_steps=100")
    p.add_argument("--run-dir", default=None, help="default: runs/demo-<time>")


def cmd_demo(args: argparse.Namespace) -> None:
    import rnnkit
    from rnnkit.tasks.registry import load_config

    package = importlib.resources.files("rnnkit")
    cfg = load_config(package / "configs" / "demo.yaml", args.overrides)
    cfg.data.train = str(package / "data" / "tinyshakespeare.txt")
    cfg.run_dir = args.run_dir or time.strftime("runs/demo-%Y%m%d-%H%M%S")
    print(
        f"rnnkit demo: a {cfg.model.num_layers}x{cfg.model.hidden_size} char-LSTM on Tiny "
        f"Shakespeare (bundled), {cfg.train.epochs} epochs; run directory {cfg.run_dir}",
        flush=True,
    )
    summary = rnnkit.train(cfg)
    valid = summary["best_valid_loss"]
    print(
        f"\ntrained in {summary['seconds']:.0f} s: validation loss {valid:.3f} nats/char "
        f"({valid / math.log(2):.3f} bits/char)\n"
    )
    run = rnnkit.load(cfg.run_dir)
    for prompt in ("ROMEO:", "JULIET:"):
        print(f"--- rnnkit generate {cfg.run_dir} --prompt '{prompt}' --temperature 0.8 ---")
        print(run.generate(prompt, max_new_tokens=300, temperature=0.8, seed=0)[0].text, "\n")


def add_serve(sub: argparse._SubParsersAction) -> None:
    from rnnkit.serve.limits import Limits

    p = sub.add_parser("serve", help="serve trained runs over HTTP, with a web page")
    p.add_argument("runs", nargs="+", metavar="[NAME=]RUN", help="a run, under its folder's name")
    p.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (this machine only)")
    p.add_argument("--port", type=number(int, 0, 65535), default=8000)
    p.add_argument("--api-key", help="require Authorization: Bearer KEY (or $RNNKIT_API_KEY)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 or auto")
    add_precision(p)
    for f in dataclasses.fields(Limits):
        kind = type(f.default)
        p.add_argument(
            f"--{f.name.replace('_', '-')}",
            type=number(kind, 1 if kind is int else 1e-3),
            default=f.default,
            help=f"{f.metadata['help']} (default {f.default})",
        )


def cmd_serve(args: argparse.Namespace) -> None:
    from rnnkit.serve.limits import Limits

    try:
        from rnnkit.workflows.serve import serve
    except ImportError as e:
        raise UserError(f"serve: {e.name} is missing: pip install 'rnnkit[serve]'") from None
    try:
        limits = Limits(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Limits)})
    except ValueError as e:
        raise UserError(f"serve: {e}") from None
    serve(args.runs, args.host, args.port, limits, args.api_key, args.device, args.precision)


def add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write a trained run as ONNX graphs and a manifest")
    p.add_argument("run", help="a run directory")
    p.add_argument("--format", choices=["onnx"], default="onnx")
    p.add_argument("--out", required=True, help="the export folder (written whole or not at all)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing folder")


def cmd_export(args: argparse.Namespace) -> None:
    import rnnkit

    try:
        from rnnkit.export.onnx_export import export_onnx
    except ImportError as e:
        raise UserError(f"export: {e.name} is missing: pip install 'rnnkit[onnx]'") from None
    out = export_onnx(rnnkit.load(args.run), args.out, args.overwrite)
    for path in sorted(out.iterdir()):
        if path.is_file():
            print(f"{path}\t{path.stat().st_size} bytes")


def add_diagnose(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "diagnose", help="gradient flow through time, W_hh spectra, gradient norm per step"
    )
    kinds = p.add_subparsers(dest="diagnosis", required=True)
    g = kinds.add_parser(
        "gradients", help="||dL_T/dh_t|| per step and layer, and W_hh spectra (CSV, PNG)"
    )
    g.add_argument("config", nargs="?", help="YAML config: fresh models at initialisation")
    g.add_argument("overrides", nargs="*", help="section.key=value")
    g.add_argument(
        "--cells",
        nargs="+",
        default=[],
        metavar="CELL",
        help="one fresh model per cell: rnn-tanh rnn-relu lstm gru (default: the config's)",
    )
    g.add_argument(
        "--run", action="append", default=[], help="a trained run to include (repeatable)"
    )
    g.add_argument("--batch-size", type=COUNT, default=32)
    g.add_argument("--out", default="diagnose", help="output directory (default: diagnose/)")
    n = kinds.add_parser("grad-norm", help="plot a run's training loss and gradient norm per step")
    n.add_argument("run", help="run directory")
    n.add_argument("--out", help="PNG path (default: RUN/grad_norm.png)")


def cmd_diagnose(args: argparse.Namespace) -> None:
    from pathlib import Path

    from rnnkit.workflows import diagnose as report

    if args.diagnosis == "grad-norm":
        print(report.grad_norm_plot(args.run, args.out))
        return
    if args.config is None and not args.run:
        raise UserError("diagnose gradients: give a config file, --run RUN, or both")
    results = (
        report.fresh_models(args.config, args.overrides, args.cells, args.batch_size)
        if args.config
        else []
    )
    results += [report.trained_model(run, args.batch_size) for run in args.run]
    report.write_report(results, Path(args.out))
    from tabulate import tabulate

    rows = [
        [row["label"], row["grad_T"], row["grad_1"], row["ratio"], row["radius"]]
        for row in report.summary_rows(results)
    ]
    headers = ["model", "|dL/dh_T|", "|dL/dh_1|", "ratio", "radius"]
    print(tabulate(rows, headers=headers, floatfmt=("", ".3e", ".3e", ".2e", ".3f")))
    print(f"wrote {Path(args.out) / 'gradient_flow.csv'}, spectrum.csv, gradient_flow.png")


COMMANDS = {
    "train": (add_train, cmd_train),
    "evaluate": (add_evaluate, cmd_evaluate),
    "generate": (add_generate, cmd_generate),
    "translate": (add_translate, cmd_translate),
    "demo": (add_demo, cmd_demo),
    "predict": (add_predict, cmd_predict),
    "diagnose": (add_diagnose, cmd_diagnose),
    "serve": (add_serve, cmd_serve),
    "export": (add_export, cmd_export),
}


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="rnnkit", description="Recurrent sequence learning on PyTorch.")
    parser.add_argument("--version", action="version", version=f"rnnkit {__version__}")
    parser.add_argument(
        "--quiet", "-q", action="store_true", help="no progress bars (they go to stderr)"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for add, _ in COMMANDS.values():
        add(sub)
    for command in sub.choices.values():  # --quiet after the command too
        command.add_argument("--quiet", "-q", action="store_true", default=argparse.SUPPRESS)
    args, extra = parser.parse_known_args(argv)
    # train and demo draw the trainer's own bar (train.progress); --quiet turns it off too.
    progress.enable(not args.quiet and args.command not in ("train", "demo"))
    if args.quiet and hasattr(args, "overrides"):
        args.overrides.append("train.progress=false")
    # Overrides may follow options too: `rnnkit train cfg.yaml --run-dir R train.lr=0.5`.
    if (
        extra
        and hasattr(args, "overrides")
        and all("=" in e and not e.startswith("-") for e in extra)
    ):
        args.overrides += extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
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
