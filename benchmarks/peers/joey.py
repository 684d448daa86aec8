"""Joey NMT 2.3 against rnnkit, side by side in one run: Multi30k de->en on the tok/ files.

Both train the same model on the same data: a bidirectional GRU encoder (256 per direction),
a GRU decoder of 512 with Bahdanau attention and input feeding, word vocabularies (min freq 2),
sentences of at most 50 tokens, Adam 1e-3 halved when dev BLEU does not improve, batch 64, the
mean loss per target token (Joey: ``normalization: tokens``) with label smoothing 0.1, clip
1.0, dropout 0.3; Joey's from the config written below, rnnkit's from
``configs/multi30k-de-en-tok.yaml``.

- **Joey** runs in its own venv (``--venv``; made when missing: ``torch==2.13.0``, then
  ``joeynmt==2.3.0`` and ``importlib_metadata``), never in rnnkit's.
- **Training**: ``--epochs N`` each (default 1), or ``--minutes M`` of wall clock each (the run
  is then stopped with SIGINT). Each validates on dev after every epoch (greedy, BLEU); each
  line of its output is timestamped as it arrives, which gives the time-to-quality curve
  (``--plot``). Training time is what each tool reports for its epochs, without validation.
- **Decoding**: each tool's model translates test2016 with beam 5 (length penalty 1.0) and
  greedily, in its own process; the time is the generation alone (Joey's "Generation took",
  rnnkit's ``translate`` call), and both outputs are scored here with the same sacrebleu call
  against the same references (lowercased tokenized BLEU).
- **Memory**: the peak RSS of each training and decoding process (``wait4``'s ``ru_maxrss``).

    python benchmarks/peers/joey.py                                # one epoch each
    python benchmarks/peers/joey.py --minutes 35 --plot docs/mt-time-to-quality.png
"""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
import time
from pathlib import Path

import sacrebleu
import torch
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from machine import describe  # noqa: E402
from timed import Training, run_timestamped, train_rnnkit  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "multi30k" / "tok"
PREFIX = {
    "train": "train.lc.norm.tok",
    "dev": "val.lc.norm.tok",
    "test": "test_2016_flickr.lc.norm.tok",
}
RECIPE = ROOT / "configs" / "multi30k-de-en-tok.yaml"


def ensure_venv(venv: Path) -> Path:
    """-> the venv's python, after installing torch 2.13.0 and then Joey NMT 2.3.0 into it.

    Joey 2.3 passes ``verbose=False`` to ``ReduceLROnPlateau``, an argument torch has since
    removed (False was its default); that one argument is deleted from Joey's ``builders.py``,
    which changes nothing else."""
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(python), "-m", "pip", "install", "-q"]
        subprocess.run([*pip, "torch==2.13.0"], check=True)
        subprocess.run([*pip, "joeynmt==2.3.0", "importlib_metadata"], check=True)
    builders = next(venv.glob("lib/python*/site-packages/joeynmt/builders.py"))
    source = builders.read_text(encoding="utf-8")
    builders.write_text(source.replace('"verbose": False,', ""), encoding="utf-8")
    return python


def steps_per_epoch(data: Path, max_length: int = 50, batch_size: int = 64) -> int:
    """Batches in one epoch of the training pairs both tools keep (<= max_length tokens)."""
    pairs = zip(
        (data / f"{PREFIX['train']}.de").read_text(encoding="utf-8").splitlines(),
        (data / f"{PREFIX['train']}.en").read_text(encoding="utf-8").splitlines(),
        strict=True,
    )
    kept = sum(len(s.split()) <= max_length and len(t.split()) <= max_length for s, t in pairs)
    return math.ceil(kept / batch_size)


def joey_config(data: Path, model_dir: Path, epochs: int, validation_freq: int, beam: int) -> dict:
    """Joey NMT 2.3's config for the model and training of ``configs/multi30k-de-en-tok.yaml``."""
    side = {"level": "word", "lowercase": False, "max_length": 50, "voc_min_freq": 2}
    embeddings = {"embedding_dim": 256, "scale": False}
    return {
        "name": "multi30k-de-en-tok",
        "joeynmt_version": "2.3.0",
        "data": {
            **{split: str(data / prefix) for split, prefix in PREFIX.items()},
            "dataset_type": "plain",
            "src": {"lang": "de", **side},
            "trg": {"lang": "en", **side},
        },
        "testing": {
            "beam_size": beam,
            "beam_alpha": 1.0,
            "batch_size": 50,
            "batch_type": "sentence",
            "max_output_length": 100,
            "eval_metrics": ["bleu"],
            "sacrebleu_cfg": {"tokenize": "13a"},
        },
        "training": {
            "model_dir": str(model_dir),
            "overwrite": True,
            "random_seed": 1,
            "optimizer": "adam",
            "learning_rate": 0.001,
            "scheduling": "plateau",
            "patience": 0,
            "decrease_factor": 0.5,
            "early_stopping_metric": "bleu",
            "label_smoothing": 0.1,
            "clip_grad_norm": 1.0,
            "normalization": "tokens",
            "batch_size": 64,
            "batch_type": "sentence",
            "epochs": epochs,
            "validation_freq": validation_freq,
            "logging_freq": validation_freq,  # Joey: it must divide validation_freq
            "keep_best_ckpts": 1,
            "shuffle": True,
            "use_cuda": False,
            "print_valid_sents": [0],
        },
        "model": {
            "initializer": "xavier_uniform",
            "embed_initializer": "normal",
            "encoder": {
                "type": "recurrent",
                "rnn_type": "gru",
                "embeddings": embeddings,
                "hidden_size": 256,
                "bidirectional": True,
                "dropout": 0.3,
                "num_layers": 1,
            },
            "decoder": {
                "type": "recurrent",
                "rnn_type": "gru",
                "embeddings": embeddings,
                "hidden_size": 512,
                "dropout": 0.3,
                "hidden_dropout": 0.3,
                "num_layers": 1,
                "input_feeding": True,
                "init_hidden": "bridge",
                "attention": "bahdanau",
            },
        },
    }


def write_yaml(path: Path, cfg: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path


def train_joey(
    python: Path, work: Path, data: Path, epochs: int, minutes: float | None
) -> Training:
    steps = steps_per_epoch(data)
    config = write_yaml(work / "joey.yaml", joey_config(data, work / "joey", epochs, steps, 1))
    result = Training()
    epoch = re.compile(r"Epoch\s+\d+, total training loss.*num\. of tokens: (\d+), ([\d.]+)\[sec\]")
    valid = re.compile(r"Evaluation result \(greedy\): bleu:\s+([\d.]+)")
    params = re.compile(r"Total params: (\d+)")

    def parse(line: str, now: float) -> None:
        if m := epoch.search(line):
            result.epoch_tokens.append(int(m[1]))
            result.epoch_seconds.append(float(m[2]))
        elif m := valid.search(line):
            result.curve[0].append(now)
            result.curve[1].append(float(m[1]))
        elif m := params.search(line):
            result.parameters = int(m[1])

    result.peak_rss_mb = run_timestamped(
        [str(python), "-m", "joeynmt", "train", str(config), "--skip-test"], parse, minutes, work
    )
    return result


def decode_joey(python: Path, work: Path, data: Path, beam: int) -> tuple[float, list[str], float]:
    """-> seconds of generation, the test translations, peak RSS in MB."""
    cfg = joey_config(data, work / "joey", 1, steps_per_epoch(data), beam)
    del cfg["data"]["dev"]
    cfg["testing"]["load_model"] = str(work / "joey" / "best.ckpt")
    config = write_yaml(work / f"joey-test-beam{beam}.yaml", cfg)
    out = work / f"joey-beam{beam}"
    seconds = []

    def parse(line: str, now: float) -> None:
        if m := re.search(r"Generation took ([\d.]+)\[sec\]", line):
            seconds.append(float(m[1]))

    rss = run_timestamped(
        [str(python), "-m", "joeynmt", "test", str(config), "--output-path", str(out)],
        parse,
        None,
        work,
    )
    return seconds[-1], Path(f"{out}.test").read_text(encoding="utf-8").splitlines(), rss


def decode_rnnkit(
    work: Path, data: Path, precision: str, beam: int
) -> tuple[float, list[str], float]:
    """-> seconds of ``translate`` over the test sources, the translations, peak RSS in MB."""
    out = work / f"rnnkit-{precision}-beam{beam}.json"
    command = [sys.executable, __file__, "--decode-one", str(work / f"rnnkit-{precision}"),
               "--beam", str(beam), "--precision", precision, "--out", str(out),
               "--data", str(data)]  # fmt: skip
    rss = run_timestamped(command, lambda line, now: None, None, ROOT)
    result = json.loads(out.read_text(encoding="utf-8"))
    return result["seconds"], result["translations"], rss


def decode_one(run: str, data: Path, beam: int, precision: str, out: Path) -> None:
    """In a process of its own: load the run, translate test2016, write seconds and texts."""
    import rnnkit

    loaded = rnnkit.load(run, "cpu", precision=precision)
    sources = (data / f"{PREFIX['test']}.de").read_text(encoding="utf-8").splitlines()
    start = time.perf_counter()
    translations = [t.text for t in loaded.translate(sources, beam=beam)]
    seconds = time.perf_counter() - start
    out.write_text(json.dumps({"seconds": seconds, "translations": translations}))


def bleu(hypotheses: list[str], data: Path) -> float:
    references = (data / f"{PREFIX['test']}.en").read_text(encoding="utf-8").splitlines()
    return sacrebleu.corpus_bleu(hypotheses, [references], tokenize="13a", force=True).score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1, help="epochs each (without --minutes)")
    parser.add_argument("--minutes", type=float, help="train each this long instead")
    parser.add_argument("--plot", help="write the dev BLEU / minutes curves to this PNG")
    parser.add_argument("--venv", default="/tmp/peers/joey", help="Joey NMT's own venv")
    parser.add_argument("--work", default="/tmp/peers/multi30k", help="runs and outputs")
    parser.add_argument(
        "--precisions", nargs="+", default=None, help="rnnkit's (default: fp32, and bf16 "
        "where oneDNN has it)",
    )  # fmt: skip
    parser.add_argument("--data", default=str(DATA), help="Multi30k's tok/ folder")
    parser.add_argument("--decode-one", help=argparse.SUPPRESS)
    parser.add_argument("--beam", type=int, default=5, help=argparse.SUPPRESS)
    parser.add_argument("--precision", default="fp32", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    data = Path(args.data)
    if args.decode_one:
        decode_one(args.decode_one, data, args.beam, args.precision, Path(args.out))
        return

    bf16 = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    precisions = args.precisions or (["fp32", "bf16"] if bf16 else ["fp32"])
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    python = ensure_venv(Path(args.venv))
    epochs = 1000 if args.minutes else args.epochs
    trained = {"Joey NMT 2.3": train_joey(python, work, data, epochs, args.minutes)}
    for precision in precisions:
        trained[f"rnnkit {precision}"] = train_rnnkit(
            RECIPE, work / f"rnnkit-{precision}",
            [f"train.epochs={epochs}", f"train.precision={precision}", "data.test=null",
             f"data.train={data / PREFIX['train']}", f"data.valid={data / PREFIX['dev']}"],
            "valid_bleu", args.minutes,
        )  # fmt: skip
    decoded = {
        (name, beam): (decode_joey(python, work, data, beam) if name.startswith("Joey")
                       else decode_rnnkit(work, data, name.split()[1], beam))
        for name in trained for beam in (5, 1)
    }  # fmt: skip

    budget = f"{args.minutes:g} minutes" if args.minutes else f"{args.epochs} epoch(s)"
    command = " ".join(["python benchmarks/peers/joey.py", *sys.argv[1:]])
    print(f"# Multi30k de->en (tok/), {budget} of training each; {describe()}")
    print(f"# {command}\n")
    print("| training | parameters | epochs | s/epoch (training) | target tokens/s | "
          "dev BLEU (greedy, last) | peak RSS MB |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, t in trained.items():
        print(f"| {name} | {t.parameters / 1e6:.2f}M | {len(t.epoch_seconds)} | "
              f"{t.seconds_per_epoch():.1f} | {t.tokens_per_second():,.0f} | "
              f"{t.curve[1][-1]:.2f} | {t.peak_rss_mb:,.0f} |")  # fmt: skip
    sentences = len(next(iter(decoded.values()))[1])
    print(f"\n| decoding test2016 ({sentences:,} sentences) | beam | seconds | sentences/s | "
          "BLEU | peak RSS MB |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|")
    for (name, beam), (seconds, texts, rss) in decoded.items():
        print(f"| {name} | {beam} | {seconds:.2f} | {len(texts) / seconds:,.1f} | "
              f"{bleu(texts, data):.2f} | {rss:,.0f} |")  # fmt: skip

    def per_epoch(name: str) -> float:
        return trained[name].seconds_per_epoch()

    joey = "Joey NMT 2.3"
    print()
    for name in trained:
        if name == joey:
            continue
        print(f"{name} against Joey: training {per_epoch(joey) / per_epoch(name):.2f}x, beam 5 "
              f"{decoded[joey, 5][0] / decoded[name, 5][0]:.2f}x, greedy "
              f"{decoded[joey, 1][0] / decoded[name, 1][0]:.2f}x")  # fmt: skip
    if "rnnkit bf16" in trained and "rnnkit fp32" in trained:
        print(f"rnnkit bf16 against its fp32: training "
              f"{per_epoch('rnnkit fp32') / per_epoch('rnnkit bf16'):.2f}x")  # fmt: skip
    print(f"BLEU: sacrebleu {sacrebleu.__version__}, tokenize 13a, on the lowercased tokenized "
          "test2016 references")  # fmt: skip
    if args.plot:
        from rnnkit.plots import time_to_quality_plot

        time_to_quality_plot(
            {name: t.curve for name, t in trained.items()}, "dev BLEU (greedy)", args.plot,
            title=f"Multi30k de->en (tok/), {budget} each; {describe()}",
        )  # fmt: skip
        print(f"curves: {args.plot}")
        for name, t in trained.items():
            points = ", ".join(f"{m:.1f} min {b:.2f}" for m, b in zip(*t.curve, strict=True))
            print(f"{name}: {points}")


if __name__ == "__main__":
    main()
