"""Training throughput of the ptb-small recipe: rnnkit's trainer against a plain baseline.

The baseline is written the way pytorch/examples word_language_model is: torch.nn.LSTM, a
loop of globals, manual SGD ``p.data.add_(p.grad, alpha=-lr)``, the same hyperparameters
(2x200 LSTM, batch 20, bptt 20, init +-0.1; its per-token mean loss with lr 20 and clip 0.25 is
the recipe's summed-over-20-steps loss with lr 1 and clip 5). rnnkit runs its real training step
(``Trainer.train_step``: learning rate, autocast, loss, backward, clipping, optimizer step) in
fp32 and bf16; and the same recipe with a peephole LSTM (a variant no fused kernel computes),
trained through the explicit cells with the hand-written BPTT (``model.bptt: handwritten``,
the default) and with autograd over the cells (``model.bptt: autograd``, the path before
``rnnkit/nn/bptt.py``). The variants take turns, ``--rounds`` times, so machine noise hits all
alike; each reports its best round. Time per epoch = PTB train batches per epoch x time per
step.

``--epoch`` trains the baseline and rnnkit (fp32 and bf16) for one whole epoch each instead,
from the same initial weights, and gives each one's time and its validation perplexity after
the epoch (the baseline's as word_language_model's ``evaluate`` computes it).

``--minutes M`` gives time to quality: the baseline with word_language_model's own schedule
(lr 20, divided by 4 whenever the valid loss does not improve) and ``rnnkit train
configs/ptb-small.yaml`` (fp32, and bf16 where oneDNN has it), each in its own process for at
most M minutes, the valid perplexity after every epoch against the minutes since the process
started, drawn to ``--plot``.

    python benchmarks/lm.py                        # CPU
    python benchmarks/lm.py --epoch                # one whole epoch each, and valid ppl
    python benchmarks/lm.py --device cuda          # GPU: fp32, bf16
    python benchmarks/lm.py --minutes 35 --plot docs/lm-time-to-quality.png
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
from machine import describe
from timed import Training, epoch_lines, run_timestamped, train_rnnkit

from rnnkit.allocator import retain_freed_memory
from rnnkit.plots import time_to_quality_plot
from rnnkit.tasks import registry
from rnnkit.tasks.lm.training import LanguageModelTask
from rnnkit.tasks.registry import load_config
from rnnkit.training.distributed import SINGLE_PROCESS
from rnnkit.training.trainer import Trainer

ROOT = Path(__file__).resolve().parent.parent


class Baseline(nn.Module):
    """word_language_model's RNNModel, LSTM case, without dropout (ptb-small has none)."""

    def __init__(self, ntoken: int, ninp: int, nhid: int, nlayers: int):
        super().__init__()
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnn = nn.LSTM(ninp, nhid, nlayers)
        self.decoder = nn.Linear(nhid, ntoken)
        for p in self.parameters():
            nn.init.uniform_(p, -0.1, 0.1)

    def forward(self, input, hidden):
        output, hidden = self.rnn(self.encoder(input), hidden)
        return self.decoder(output), hidden


def batchify(ids: torch.Tensor, bsz: int, device: torch.device) -> torch.Tensor:
    nbatch = ids.size(0) // bsz
    return ids[: nbatch * bsz].view(bsz, -1).t().contiguous().to(device)  # (L, B)


def baseline_steps(
    model: Baseline, data: torch.Tensor, ntoken: int, steps: range, lr: float
) -> None:
    """The example's train() loop over the batches ``steps`` of the time-major stream ``data``
    (L, B): forward, cross-entropy, backward, clip 0.25, ``p.data.add_(p.grad, alpha=-lr)``."""
    bptt, clip = 20, 0.25
    criterion = nn.CrossEntropyLoss()
    hidden = None
    for i in steps:
        pos = i * bptt
        source, target = data[pos : pos + bptt], data[pos + 1 : pos + 1 + bptt].reshape(-1)
        if hidden is not None:
            hidden = tuple(h.detach() for h in hidden)  # repackage_hidden
        model.zero_grad()
        output, hidden = model(source, hidden)
        loss = criterion(output.view(-1, ntoken), target)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        for p in model.parameters():
            p.data.add_(p.grad, alpha=-lr)
        loss.item()  # the example logs the loss; this also waits for the GPU


def baseline_seconds(
    ids: torch.Tensor, ntoken: int, steps: int, device: torch.device, model: Baseline | None = None
) -> float:
    """Seconds per step of the example's loop, lr 20, over ``steps`` steps after 5 warm-up
    steps (``model``: train this one, from the corpus' start, with no warm-up)."""
    data = batchify(ids, 20, device)
    warmup = 5 if model is None else 0
    model = model if model is not None else Baseline(ntoken, 200, 200, 2).to(device)
    baseline_steps(model, data, ntoken, range(warmup), 20.0)
    synchronize(device)
    start = time.perf_counter()
    baseline_steps(model, data, ntoken, range(warmup, warmup + steps), 20.0)
    synchronize(device)
    return (time.perf_counter() - start) / steps


def baseline_training(texts: dict, tokenizer, device: torch.device, epochs: int = 40) -> None:
    """word_language_model's main loop: train an epoch, evaluate on valid, and divide the
    rate (from 20) by 4 whenever the valid loss did not improve; one line per epoch in the form
    ``rnnkit train`` prints, for ``benchmarks/timed.py`` to read."""
    ids = torch.tensor(tokenizer.encode_corpus(texts["train"]))
    valid_ids = torch.tensor(tokenizer.encode_corpus(texts["valid"]))
    torch.manual_seed(0)
    ntoken = len(tokenizer.vocab)
    model = Baseline(ntoken, 200, 200, 2).to(device)
    data = batchify(ids, 20, device)
    steps = (data.size(0) - 1) // 20
    lr, best = 20.0, math.inf
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        baseline_steps(model, data, ntoken, range(steps), lr)
        synchronize(device)
        seconds = time.perf_counter() - start
        ppl = baseline_valid_ppl(model, valid_ids, device)
        print(f"epoch {epoch} | valid_ppl {ppl:.4g} | lr {lr:g} | seconds {seconds:.4g} | "
              f"tokens_per_s {steps * 20 * 20 / seconds:.4g}", flush=True)  # fmt: skip
        if ppl < best:
            best = ppl
        else:
            lr /= 4.0


def rnnkit_seconds(
    task: LanguageModelTask, precision: str, steps: int, device: torch.device
) -> float:
    cfg = task.cfg
    cfg.train.precision = precision
    trainer = Trainer(task, cfg.train, None, SINGLE_PROCESS, device)
    task.start_epoch(0)
    for k in range(5):
        trainer.train_step(k)
    synchronize(device)
    start = time.perf_counter()
    for k in range(5, 5 + steps):
        trainer.train_step(k)
    synchronize(device)
    return (time.perf_counter() - start) / steps


def baseline_valid_ppl(model: Baseline, ids: torch.Tensor, device: torch.device) -> float:
    """word_language_model's evaluate(): the mean loss over the valid stream, batch 10."""
    data, bptt, total = batchify(ids, 10, device), 20, 0.0
    hidden = None
    model.eval()
    with torch.no_grad():
        for pos in range(0, data.size(0) - 1, bptt):
            source, target = data[pos : pos + bptt], data[pos + 1 : pos + 1 + bptt]
            source = source[: len(target)]
            output, hidden = model(source, hidden)
            total += (
                len(source)
                * nn.functional.cross_entropy(
                    output.view(-1, output.size(-1)), target.reshape(-1)
                ).item()
            )
    model.train()
    return math.exp(total / (len(data) - 1))


def one_epoch(args, kind, cfg, tokenizer, texts, device) -> None:
    """One whole epoch of each, from the same initial weights, then the valid perplexity."""
    ids = torch.tensor(tokenizer.encode_corpus(texts["train"]))
    valid_ids = torch.tensor(tokenizer.encode_corpus(texts["valid"]))
    rows = []
    torch.manual_seed(0)
    model = Baseline(len(tokenizer.vocab), 200, 200, 2).to(device)
    steps = (ids.size(0) // 20 - 1) // 20
    seconds = steps * baseline_seconds(ids, len(tokenizer.vocab), steps, device, model)
    rows.append(
        (
            "baseline (pytorch/examples style), fp32",
            seconds,
            steps,
            baseline_valid_ppl(model, valid_ids, device),
        )
    )
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        task = kind.training_task(
            cfg, tokenizer, kind.build_model(cfg, tokenizer), texts, device, SINGLE_PROCESS
        )
        cfg.train.precision = precision
        trainer = Trainer(task, cfg.train, None, SINGLE_PROCESS, device)
        task.start_epoch(0)
        synchronize(device)
        start = time.perf_counter()
        for k in range(task.num_batches()):
            trainer.train_step(k)
        synchronize(device)
        seconds = time.perf_counter() - start
        rows.append(
            (f"rnnkit, {precision}", seconds, task.num_batches(), task.validate(task.model)["ppl"])
        )
    tokens = 20 * 20
    print(f"# one epoch of PTB each, python benchmarks/lm.py --epoch --device {args.device}\n")
    print("| variant | s/epoch | tokens/s | valid ppl after 1 epoch | speed vs baseline |")
    print("|---|---:|---:|---:|---:|")
    base = rows[0][1] / rows[0][2]
    for name, seconds, steps, ppl in rows:
        print(f"| {name} | {seconds:.0f} | {steps * tokens / seconds:,.0f} | {ppl:.1f} | "
              f"{base / (seconds / steps):.2f}x |")  # fmt: skip


def time_to_quality(args, data: list[str]) -> None:
    """The baseline (its own schedule, up to 40 epochs) and rnnkit's ptb-small recipe (13
    epochs; fp32, and bf16 where oneDNN has it), each in a process of its own for at most
    ``--minutes`` of wall clock, validating after every epoch."""
    work = Path(args.work)
    baseline = Training()
    command = [sys.executable, __file__, "--baseline-training", "--device", args.device,
               "--data", args.data]  # fmt: skip
    baseline.peak_rss_mb = run_timestamped(
        command, epoch_lines(baseline, "valid_ppl"), args.minutes, ROOT
    )
    trained = {"baseline (pytorch/examples style), fp32": baseline}
    bf16 = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    precisions = args.precisions or (["fp32", "bf16"] if bf16 else ["fp32"])
    for precision in precisions:
        trained[f"rnnkit, {precision}"] = train_rnnkit(
            ROOT / "configs" / "ptb-small.yaml", work / f"ptb-{precision}",
            [*data, f"train.precision={precision}", "data.test=null",
             f"train.device={args.device}"],
            "valid_ppl", args.minutes,
        )  # fmt: skip
    print(
        f"# PTB word LM, at most {args.minutes:g} minutes of training each; {describe(args.device)}"
    )
    print(f"# python benchmarks/lm.py {' '.join(sys.argv[1:])}\n")
    print(
        "| variant | epochs | s/epoch | tokens/s | best valid ppl | minutes to it | peak RSS MB |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, t in trained.items():
        best = min(range(len(t.curve[1])), key=t.curve[1].__getitem__)
        print(f"| {name} | {len(t.epoch_seconds)} | {t.seconds_per_epoch():.0f} | "
              f"{t.tokens_per_second():,.0f} | {t.curve[1][best]:.1f} | {t.curve[0][best]:.1f} | "
              f"{t.peak_rss_mb:,.0f} |")  # fmt: skip
    for name, t in trained.items():
        print(
            f"{name}: " + ", ".join(f"{m:.1f} min {p:.1f}" for m, p in zip(*t.curve, strict=True))
        )
    time_to_quality_plot(
        {name: t.curve for name, t in trained.items()}, "valid perplexity", args.plot, log_y=True,
        title=f"PTB word LM (2x200 LSTM); {describe(args.device)}",
    )  # fmt: skip
    print(f"curves: {args.plot}")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=100, help="timed steps per variant and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epoch", action="store_true", help="one whole epoch each, valid ppl")
    parser.add_argument("--minutes", type=float, help="time to quality: train each this long")
    parser.add_argument("--plot", default="docs/lm-time-to-quality.png", help="with --minutes")
    parser.add_argument("--work", default="/tmp/bench/lm", help="with --minutes: the runs")
    parser.add_argument(
        "--precisions", nargs="+", help="with --minutes: rnnkit's (default fp32, and bf16 "
        "where oneDNN has it)",
    )  # fmt: skip
    parser.add_argument("--baseline-training", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--data", default=str(ROOT.parent / "shared" / "data" / "ptb"), help="PTB folder"
    )
    args = parser.parse_args()
    device = torch.device(args.device)
    retain_freed_memory()  # for the baseline too, which shares this process with rnnkit
    data = [f"data.{split}={args.data}/ptb.{split}.txt" for split in ("train", "valid", "test")]
    if args.minutes:
        time_to_quality(args, data)
        return
    cfg = load_config(ROOT / "configs" / "ptb-small.yaml", data)
    kind = registry.get("lm").trainer_side()
    texts = kind.read_data(cfg)
    tokenizer = kind.build_vocabularies(cfg, texts)
    if args.epoch:
        one_epoch(args, kind, cfg, tokenizer, texts, device)
        return
    if args.baseline_training:
        baseline_training(texts, tokenizer, device)
        return

    def training_task(overrides: list[str]) -> LanguageModelTask:
        task_cfg = load_config(ROOT / "configs" / "ptb-small.yaml", data + overrides)
        torch.manual_seed(0)
        model = kind.build_model(task_cfg, tokenizer)
        return kind.training_task(task_cfg, tokenizer, model, texts, device, SINGLE_PROCESS)

    task = training_task([])
    peephole = {b: training_task(["model.peephole=true", f"model.bptt={b}"])
                for b in ("handwritten", "autograd")}  # fmt: skip
    ids = torch.tensor(tokenizer.encode_corpus(texts["train"]))
    steps_per_epoch = task.num_batches()
    tokens_per_step = cfg.data.batch_size * cfg.data.bptt

    variants = {
        "baseline (pytorch/examples style), fp32": lambda: baseline_seconds(
            ids, len(tokenizer.vocab), args.steps, device
        ),
        "rnnkit, fp32": lambda: rnnkit_seconds(task, "fp32", args.steps, device),
        "rnnkit, bf16 autocast": lambda: rnnkit_seconds(task, "bf16", args.steps, device),
        **{
            f"rnnkit peephole LSTM, {b} BPTT, fp32": (
                lambda t=t: rnnkit_seconds(t, "fp32", args.steps, device)
            )
            for b, t in peephole.items()
        },
    }
    best = {name: float("inf") for name in variants}
    for _ in range(args.rounds):
        for name, run in variants.items():
            best[name] = min(best[name], run())

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"# ptb-small training throughput, {name}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; best of {args.rounds} rounds x {args.steps} steps"
    )
    print(
        f"# python benchmarks/lm.py --device {args.device} --steps {args.steps} "
        f"--rounds {args.rounds}\n"
    )
    print("| variant | ms/step | tokens/s | s/epoch | vs baseline |")
    print("|---|---:|---:|---:|---:|")
    base = best["baseline (pytorch/examples style), fp32"]
    for name, seconds in best.items():
        print(
            f"| {name} | {1e3 * seconds:.1f} | {tokens_per_step / seconds:,.0f} | "
            f"{steps_per_epoch * seconds:.0f} | {base / seconds:.2f}x |"
        )
    names = [f"rnnkit peephole LSTM, {b} BPTT, fp32" for b in ("autograd", "handwritten")]
    print(f"\npeephole LSTM: hand-written BPTT trains {best[names[0]] / best[names[1]]:.2f}x "
          "as fast as autograd over the cells")  # fmt: skip


if __name__ == "__main__":
    main()
