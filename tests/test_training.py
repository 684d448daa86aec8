"""End to end through the CLI: train, evaluate, generate, exact resume after SIGKILL, DDP under
torchrun, and one-line errors for bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

PYTHON = sys.executable
TORCHRUN = str(Path(sys.executable).with_name("torchrun"))


def rnnkit(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [PYTHON, "-m", "rnnkit.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def write_corpus(path: Path, chars: int = 12_000) -> Path:
    words = ["to", "be", "or", "not", "that", "is", "the", "question", "whether", "tis", "nobler"]
    lines, i = [], 0
    while sum(len(line) + 1 for line in lines) < chars:
        lines.append(" ".join(words[(i * 7 + j * 3) % len(words)] for j in range(1 + i % 9)))
        i += 1
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_config(tmp: Path, seed: int = 7, **sections) -> Path:
    cfg = {
        "task": "lm",
        "run_dir": str(tmp / "run"),
        "seed": seed,
        "data": {
            "train": str(write_corpus(tmp / "corpus.txt")),
            "tokenizer": "char",
            "bptt": 16,
            "batch_size": 4,
            "eval_batch_size": 4,
        },
        "model": {
            "cell": "lstm",
            "embedding_size": 16,
            "hidden_size": 32,
            "num_layers": 2,
            "dropout": 0.1,
            "init_range": None,
        },
        "train": {
            "epochs": 2,
            "optimizer": "adam",
            "lr": 0.01,
            "checkpoint_every": 10,
            "progress": False,
        },
    }
    for section, values in sections.items():
        cfg[section].update(values)
    path = tmp / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def read_metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.toy
def test_train_evaluate_generate(tmp_path, toy_seed, toy_score):
    config = write_config(tmp_path, seed=toy_seed(7))
    result = rnnkit("train", str(config), "train.epochs=1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run = tmp_path / "run"
    for name in ("config.yaml", "tokenizer.json", "model.safetensors", "metrics.jsonl"):
        assert (run / name).is_file()
    records = read_metrics(run)
    steps = [r for r in records if r["kind"] == "step"]
    assert steps and all("grad_norm" in r for r in steps) and steps[-1]["step"] == len(steps)
    epoch = [r for r in records if r["kind"] == "epoch"][0]
    toy_score("char LM, 1 epoch: valid loss", epoch["valid_loss"], 3.0, False, 0.3)
    assert epoch["valid_loss"] < 3.0  # far below log(vocab): it learned something

    result = rnnkit("evaluate", str(run), "--split", "valid", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    fields = result.stdout.split()
    assert fields[0] == "loss" and abs(float(fields[1]) - epoch["valid_loss"]) < 1e-5
    assert "bpc" in fields

    result = rnnkit(
        "generate",
        str(run),
        "--prompt",
        "to be",
        "--max-tokens",
        "40",
        "--seed",
        "1",
        "--num-samples",
        "2",
        "--temperature",
        "0.5",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    samples = [line for line in result.stdout.splitlines() if line.startswith("to be")]
    assert len(samples) >= 2
    again = rnnkit(
        "generate",
        str(run),
        "--prompt",
        "to be",
        "--max-tokens",
        "40",
        "--seed",
        "1",
        "--num-samples",
        "2",
        "--temperature",
        "0.5",
        cwd=tmp_path,
    )
    assert again.stdout == result.stdout  # seeded sampling is reproducible
    beam = rnnkit(
        "generate", str(run), "--prompt", "to", "--beam", "3", "--max-tokens", "10", cwd=tmp_path
    )
    assert beam.returncode == 0 and beam.stdout.startswith("to")


def test_sigkill_mid_epoch_then_resume_gives_bitwise_identical_weights(tmp_path):
    config = write_config(tmp_path, train={"epochs": 3})
    whole = rnnkit("train", str(config), "--run-dir", str(tmp_path / "whole"), cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr

    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        [PYTHON, "-m", "rnnkit.cli", "train", str(config), "--run-dir", str(killed)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    latest = killed / "checkpoints" / "LATEST"
    deadline = time.time() + 120
    while not latest.exists() and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)  # let it run on past the checkpoint, into work that will be lost
    assert proc.poll() is None, "training ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL

    resumed = rnnkit("train", "--resume", str(killed), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert (killed / "model.safetensors").read_bytes() == (
        tmp_path / "whole" / "model.safetensors"
    ).read_bytes()
    last = lambda run: sorted((run / "checkpoints").glob("step-*"))[-1] / "model.safetensors"  # noqa: E731
    assert last(killed).read_bytes() == last(tmp_path / "whole").read_bytes()
    killed_steps = [r["step"] for r in read_metrics(killed) if r["kind"] == "step"]
    assert killed_steps == sorted(set(killed_steps))  # no step logged twice


@pytest.mark.skipif(not Path(TORCHRUN).exists(), reason="torchrun not installed")
def test_two_processes_under_torchrun_keep_identical_weights(tmp_path):
    config = write_config(tmp_path, train={"epochs": 1, "max_steps": 30})
    result = subprocess.run(
        [TORCHRUN, "--standalone", "--nproc_per_node=2", "-m", "rnnkit.cli", "train", str(config)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = [r for r in read_metrics(tmp_path / "run") if r["kind"] == "summary"][0]
    assert summary["world_size"] == 2
    digests = summary["weights_digests"]
    assert len(digests) == 2 and digests[0] == digests[1]


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rnnkit: error: "), result.stderr[-2000:]
    for fragment in fragments:
        assert fragment in lines[0]


def test_bad_corpora_get_one_line_errors(tmp_path):
    config = write_config(tmp_path)
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "binary.txt").write_bytes(b"abc\x00\x01\x02" * 10)
    (tmp_path / "latin1.txt").write_bytes(b"good line\nsecond\ncaf\xe9\n")
    cases = {
        "missing.txt": ("missing.txt", "no such file"),
        "empty.txt": ("empty.txt", "empty"),
        "binary.txt": ("binary.txt", "binary"),
        "latin1.txt": ("latin1.txt:3", "UTF-8"),
    }
    for name, fragments in cases.items():
        result = rnnkit("train", str(config), f"data.train={tmp_path / name}", cwd=tmp_path)
        assert_one_line_error(result, *fragments)
    assert not (tmp_path / "run").exists()


def test_bad_config_keys_get_one_line_errors(tmp_path):
    config = write_config(tmp_path)
    assert_one_line_error(
        rnnkit("train", str(config), "train.lr_decya=0.5", cwd=tmp_path),
        "train.lr_decya",
        "did you mean 'train.lr_decay'",
    )
    assert_one_line_error(
        rnnkit("train", str(config), "model.cell=lstn", cwd=tmp_path), "model.cell"
    )
    assert_one_line_error(
        rnnkit("train", str(config), "model.hidden_size=big", cwd=tmp_path), "model.hidden_size"
    )
    # overrides after an option are overrides too
    assert_one_line_error(
        rnnkit("train", str(config), "--run-dir", "elsewhere", "train.lr_decya=0.5", cwd=tmp_path),
        "train.lr_decya",
    )
    result = rnnkit("train", str(config), "--run-dir", "elsewhere", "--bogus", cwd=tmp_path)
    assert result.returncode == 2 and "unrecognized arguments: --bogus" in result.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("data:\n  train: [unclosed\n")
    assert_one_line_error(rnnkit("train", str(broken), cwd=tmp_path), "broken.yaml")


def test_not_a_run_directory(tmp_path):
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "notes.txt").write_text("mine")
    for command in (
        ["evaluate", "folder"],
        ["generate", "folder"],
        ["train", "--resume", "folder"],
    ):
        assert_one_line_error(
            rnnkit(*command, cwd=tmp_path), "folder", "not an rnnkit run directory"
        )
    assert (tmp_path / "folder" / "notes.txt").read_text() == "mine"


def test_existing_run_directory_is_not_overwritten(tmp_path):
    config = write_config(tmp_path, train={"epochs": 1, "max_steps": 5})
    assert rnnkit("train", str(config), cwd=tmp_path).returncode == 0
    run = tmp_path / "run"
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert_one_line_error(rnnkit("train", str(config), "model.hidden_size=8", cwd=tmp_path), "run")
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("precious")
    assert_one_line_error(
        rnnkit("train", str(config), "--run-dir", str(foreign), cwd=tmp_path), "foreign"
    )
    assert [p.name for p in foreign.iterdir()] == ["keep.txt"]


def test_diverging_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    config = write_config(
        tmp_path,
        model={"cell": "rnn", "nonlinearity": "relu", "dropout": 0.0},
        train={"optimizer": "sgd", "lr": 1e6, "clip_norm": None, "checkpoint_every": 1},
    )
    result = rnnkit("train", str(config), cwd=tmp_path)
    assert result.returncode == 1
    assert "loss is" in result.stderr and "last good checkpoint" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    latest = (tmp_path / "run" / "checkpoints" / "LATEST").read_text().strip()
    assert (tmp_path / "run" / "checkpoints" / latest / "model.safetensors").is_file()


def test_bf16_training_on_a_cpu_without_native_bf16_says_so_and_trains_fp32(monkeypatch, capsys):
    import torch

    from rnnkit.nn.device import effective_precision

    cpu = torch.device("cpu")
    monkeypatch.setattr("rnnkit.nn.device.cpu_has_bf16", lambda: False)
    assert effective_precision("bf16", cpu) == "fp32"
    assert "no native bf16" in capsys.readouterr().err
    assert effective_precision("fp32", cpu) == "fp32" and not capsys.readouterr().err
    assert effective_precision("bf16", torch.device("cuda")) == "bf16"
    monkeypatch.setattr("rnnkit.nn.device.cpu_has_bf16", lambda: True)
    assert effective_precision("bf16", cpu) == "bf16" and not capsys.readouterr().err


@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
def test_adam_runs_torchs_fused_kernel_and_steps_as_the_default_one_does(optimizer):
    import torch

    from rnnkit.tasks.registry import section
    from rnnkit.training.trainer import make_optimizer

    torch.manual_seed(0)
    weights = [torch.randn(7, 5), torch.randn(5)]
    params = {kind: [w.clone().requires_grad_() for w in weights] for kind in ("fused", "loop")}
    cfg = section("train")(optimizer=optimizer, lr=0.01, weight_decay=0.1)
    fused = make_optimizer(cfg, [{"params": params["fused"]}])
    assert fused.param_groups[0]["fused"] is True
    reference = getattr(torch.optim, {"adam": "Adam", "adamw": "AdamW"}[optimizer])(
        params["loop"], lr=0.01, weight_decay=0.1, foreach=False
    )
    for _ in range(5):
        grads = [torch.randn_like(w) for w in weights]
        for opt, kind in ((fused, "fused"), (reference, "loop")):
            for p, g in zip(params[kind], grads, strict=True):
                p.grad = g.clone()
            opt.step()
    for a, b in zip(params["fused"], params["loop"], strict=True):
        assert not torch.equal(a, weights[0] if a.dim() == 2 else weights[1])
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
