"""Translation end to end: the reverse task trains, translate/evaluate work from a run
directory, teacher-forcing schedules follow their formulas, bad parallel data gets one line."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

from rnnkit.tasks import registry
from rnnkit.tasks.registry import load_config
from rnnkit.tasks.translate.training import reverse_task, teacher_forcing_ratio
from rnnkit.workflows.load import load
from rnnkit.workflows.train import train

TrainConfig = registry.section("train")

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def rnnkit(*args: str, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYTHON, "-m", "rnnkit.cli", *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
    )


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rnnkit: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def reverse_run(tmp_path_factory, toy_seed, toy_score) -> Path:
    """configs/reverse.yaml as a user runs it (its seed: the run's data and initialisation)."""
    run = tmp_path_factory.mktemp("reverse") / "run"
    cfg = load_config(ROOT / "configs" / "reverse.yaml", [f"run_dir={run}", "train.progress=false"])
    cfg.seed = toy_seed(cfg.seed)
    summary = train(cfg)
    toy_score("reverse: test BLEU", summary["test"]["bleu"], 90, margin=2)
    assert summary["test"]["bleu"] > 90
    return run


@pytest.mark.toy
def test_the_reverse_task_reaches_95_percent_exact_match(reverse_run, toy_score):
    run = load(reverse_run)
    pairs = reverse_task(200, run.cfg.seed + 2)  # the run's test pairs
    translations = run.translate([s for s, _ in pairs])
    right = sum(tr.text == t for tr, (_, t) in zip(translations, pairs, strict=True))
    exact = right / len(pairs)
    toy_score("reverse: test exact match", exact, 0.95)
    assert exact >= 0.95


@pytest.mark.toy
def test_translate_cli_reads_stdin_prints_n_best_and_plots_attention(reverse_run, tmp_path):
    result = rnnkit("translate", str(reverse_run), cwd=tmp_path, stdin="a b c\nd e\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["c b a", "e d"]
    result = rnnkit(
        "translate",
        str(reverse_run),
        "--beam",
        "3",
        "--n-best",
        "2",
        "--attention-plot",
        str(tmp_path / "plots"),
        cwd=tmp_path,
        stdin="a b c\n",
    )
    assert result.returncode == 0, result.stderr
    lines = [line.split("\t") for line in result.stdout.splitlines()]
    assert [line[0] for line in lines] == ["1", "1"] and lines[0][2] == "c b a"
    assert float(lines[0][1]) >= float(lines[1][1])  # best first
    assert (tmp_path / "plots" / "00001.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.toy
def test_evaluate_cli_prints_bleu_chrf_and_signatures(reverse_run, tmp_path, toy_score):
    pairs = reverse_task(30, 99)
    (tmp_path / "src.txt").write_text("".join(s + "\n" for s, _ in pairs))
    (tmp_path / "ref.txt").write_text("".join(t + "\n" for _, t in pairs))
    result = rnnkit(
        "evaluate",
        str(reverse_run),
        "--src",
        "src.txt",
        "--ref",
        "ref.txt",
        "--beam",
        "2",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    first, signature, _ = result.stdout.splitlines()
    assert first.startswith("BLEU ")
    toy_score("reverse: evaluate --beam 2 BLEU", float(first.split()[1]), 80, margin=2)
    assert float(first.split()[1]) > 80
    assert signature.startswith("nrefs:1|case:mixed")


@pytest.mark.toy
def test_bad_parallel_input_gets_one_line_errors(reverse_run, tmp_path):
    (tmp_path / "a.de").write_text("eins\nzwei\ndrei\n")
    (tmp_path / "a.en").write_text("one\ntwo\n")
    config = tmp_path / "cfg.yaml"
    config.write_text(
        f"task: translate\nrun_dir: {tmp_path / 'run'}\ndata:\n  train: a\n"
        "  source_suffix: de\n  target_suffix: en\n"
    )
    assert_one_line_error(rnnkit("train", str(config), cwd=tmp_path), "a.de", "a.en", "3", "2")
    (tmp_path / "b.en").write_text("")
    (tmp_path / "b.de").write_text("")
    assert_one_line_error(rnnkit("train", str(config), "data.train=b", cwd=tmp_path), "b.")
    assert not (tmp_path / "run").exists()
    long_line = " ".join(["a"] * 450)
    assert_one_line_error(
        rnnkit("translate", str(reverse_run), cwd=tmp_path, stdin=f"a b\n{long_line}\n"),
        "stdin:2",
        "450 tokens",
    )
    assert_one_line_error(rnnkit("generate", str(reverse_run), cwd=tmp_path), "translate run")


def test_over_long_and_empty_training_pairs_are_filtered_and_counted(tmp_path, capsys):
    pairs = [("", "x"), ("a " * 30, "b"), ("c", "c " * 30)] + reverse_task(
        300, 5
    )  # valid: the last 10%
    (tmp_path / "pairs.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in pairs))
    cfg = load_config(
        None,
        [
            "task=translate",
            f"run_dir={tmp_path / 'run'}",
            f"data.train={tmp_path / 'pairs.tsv'}",
            "data.max_length=20",
            "model.hidden_size=16",
            "model.embedding_size=8",
            "model.num_layers=1",
            "train.epochs=1",
            "train.max_steps=2",
            "train.progress=false",
            "decode.beam_size=1",
        ],
    )
    train(cfg)
    assert "1 empty, 2 too long (data.max_length 20)" in capsys.readouterr().out


@pytest.mark.parametrize(
    "schedule, options, step, expected",
    [
        ("none", dict(teacher_forcing=0.3), 1000, 0.3),
        ("linear", dict(sampling_k=1.0, sampling_c=1e-3, sampling_min=0.1), 200, 0.8),
        ("linear", dict(sampling_k=1.0, sampling_c=1e-3, sampling_min=0.1), 5000, 0.1),
        ("exponential", dict(sampling_k=0.99), 100, 0.99**100),
        ("inverse_sigmoid", dict(sampling_k=100.0), 300, 100 / (100 + math.exp(3))),
    ],
)
def test_teacher_forcing_schedules_follow_their_formulas(schedule, options, step, expected):
    cfg = TrainConfig(scheduled_sampling=schedule, **options)
    assert teacher_forcing_ratio(cfg, step) == pytest.approx(expected)


def test_a_resumed_translation_run_ends_bitwise_equal_to_an_uninterrupted_one(tmp_path):
    small = [
        "model.hidden_size=16",
        "model.encoder_hidden_size=8",
        "model.embedding_size=8",
        "train.progress=false",
        "train.scheduled_sampling=linear",
        "train.sampling_c=0.005",
        "model.dropout=0.1",
        "train.checkpoint_every=0",
    ]
    whole = load_config(
        ROOT / "configs" / "reverse.yaml",
        [f"run_dir={tmp_path / 'whole'}", "train.epochs=2"] + small,
    )
    train(whole)
    first = load_config(
        ROOT / "configs" / "reverse.yaml",
        [f"run_dir={tmp_path / 'parts'}", "train.epochs=1"] + small,
    )
    train(first)
    train(None, resume=tmp_path / "parts", overrides=["train.epochs=2"])
    last = lambda run: sorted((run / "checkpoints").glob("step-*"))[-1] / "model.safetensors"  # noqa: E731
    assert last(tmp_path / "parts").read_bytes() == last(tmp_path / "whole").read_bytes()
