"""One writer per run directory (``runs/lock.py``): a second writer refused in one line naming
the first, which goes on unharmed; a SIGKILLed holder's lock gone at once; the fallback where
flock does not work; readers that need no lock."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from test_training import PYTHON, write_config

import rnnkit
from rnnkit.cli import main
from rnnkit.errors import UserError
from rnnkit.runs import lock as run_lock
from rnnkit.runs.lock import RunLock
from rnnkit.runs.rundir import RunDir


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def trained_run(path: Path) -> RunDir:
    run = RunDir.create(path)
    run.save_config({"task": "lm"})
    run.save_model({"w": torch.ones(2)})
    run.save_checkpoint(1, {"w": torch.ones(2)}, {"step": 1})
    return run


# -- in one process -----------------------------------------------------------------------------
def test_a_second_writer_is_refused_with_the_holders_pid_host_and_start(tmp_path):
    first, second = RunLock(tmp_path), RunLock(tmp_path)
    first.acquire()
    record = json.loads((tmp_path / ".lock").read_text())
    assert record["pid"] == os.getpid() and record["host"] == socket.gethostname()
    with pytest.raises(UserError) as info:
        second.acquire()  # flock: one open file description against another, even in a process
    message = str(info.value)
    assert message.startswith(f"{tmp_path}: another rnnkit is training this run ")
    assert f"pid {os.getpid()} on host {socket.gethostname()}, started {record['started']}" in (
        message
    )
    assert "\n" not in message
    with pytest.raises(UserError, match=f"pid {os.getpid()} on host"):
        second.check_free()
    first.release()
    second.check_free()
    second.acquire()
    assert second.held
    second.release()


def test_asking_whether_a_run_is_locked_changes_nothing(tmp_path):
    RunLock(tmp_path).check_free()
    assert list(tmp_path.iterdir()) == []  # no lock file made
    held = RunLock(tmp_path)
    held.acquire()
    held.release()
    before = snapshot(tmp_path)
    RunLock(tmp_path).check_free()
    assert snapshot(tmp_path) == before  # the last holder's record kept


def test_a_writer_is_not_refused_for_another_writers_question(tmp_path):
    """``check_free`` holds a shared lock for an instant; a writer waits that out."""
    RunLock(tmp_path).check_free()
    (tmp_path / ".lock").write_text("")
    question = os.open(tmp_path / ".lock", os.O_RDONLY)
    fcntl.flock(question, fcntl.LOCK_SH)
    threading.Timer(0.1, os.close, [question]).start()
    writer = RunLock(tmp_path)
    writer.acquire()
    assert writer.held
    writer.release()


def test_a_refused_overwrite_deletes_and_writes_nothing(tmp_path):
    path = tmp_path / "run"
    trained_run(path)
    holder = RunLock(path)
    holder.acquire()
    before = snapshot(path)
    with pytest.raises(UserError, match="another rnnkit is training this run"):
        RunDir.create(path, overwrite=True, lock=RunLock(path))
    assert snapshot(path) == before
    holder.release()
    mine = RunLock(path)
    RunDir.create(path, overwrite=True, lock=mine)
    assert [p.name for p in path.iterdir()] == [".lock"] and mine.held
    mine.release()


def test_a_directory_holding_only_lock_files_counts_as_empty(tmp_path):
    path = tmp_path / "run"
    path.mkdir()
    (path / ".lock").write_text("")
    (path / ".lock.pid").write_text("")
    RunDir.check_new(path)  # would raise "not empty and not an rnnkit run directory"
    (path / ".lock.pid").unlink()
    lock = RunLock(path)
    run = RunDir.create(path, lock=lock)
    run.save_config({"task": "lm"})
    assert sorted(p.name for p in path.iterdir()) == [".lock", "config.yaml"]
    lock.release()


@pytest.fixture
def no_flock(monkeypatch) -> None:
    """A file system whose flock answers ENOLCK, as some network file systems do."""

    def flock(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(run_lock.fcntl, "flock", flock)


def test_without_flock_an_exclusive_lock_file_stands_in(tmp_path, capsys, no_flock):
    first = RunLock(tmp_path)
    first.acquire()
    notice = capsys.readouterr().err.splitlines()
    assert notice == [
        f"rnnkit: {tmp_path}: flock does not work on this file system (No locks available); "
        f"locking with {tmp_path / '.lock.pid'} instead"
    ]
    assert json.loads((tmp_path / ".lock.pid").read_text())["pid"] == os.getpid()
    with pytest.raises(UserError, match=f"pid {os.getpid()} on host") as info:
        RunLock(tmp_path).acquire()
    assert "another rnnkit is training this run" in str(info.value)
    first.release()
    assert not (tmp_path / ".lock.pid").exists()


def test_without_flock_a_stale_lock_file_is_named_for_deletion(tmp_path, no_flock):
    dead = subprocess.Popen(["true"])
    dead.wait()
    record = {"pid": dead.pid, "host": socket.gethostname(), "started": "2026-01-01 00:00:00"}
    (tmp_path / ".lock.pid").write_text(json.dumps(record))
    with pytest.raises(UserError) as info:
        RunLock(tmp_path).acquire()
    assert str(info.value) == (
        f"{tmp_path}: locked by pid {dead.pid} on host {socket.gethostname()}, started "
        f"2026-01-01 00:00:00, which is no longer running (a stale lock left by a killed run); "
        f"delete {tmp_path / '.lock.pid'} and try again"
    )


# -- two processes --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def training(tmp_path_factory) -> Iterator[Callable[[], tuple[subprocess.Popen, Path]]]:
    """``training()``: a ``rnnkit train`` process (started, or resumed, if none runs) that has
    taken its run's lock and written its first weights and checkpoints, and its run directory;
    killed at the end."""
    tmp = tmp_path_factory.mktemp("two-processes")
    config = write_config(tmp, train={"epochs": 1000, "checkpoint_every": 10})
    run = tmp / "run"
    started: list[subprocess.Popen] = []

    def running() -> tuple[subprocess.Popen, Path]:
        if started and started[-1].poll() is None:
            return started[-1], run
        how = ["--resume", str(run)] if (run / "checkpoints").exists() else [str(config)]
        proc = subprocess.Popen(
            [PYTHON, "-m", "rnnkit.cli", "train", *how],
            cwd=tmp,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        started.append(proc)
        deadline = time.time() + 120
        while not (holder(run) == proc.pid and (run / "model.safetensors").exists()):
            assert proc.poll() is None and time.time() < deadline, "training did not start"
            time.sleep(0.05)
        return proc, run

    yield running
    for proc in started:
        proc.kill()
        proc.wait()


def holder(run: Path) -> int | None:
    try:
        return json.loads((run / ".lock").read_text())["pid"]
    except (OSError, ValueError):
        return None


def latest_step(run: Path) -> int:
    """The step of the checkpoint LATEST names (``step-00000120``, or its temp name mid-swap)."""
    return int(re.search(r"step-(\d+)", (run / "checkpoints" / "LATEST").read_text())[1])


def wait_for_a_checkpoint_after(run: Path, step: int, proc: subprocess.Popen) -> int:
    deadline = time.time() + 60
    while latest_step(run) <= step:
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.05)
    return latest_step(run)


def test_a_second_writer_is_refused_and_the_first_goes_on(training, capsys):
    proc, run = training()
    config = run.parent / "tiny.yaml"
    before = (run / "config.yaml").read_bytes()
    for command in (
        ["train", "--resume", str(run)],
        ["train", str(config), "--run-dir", str(run), "--overwrite"],
        ["train", str(config), "--run-dir", str(run)],
    ):
        assert main(command) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1, lines
        assert lines[0].startswith(f"rnnkit: error: {run}: another rnnkit is training this run ")
        assert f"(pid {proc.pid} on host {socket.gethostname()}, started " in lines[0]
    assert (run / "config.yaml").read_bytes() == before and holder(run) == proc.pid
    wait_for_a_checkpoint_after(run, latest_step(run), proc)  # the first trains on
    records = RunDir(run).read_metrics()  # skips a line the writer is appending
    steps = [r["step"] for r in records if r["kind"] == "step"]
    assert steps == list(range(1, len(steps) + 1))  # one writer's records, each step once


def test_a_reader_loads_the_run_while_it_trains(training):
    proc, run = training()
    loads, deadline = 0, time.time() + 3
    while time.time() < deadline or loads < 3:
        loaded = rnnkit.load(run)  # the weights of the best epoch so far, whole
        assert loaded.generate("to be", max_new_tokens=5, seed=0)[0].text.startswith("to be")
        loads += 1
    assert proc.poll() is None and holder(run) == proc.pid


def test_a_sigkilled_writers_lock_is_gone_at_once(training, capsys):
    proc, run = training()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    step = latest_step(run)
    assert main(["train", "--resume", str(run), f"train.max_steps={step + 3}"]) == 0
    assert capsys.readouterr().err == ""
    assert holder(run) == os.getpid() and latest_step(run) == step + 3
