"""Generation speed: tokens/s of sampling, rnnkit against pytorch/examples' generate.py loop.

Two language models with untrained weights (one optimizer step of their recipe, so that the
run directory is a real one): the 2x650 word LSTM of ``configs/ptb-medium.yaml`` on PTB's
vocabulary, and the 2x512 char LSTM of ``configs/shakespeare-char.yaml``. For each:

- **rnnkit**: ``rnnkit.load(RUN).generate(prompt, max_new_tokens=N, num_samples=S, seed=0)``,
  as ``rnnkit generate`` runs it: the prompt read once, then one token per step with the
  state carried;
- **baseline**: word_language_model/generate.py's loop on the same weights: a
  ``torch.nn.LSTM`` model called on each token with the carried hidden state, ``exp(logits /
  temperature)``, ``torch.multinomial``, ``input.fill_(word)``, the word looked up (for S
  streams, the same loop on a batch of S inputs).

rnnkit runs with fp32 weights and, where the CPU has native bf16, with bf16 weights
(``rnnkit.load(RUN, precision="bf16")``, ``rnnkit generate --precision bf16``).

One stream and 64 streams. Rates are marginal, so that start-up costs cancel: (2000 - 200)
tokens per stream over the difference of the seconds that 2,000 and 200 tokens take, best of
--rounds, the variants taking turns.

    python benchmarks/generate.py
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from machine import describe
from torch import nn

import rnnkit
from rnnkit.decoding.engine import cpu_has_bf16
from rnnkit.tasks.registry import load_config

ROOT = Path(__file__).resolve().parent.parent
MODELS = {
    "2x650 word LSTM (PTB)": ("ptb-medium.yaml", ["data.test=null"]),
    "2x512 char LSTM (Tiny Shakespeare)": ("shakespeare-char.yaml", []),
}
LONG, SHORT = 2000, 200


class Baseline(nn.Module):
    """word_language_model's RNNModel (LSTM), time-major, holding rnnkit's trained weights."""

    def __init__(self, run) -> None:
        super().__init__()
        model = run.engine.model
        self.encoder = nn.Embedding.from_pretrained(model.embedding.weight.detach().clone())
        layer = model.rnn
        self.rnn = nn.LSTM(layer.input_size, layer.hidden_size, layer.num_layers)
        self.rnn.load_state_dict(
            {k: v for k, v in layer.state_dict().items() if k in self.rnn.state_dict()}
        )
        self.decoder = nn.Linear(model.output.in_features, model.output.out_features)
        self.decoder.load_state_dict(model.output.state_dict())
        self.eval()

    def forward(self, input, hidden):
        output, hidden = self.rnn(self.encoder(input), hidden)
        return self.decoder(output), hidden


def baseline_seconds(model: Baseline, itos: list[str], streams: int, tokens: int) -> float:
    """generate.py's loop: ``tokens`` words for each of ``streams`` inputs."""
    start = time.perf_counter()
    input = torch.randint(len(itos), (1, streams), dtype=torch.long)
    hidden = None
    words = []
    with torch.no_grad():
        for _ in range(tokens):
            output, hidden = model(input, hidden)
            word_weights = output.squeeze(0).div(1.0).exp().cpu()  # (S, V)
            word_idx = torch.multinomial(word_weights, 1)  # (S, 1)
            input.copy_(word_idx.t())
            words.append([itos[i] for i in word_idx.flatten().tolist()])
    return time.perf_counter() - start


def rnnkit_seconds(run, streams: int, tokens: int) -> float:
    start = time.perf_counter()
    run.generate("the", max_new_tokens=tokens, num_samples=streams, seed=0)
    return time.perf_counter() - start


def untrained_run(config: str, overrides: list[str], folder: Path) -> Path:
    """One optimizer step of the recipe: a real run directory with (nearly) initial weights."""
    cfg = load_config(ROOT / "configs" / config, [
        *overrides, "train.max_steps=1", "train.progress=false", f"run_dir={folder}",
    ])  # fmt: skip
    rnnkit.train(cfg)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 64])
    args = parser.parse_args()
    print(
        f"# sampling speed; {describe()}; marginal tokens/s over {SHORT}..{LONG} tokens, "
        f"best of {args.rounds}"
    )
    print(f"# python benchmarks/generate.py --rounds {args.rounds}\n")
    precisions = ["fp32", "bf16"] if cpu_has_bf16() else ["fp32"]
    ours = " | ".join(f"rnnkit {p} tokens/s | rnnkit {p}/baseline" for p in precisions)
    print(f"| model | streams | baseline tokens/s | {ours} |")
    print("|---|---:|---:|" + "---:|---:|" * len(precisions))
    with tempfile.TemporaryDirectory() as tmp:
        for name, (config, overrides) in MODELS.items():
            folder = untrained_run(config, overrides, Path(tmp) / config)
            runs = {p: rnnkit.load(folder, precision=p) for p in precisions}
            baseline, itos = Baseline(runs["fp32"]), runs["fp32"].tokenizer.vocab.itos
            for streams in args.streams:

                def base_run(n: int, s: int = streams, m=baseline, i=itos) -> float:
                    return baseline_seconds(m, i, s, n)

                variants = {"baseline": base_run}
                for p, run in runs.items():
                    variants[p] = lambda n, s=streams, r=run: rnnkit_seconds(r, s, n)
                rate = {v: 0.0 for v in variants}
                for _ in range(args.rounds):
                    for v, seconds in variants.items():
                        marginal = seconds(LONG) - seconds(SHORT)
                        rate[v] = max(rate[v], streams * (LONG - SHORT) / marginal)
                base = rate["baseline"]
                ours = " | ".join(f"{rate[p]:,.0f} | {rate[p] / base:.2f}x" for p in runs)
                print(f"| {name} | {streams} | {base:,.0f} | {ours} |", flush=True)


if __name__ == "__main__":
    main()
