"""rnnkit.rundir: lossless pickle-free state, tied weights, refusals, crash-safe checkpoints
and metrics."""

import csv
import json
import math
import os
import random
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from torch import nn

from rnnkit.errors import UserError
from rnnkit.runs import rundir
from rnnkit.runs.rundir import (
    RunDir,
    atomic_write_bytes,
    atomic_write_text,
    flatten_state,
    load_tensors,
    save_tensors,
    unflatten_state,
)


def _round_trip(state, tmp_path: Path):
    """flatten_state -> files on disk -> unflatten_state, as a checkpoint does."""
    tree, tensors = flatten_state(state)
    save_tensors(tmp_path / "state.safetensors", tensors)
    atomic_write_text(tmp_path / "state.json", json.dumps(tree, allow_nan=False))
    return unflatten_state(
        json.loads((tmp_path / "state.json").read_text()),
        load_tensors(tmp_path / "state.safetensors"),
    )


def _assert_identical(a, b) -> None:
    """Same types all the way down (int keys stay int, tuples stay tuples), same bits."""
    assert type(a) is type(b), (a, b)
    if isinstance(a, dict):
        assert [(type(k), k) for k in a] == [(type(k), k) for k in b]
        for key in a:
            _assert_identical(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _assert_identical(x, y)
    elif isinstance(a, torch.Tensor):
        assert (a.dtype, a.shape) == (b.dtype, b.shape)
        assert torch.equal(a.reshape(-1).view(torch.uint8), b.reshape(-1).view(torch.uint8))
    elif isinstance(a, (np.ndarray, np.generic)):
        assert (a.dtype, a.shape) == (b.dtype, b.shape) and a.tobytes() == b.tobytes()
    elif isinstance(a, float):
        assert repr(a) == repr(b)  # tells -0.0 from 0.0, and nan from everything
    else:
        assert a == b


def _tiny_model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2))


def _step(model: nn.Module, optimizer: torch.optim.Optimizer, k: int) -> None:
    generator = torch.Generator().manual_seed(k)
    x, y = torch.randn(5, 4, generator=generator), torch.randn(5, 2, generator=generator)
    optimizer.zero_grad()
    nn.functional.mse_loss(model(x), y).backward()
    optimizer.step()


@pytest.mark.parametrize(
    "make",
    [lambda p: torch.optim.Adam(p, lr=0.01), lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9)],
    ids=["adam", "sgd-momentum"],
)
def test_optimizer_state_resumes_bitwise(tmp_path, make):
    model = _tiny_model(0)
    optimizer = make(model.parameters())
    for k in range(2):
        _step(model, optimizer, k)
    restored = _round_trip(optimizer.state_dict(), tmp_path)
    _assert_identical(optimizer.state_dict(), restored)

    twin = _tiny_model(1)
    twin.load_state_dict(model.state_dict())
    twin_optimizer = make(twin.parameters())
    twin_optimizer.load_state_dict(restored)
    _step(model, optimizer, 2)
    _step(twin, twin_optimizer, 2)
    for p, q in zip(model.parameters(), twin.parameters(), strict=True):
        assert torch.equal(p, q)


def test_lr_scheduler_state(tmp_path):
    def schedule():
        optimizer = torch.optim.SGD(_tiny_model(0).parameters(), lr=0.1)
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1.0, total_steps=10)

    original = schedule()
    for _ in range(3):
        original.optimizer.step()
        original.step()
    restored = _round_trip(original.state_dict(), tmp_path)
    _assert_identical(original.state_dict(), restored)
    twin = schedule()
    twin.load_state_dict(restored)
    for scheduler in (original, twin):
        scheduler.optimizer.step()
        scheduler.step()
    assert original.get_last_lr() == twin.get_last_lr()


def test_rng_states_continue_bitwise(tmp_path):
    np.random.randn(
        1
    )  # leaves a cached Gaussian in NumPy's state: a float that must survive exactly
    states = {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    restored = _round_trip(states, tmp_path)
    _assert_identical(states, restored)

    def draw():
        return torch.rand(8), np.random.randn(8), [random.random() for _ in range(8)]

    expected = draw()
    torch.set_rng_state(restored["torch"])
    np.random.set_state(restored["numpy"])
    random.setstate(restored["python"])
    got = draw()
    assert torch.equal(expected[0], got[0])
    assert expected[1].tobytes() == got[1].tobytes()
    assert expected[2] == got[2]


def test_awkward_values_survive(tmp_path):
    state = {
        1: "int key",
        "1": "str key",
        (2, "b"): "tuple key",
        "$dollar": "key that looks like a tag",
        "tuple": (1, [2, (3,)]),
        "list": [1, (2,)],
        "empty": ((), [], {}),
        "floats": [math.inf, -math.inf, math.nan, -0.0, 0.1, 1e-310, 2.0],
        "scalars": [True, False, None, 0, 2**70, "", "é\n"],
        "zero_dim": torch.tensor(3.5, dtype=torch.float64),
        "bf16": torch.randn(2, 3).to(torch.bfloat16),
        "transposed": torch.arange(6.0).reshape(2, 3).t(),
        "empty_tensor": torch.zeros(0, 4),
        "ndarray": np.arange(6, dtype=">i2").reshape(2, 3),
        "numpy_scalar": np.float32(1.5),
        "nested": {"a": {"b": [torch.ones(2, dtype=torch.int64)]}},
    }
    _assert_identical(state, _round_trip(state, tmp_path))


@pytest.mark.parametrize(
    "bad",
    [
        {1, 2},
        b"bytes",
        object(),
        namedtuple("Pair", "a b")(1, 2),
        np.array([None], dtype=object),
        lambda: 0,
    ],
)
def test_unsupported_type_raises_type_error(bad):
    with pytest.raises(TypeError):
        flatten_state({"ok": 1, "bad": [bad]})


class _Tied(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(7, 3)
        self.out = nn.Linear(3, 7)
        self.out.weight = self.emb.weight


def test_tied_weights_round_trip(tmp_path):
    torch.manual_seed(0)
    model = _Tied()
    run = RunDir.create(tmp_path / "run")
    run.save_model(model.state_dict())
    with safe_open(run.file("model.safetensors"), framework="pt") as f:
        assert len(list(f.keys())) == 2  # the tied matrix is stored once, and the bias
    torch.manual_seed(1)
    fresh = _Tied()
    fresh.load_state_dict(run.load_model_state(), strict=True)
    assert fresh.out.weight is fresh.emb.weight
    for name, tensor in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[name], tensor)


def test_overlapping_views_are_stored_as_copies(tmp_path):
    base = torch.arange(10.0)
    save_tensors(tmp_path / "t.safetensors", {"a": base[:6], "b": base[4:]})
    loaded = load_tensors(tmp_path / "t.safetensors")
    assert torch.equal(loaded["a"], base[:6]) and torch.equal(loaded["b"], base[4:])


@pytest.mark.parametrize("data", [None, b"", b"not a safetensors file at all"])
def test_unreadable_safetensors_names_the_file(tmp_path, data):
    path = tmp_path / "model.safetensors"
    if data is not None:
        path.write_bytes(data)
    with pytest.raises(UserError, match="model.safetensors"):
        load_tensors(path)


# -- create / open ----------------------------------------------------------------------------
def _snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else b"", p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
    }


def _new_run(path: Path) -> RunDir:
    run = RunDir.create(path)
    run.save_config({"model": {"hidden": 8}, "train": {"lr": 0.5}})
    run.append_metrics({"kind": "step", "step": 1, "loss": 2.5})
    run.save_checkpoint(1, {"w": torch.ones(2)}, {"step": 1})
    return run


def test_create_refuses_existing_run_and_touches_nothing(tmp_path):
    path = tmp_path / "run"
    _new_run(path)
    before = _snapshot(path)
    with pytest.raises(UserError, match="already a run directory") as info:
        RunDir.create(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    assert _snapshot(path) == before


def test_create_refuses_foreign_directory_and_touches_nothing(tmp_path):
    path = tmp_path / "thesis"
    path.mkdir()
    (path / "chapter1.tex").write_text("precious")
    before = _snapshot(path)
    for overwrite in (False, True):
        with pytest.raises(UserError, match="not an rnnkit run directory") as info:
            RunDir.create(path, overwrite=overwrite)
        assert str(path) in str(info.value)
    assert _snapshot(path) == before


def test_create_refuses_a_file(tmp_path):
    (tmp_path / "run").write_text("x")
    with pytest.raises(UserError, match="not a directory"):
        RunDir.create(tmp_path / "run")


def test_create_uses_empty_or_missing_directory(tmp_path):
    (tmp_path / "empty").mkdir()
    assert RunDir.create(tmp_path / "empty").path == tmp_path / "empty"
    assert RunDir.create(tmp_path / "a" / "b").path.is_dir()


def test_overwrite_replaces_the_run_and_keeps_other_files(tmp_path):
    path = tmp_path / "run"
    _new_run(path)
    (path / "notes.txt").write_text("mine")
    run = RunDir.create(path, overwrite=True)
    assert sorted(p.name for p in path.iterdir()) == ["notes.txt"]
    assert run.load_checkpoint() is None and run.read_metrics() == []


@pytest.mark.parametrize(
    "make",
    [
        lambda p: None,
        lambda p: p.write_text("x"),
        lambda p: p.mkdir(),
        lambda p: (p.mkdir(), (p / "model.safetensors").write_bytes(b"x")),
    ],
    ids=["missing", "file", "empty-dir", "no-config"],
)
def test_open_refuses_non_run_directory(tmp_path, make):
    path = tmp_path / "run"
    make(path)
    with pytest.raises(UserError, match="not an rnnkit run directory") as info:
        RunDir.open(path)
    assert str(path) in str(info.value)


def test_config_round_trip_and_bad_yaml(tmp_path):
    run = RunDir.create(tmp_path / "run")
    config = {"train": {"lr": 0.5, "optimizer": "adam"}, "model": {"cell": "lstm", "layers": 2}}
    run.save_config(config)
    loaded = RunDir.open(run.path).load_config()
    assert loaded == config and list(loaded) == ["train", "model"]
    run.file("config.yaml").write_text("train: [unclosed\n")
    with pytest.raises(UserError, match="config.yaml"):
        run.load_config()


# -- checkpoints ------------------------------------------------------------------------------
def _trainer_state(step: int) -> dict:
    model = _tiny_model(0)
    optimizer = torch.optim.Adam(model.parameters())
    _step(model, optimizer, 0)
    return {
        "position": {"epoch": 0, "batch": step, "step": step},
        "best": math.inf,
        "optimizer": optimizer.state_dict(),
        "ranks": [{"rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state()}}],
    }


def _checkpoints(run: RunDir) -> list[str]:
    return sorted(p.name for p in run.file("checkpoints").iterdir())


def test_checkpoint_round_trip(tmp_path):
    run = RunDir.create(tmp_path / "run")
    assert run.load_checkpoint() is None
    model_state, state = _tiny_model(0).state_dict(), _trainer_state(12)
    run.save_checkpoint(12, model_state, state)
    loaded_model, loaded_state = run.load_checkpoint()
    _assert_identical(dict(sorted(model_state.items())), dict(sorted(loaded_model.items())))
    _assert_identical(state, loaded_state)
    assert (run.file("checkpoints") / "LATEST").read_text() == "step-00000012\n"


def test_keep_prunes_older_checkpoints(tmp_path):
    run = RunDir.create(tmp_path / "run")
    for step in (10, 20, 30, 40):
        run.save_checkpoint(step, {"w": torch.full((2,), float(step))}, {"step": step})
    assert _checkpoints(run) == ["LATEST", "step-00000030", "step-00000040"]
    run.save_checkpoint(50, {"w": torch.zeros(2)}, {"step": 50}, keep=1)
    assert _checkpoints(run) == ["LATEST", "step-00000050"]


def test_killed_save_is_ignored_then_cleaned(tmp_path):
    run = RunDir.create(tmp_path / "run")
    run.save_checkpoint(10, {"w": torch.ones(2)}, {"step": 10})
    # What a kill in the middle of writing step 20 leaves: a temp directory with half its files.
    leftover = run.file("checkpoints") / ".step-00000020.0badc0de.tmp"
    leftover.mkdir()
    (leftover / "model.safetensors").write_bytes(b"\x08\x00\x00")
    assert run.load_checkpoint()[1] == {"step": 10}
    assert (run.file("checkpoints") / "LATEST").read_text() == "step-00000010\n"
    run.save_checkpoint(30, {"w": torch.ones(2)}, {"step": 30})
    assert not leftover.exists()
    assert run.load_checkpoint()[1] == {"step": 30}


def test_saving_a_step_twice_replaces_it(tmp_path, monkeypatch):
    run = RunDir.create(tmp_path / "run")
    run.save_checkpoint(10, {"w": torch.ones(2)}, {"epoch": 0})
    run.save_checkpoint(10, {"w": torch.ones(2)}, {"epoch": 1})
    assert run.load_checkpoint()[1] == {"epoch": 1}
    assert _checkpoints(run) == ["LATEST", "step-00000010"]

    def killed(directory):
        raise KeyboardInterrupt("killed while swapping out the old checkpoint")

    monkeypatch.setattr(rundir, "_discard", killed)
    with pytest.raises(KeyboardInterrupt):
        run.save_checkpoint(10, {"w": torch.ones(2)}, {"epoch": 2})
    assert run.load_checkpoint()[1] == {"epoch": 2}  # LATEST names the complete temp directory
    monkeypatch.undo()
    run.save_checkpoint(10, {"w": torch.ones(2)}, {"epoch": 3})
    assert _checkpoints(run) == ["LATEST", "step-00000010"]
    # A kill after renaming the new one into place but before LATEST is rewritten.
    (run.file("checkpoints") / "LATEST").write_text(".step-00000010.12345678.tmp\n")
    assert run.load_checkpoint()[1] == {"epoch": 3}


def test_unstorable_trainer_state_writes_nothing(tmp_path):
    run = RunDir.create(tmp_path / "run")
    with pytest.raises(TypeError):
        run.save_checkpoint(1, {"w": torch.ones(2)}, {"bad": {1, 2}})
    assert list(run.path.iterdir()) == []


@pytest.mark.parametrize(
    "damage, culprit",
    [
        (
            lambda c: (c / "step-00000010/trainer.safetensors").write_bytes(b"\x00" * 20),
            "trainer.safetensors",
        ),
        (lambda c: (c / "step-00000010/model.safetensors").unlink(), "model.safetensors"),
        (
            lambda c: (c / "step-00000010/trainer.json").write_text('{"$tensor": "t99"}'),
            "trainer.json",
        ),
        (lambda c: (c / "step-00000010/trainer.json").write_text('{"step": '), "trainer.json"),
        (lambda c: (c / "step-00000010/manifest.json").write_text("{}"), "manifest.json"),
    ],
    ids=["tensors", "model", "json-key", "json-torn", "manifest"],
)
def test_corrupt_checkpoint_names_the_file(tmp_path, damage, culprit):
    run = RunDir.create(tmp_path / "run")
    run.save_checkpoint(10, {"w": torch.ones(2)}, {"step": 10, "t": torch.ones(1)})
    damage(run.file("checkpoints"))
    with pytest.raises(UserError, match=culprit) as info:
        run.load_checkpoint()
    assert "no intact checkpoint" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    "latest", ["../../etc\n", "step-00000099\n", ""], ids=["escapes", "missing", "empty"]
)
def test_a_bad_latest_falls_back_to_the_newest_checkpoint(tmp_path, latest):
    run = RunDir.create(tmp_path / "run")
    for step in (10, 20):
        run.save_checkpoint(step, {"w": torch.full((2,), float(step))}, {"step": step})
    (run.file("checkpoints") / "LATEST").write_text(latest)
    warnings = []
    assert run.load_checkpoint(warn=warnings.append)[1] == {"step": 20}
    assert len(warnings) == 1 and "LATEST" in warnings[0] and "step 20" in warnings[0]


# -- metrics ----------------------------------------------------------------------------------
def _csv_rows(run: RunDir) -> list[dict]:
    with open(run.file("metrics.csv"), newline="") as f:
        return list(csv.DictReader(f))


def test_metrics_jsonl_and_csv(tmp_path):
    run = RunDir.create(tmp_path / "run")
    assert run.read_metrics() == []
    records = [
        {"kind": "step", "step": 1, "loss": 2.5},
        {"kind": "step", "step": 2, "loss": 2.25},
        {"kind": "epoch", "step": 2, "valid_loss": math.inf, "digests": ["ab", "cd"]},
        {"kind": "step", "step": 3, "loss": 2.0},
    ]
    for record in records:
        run.append_metrics(record)
    assert run.read_metrics() == records
    rows = _csv_rows(run)
    assert list(rows[0]) == ["kind", "step", "loss", "valid_loss", "digests"]
    assert [r["step"] for r in rows] == ["1", "2", "2", "3"]
    assert rows[2]["valid_loss"] == "inf" and json.loads(rows[2]["digests"]) == ["ab", "cd"]
    assert rows[3]["valid_loss"] == ""


def test_torn_metrics_line_is_skipped_then_cut(tmp_path):
    run = RunDir.create(tmp_path / "run")
    run.append_metrics({"step": 1, "loss": 2.5})
    with open(run.file("metrics.jsonl"), "ab") as f:
        f.write(b'{"step": 2, "lo')  # a kill in the middle of an append
    with open(run.file("metrics.csv"), "a") as f:
        f.write("2,")
    assert run.read_metrics() == [{"step": 1, "loss": 2.5}]
    resumed = RunDir(run.path)  # as after a restart
    resumed.append_metrics({"step": 2, "loss": 2.0})
    assert resumed.read_metrics() == [{"step": 1, "loss": 2.5}, {"step": 2, "loss": 2.0}]
    assert _csv_rows(resumed) == [{"step": "1", "loss": "2.5"}, {"step": "2", "loss": "2.0"}]


def test_bad_metrics_line_in_the_middle_is_an_error(tmp_path):
    run = RunDir.create(tmp_path / "run")
    run.file("metrics.jsonl").write_text('{"step": 1}\nnot json\n{"step": 3}\n')
    with pytest.raises(UserError, match=r"metrics.jsonl:2: "):
        run.read_metrics()


# -- atomic writes ----------------------------------------------------------------------------
def test_atomic_write_replaces_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "file.txt"
    atomic_write_text(path, "old")
    atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"new"
    with pytest.raises(TypeError):
        atomic_write_bytes(path, "not bytes")  # fails after the temp file was opened
    assert path.read_bytes() == b"new"
    assert os.listdir(tmp_path) == ["file.txt"]


def test_keep_metrics_drops_records_written_after_the_checkpoint(tmp_path):
    run = RunDir.create(tmp_path / "run")
    for step in (1, 2, 3):
        run.append_metrics({"kind": "step", "step": step, "loss": 1.0 / step})
    with open(run.file("metrics.jsonl"), "ab") as f:
        f.write(b'{"kind": "st')  # torn by the kill
    resumed = RunDir(run.path)
    resumed.keep_metrics(2)
    assert resumed.read_metrics() == [
        {"kind": "step", "step": 1, "loss": 1.0},
        {"kind": "step", "step": 2, "loss": 0.5},
    ]
    assert [r["step"] for r in _csv_rows(resumed)] == ["1", "2"]
    resumed.append_metrics({"kind": "step", "step": 3, "loss": 0.25})
    assert [r["step"] for r in resumed.read_metrics()] == [1, 2, 3]
    assert [r["step"] for r in _csv_rows(resumed)] == ["1", "2", "3"]


def test_overwrite_deletes_the_tasks_vocabulary_files_too(tmp_path):
    path = tmp_path / "run"
    _new_run(path)
    (path / "source").mkdir()
    (path / "source" / "tokenizer.json").write_text("{}")
    (path / "labels.json").write_text("[]")
    RunDir.create(path, overwrite=True, task_files=("source", "labels.json"))
    assert list(path.iterdir()) == []
