"""Checkpoints that survive damage and a full disk (``runs/rundir.py``): each checkpoint's
manifest of checksums, the fallback past a damaged, truncated or incomplete newest checkpoint,
and a write the OS refuses (no space left, a read-only folder) at each of a run's writes and an
export's: one line, no partial file, the last checkpoint intact and resumable."""

from __future__ import annotations

import builtins
import errno
import hashlib
import io
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from conftest import LM_RUN
from test_training import PYTHON, read_metrics, write_config

from rnnkit.cli import main
from rnnkit.errors import UserError
from rnnkit.runs.rundir import RunDir

_REAL_OPEN = builtins.open


class FullDisk:
    """A disk that fills up under ``root``: the ``after``-th write to a file ``which`` selects
    writes half its data and raises OSError(``code``), as a write to a full disk does, and every
    later write under ``root`` fails too, until ``free()``. It sees the files Python opens
    (``open``, ``io.open``, ``Path.open``), which is how rnnkit and torch.onnx write."""

    def __init__(
        self, root: Path, which: Callable[[Path], bool], after: int, code: int = errno.ENOSPC
    ) -> None:
        self.root, self.which, self.after, self.code = root, which, after, code
        self.selected, self.full, self.enabled = 0, False, True

    def open(self, file, mode: str = "r", *args, **kwargs):
        f = _REAL_OPEN(file, mode, *args, **kwargs)
        if not (set(mode) & set("wax+")):
            return f
        path = Path(os.readlink(f"/proc/self/fd/{f.fileno()}"))
        return _Filling(f, self, path) if path.is_relative_to(self.root) else f

    def write(self, f, path: Path, data):
        if self.enabled and not self.full and self.which(path):
            self.selected += 1
            if self.selected >= self.after:
                self.full = True
                f.write(data[: len(data) // 2])
                f.flush()
        if self.enabled and self.full:
            raise OSError(self.code, os.strerror(self.code))
        return f.write(data)

    def free(self) -> None:
        self.enabled = False


class _Filling:
    """A file open for writing on a ``FullDisk``: its writes go through the disk."""

    def __init__(self, f, disk: FullDisk, path: Path) -> None:
        self._f, self._disk, self._path = f, disk, path

    def write(self, data):
        return self._disk.write(self._f, self._path, data)

    def __getattr__(self, name: str):
        return getattr(self._f, name)

    def __iter__(self):
        return iter(self._f)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._f.close()


@pytest.fixture
def full_disk(monkeypatch, tmp_path) -> Callable[..., FullDisk]:
    """``full_disk(which, after, code)``: make ``tmp_path`` a ``FullDisk`` from now on."""
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc/self/fd to tell which file a write goes to")

    def fill(
        which: Callable[[Path], bool] = lambda path: True, after: int = 1, code: int = errno.ENOSPC
    ) -> FullDisk:
        disk = FullDisk(tmp_path.resolve(), which, after, code)
        monkeypatch.setattr(builtins, "open", disk.open)
        monkeypatch.setattr(io, "open", disk.open)
        return disk

    return fill


def written(name: str) -> Callable[[Path], bool]:
    """Selects the writes of file ``name``: to it, or to its temp file (``.NAME.<hex>.tmp``)."""
    return lambda path: path.name == name or path.name.startswith(f".{name}.")


def temp_files(root: Path) -> list[Path]:
    """What a write that failed half way would leave: temp files and folders."""
    return [p for p in root.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".out.")]


def checkpointed_run(path: Path, *steps: int) -> RunDir:
    run = RunDir.create(path)
    for step in steps:
        run.save_checkpoint(step, {"w": torch.full((64,), float(step))}, {"step": step})
    return run


def step_dir(run: RunDir, step: int) -> Path:
    return run.file("checkpoints") / f"step-{step:08d}"


# -- the manifest and the fallback --------------------------------------------------------------
def test_a_checkpoint_records_the_size_and_sha256_of_its_files(tmp_path):
    run = checkpointed_run(tmp_path / "run", 10)
    manifest = json.loads((step_dir(run, 10) / "manifest.json").read_text())["files"]
    assert sorted(manifest) == ["model.safetensors", "trainer.json", "trainer.safetensors"]
    for name, entry in manifest.items():
        data = (step_dir(run, 10) / name).read_bytes()
        assert entry == {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "damage, culprit, what",
    [
        (lambda d: truncate(d / "model.safetensors"), "model.safetensors", "truncated"),
        (lambda d: flip_a_byte(d / "trainer.safetensors"), "trainer.safetensors", "damaged"),
        (lambda d: flip_a_byte(d / "trainer.json"), "trainer.json", "damaged"),
        (lambda d: (d / "trainer.json").unlink(), "trainer.json", "missing"),
        (lambda d: (d / "manifest.json").write_text("[]"), "manifest.json", "not a checkpoint"),
    ],
    ids=["truncated", "corrupted", "corrupted-json", "incomplete", "manifest"],
)
def test_a_damaged_newest_checkpoint_falls_back_to_the_previous(
    tmp_path, capsys, damage, culprit, what
):
    run = checkpointed_run(tmp_path / "run", 10, 20)
    damage(step_dir(run, 20))
    model_state, state = run.load_checkpoint()
    assert state == {"step": 10} and torch.equal(model_state["w"], torch.full((64,), 10.0))
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("rnnkit: warning: "), lines
    assert f"step-00000020/{culprit}: {what}" in lines[0]
    assert "resuming from step 10" in lines[0]


def test_a_checkpoint_without_a_manifest_is_checked_by_loading_it(tmp_path):
    """Checkpoints written by an rnnkit that kept no checksums still resume."""
    run = checkpointed_run(tmp_path / "run", 10, 20)
    for step in (10, 20):
        (step_dir(run, step) / "manifest.json").unlink()
    warnings = []
    assert run.load_checkpoint(warn=warnings.append)[1] == {"step": 20} and warnings == []
    truncate(step_dir(run, 20) / "trainer.safetensors")
    assert run.load_checkpoint(warn=warnings.append)[1] == {"step": 10}
    assert len(warnings) == 1 and "step-00000020/trainer.safetensors" in warnings[0]


def test_the_next_save_deletes_a_damaged_checkpoint_and_keeps_the_intact_one(tmp_path):
    run = checkpointed_run(tmp_path / "run", 10, 20)
    flip_a_byte(step_dir(run, 20) / "model.safetensors")
    assert run.load_checkpoint(warn=lambda line: None)[1] == {"step": 10}
    run.save_checkpoint(30, {"w": torch.zeros(64)}, {"step": 30})  # keep=2: 30 and the intact 10
    assert sorted(p.name for p in run.file("checkpoints").iterdir()) == [
        "LATEST",
        "step-00000010",
        "step-00000030",
    ]


def test_a_save_below_the_newest_checkpoint_drops_the_abandoned_future(tmp_path):
    """A resume from an older checkpoint than the newest (LATEST named it: a kill came between
    renaming step 20 into place and rewriting LATEST) redoes what came after it."""
    run = checkpointed_run(tmp_path / "run", 10, 20)
    (run.file("checkpoints") / "LATEST").write_text("step-00000010\n")
    assert run.load_checkpoint()[1] == {"step": 10}
    run.save_checkpoint(15, {"w": torch.zeros(64)}, {"step": 15})
    assert sorted(p.name for p in run.file("checkpoints").iterdir()) == [
        "LATEST",
        "step-00000010",
        "step-00000015",
    ]


def test_resume_passes_over_a_truncated_then_a_corrupted_checkpoint(tmp_path, capsys):
    config = write_config(tmp_path, train={"epochs": 5, "checkpoint_every": 5, "max_steps": 20})
    run = tmp_path / "run"
    assert main(["train", str(config)]) == 0
    truncate(run / "checkpoints" / "step-00000020" / "model.safetensors")
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "train.max_steps=25"]) == 0
    warning = capsys.readouterr().err.strip().splitlines()
    assert len(warning) == 1 and warning[0].startswith("rnnkit: warning: "), warning
    assert "step-00000020/model.safetensors: truncated" in warning[0]
    assert "resuming from step 15" in warning[0]

    flip_a_byte(run / "checkpoints" / "step-00000025" / "trainer.safetensors")
    assert main(["train", "--resume", str(run), "train.max_steps=30"]) == 0
    warning = capsys.readouterr().err.strip().splitlines()
    assert len(warning) == 1 and "step-00000025/trainer.safetensors: damaged" in warning[0]
    assert "resuming from step 20" in warning[0]
    steps = [r["step"] for r in read_metrics(run) if r["kind"] == "step"]
    assert steps == list(range(1, 31))  # each step once: what followed the fallback was redone


# -- a full disk, a read-only folder ----------------------------------------------------------
CHECKPOINT_WRITES = ["model.safetensors", "trainer.safetensors", "trainer.json", "manifest.json"]


@pytest.mark.parametrize("failing", [*CHECKPOINT_WRITES, "LATEST"])
def test_a_full_disk_during_a_checkpoint_keeps_the_previous_one(tmp_path, full_disk, failing):
    run = checkpointed_run(tmp_path / "run", 10)
    disk = full_disk(written(failing))
    with pytest.raises(UserError) as info:
        run.save_checkpoint(20, {"w": torch.ones(64)}, {"step": 20})
    assert str(info.value) == f"{run.file('checkpoints')}: cannot write (No space left on device)"
    assert disk.full and temp_files(run.path) == []
    assert run.load_checkpoint()[1] == {"step": 10}
    disk.free()
    run.save_checkpoint(20, {"w": torch.ones(64)}, {"step": 20})
    assert run.load_checkpoint()[1] == {"step": 20}


def test_a_full_disk_while_writing_the_weights_keeps_the_old_ones(tmp_path, full_disk):
    run = RunDir.create(tmp_path / "run")
    run.save_model({"w": torch.zeros(64)})
    before = run.file("model.safetensors").read_bytes()
    full_disk(code=errno.EROFS)
    with pytest.raises(UserError) as info:
        run.save_model({"w": torch.ones(64)})
    path = run.file("model.safetensors")
    assert str(info.value) == f"{path}: cannot write (Read-only file system)"
    assert path.read_bytes() == before and temp_files(run.path) == []


@pytest.mark.parametrize("failing", ["metrics.jsonl", "metrics.csv"])
def test_a_full_disk_while_appending_metrics_leaves_no_partial_line(tmp_path, full_disk, failing):
    run = RunDir.create(tmp_path / "run")
    run.append_metrics({"kind": "step", "step": 1, "loss": 2.5})  # metrics.csv written whole
    before = {name: run.file(name).read_bytes() for name in ("metrics.jsonl", "metrics.csv")}
    disk = full_disk(written(failing))
    with pytest.raises(UserError, match=f"{failing}: cannot write \\(No space left on device\\)"):
        run.append_metrics({"kind": "step", "step": 2, "loss": 2.25})  # a row appended to both
    assert run.file(failing).read_bytes() == before[failing] and temp_files(run.path) == []
    disk.free()
    run.append_metrics({"kind": "step", "step": 3, "loss": 2.0})
    steps = [r["step"] for r in run.read_metrics()]
    assert steps == ([1, 3] if failing == "metrics.jsonl" else [1, 2, 3])
    assert run.file("metrics.csv").read_text().splitlines()[-1].startswith("step,3,")


@pytest.mark.parametrize(
    "which, after, culprit, resumes_from",
    [
        (written("trainer.safetensors"), 2, "checkpoints", 5),
        (written("metrics.jsonl"), 7, "metrics.jsonl", 5),
        (
            lambda p: written("model.safetensors")(p) and p.parent.name == "run",
            1,
            "model.safetensors",
            10,
        ),
    ],  # fmt: skip
    ids=["checkpoint", "metrics", "weights"],
)
def test_training_on_a_full_disk_ends_in_one_line_and_resumes_once_there_is_space(
    tmp_path, capsys, full_disk, which, after, culprit, resumes_from
):
    config = write_config(tmp_path, train={"epochs": 2, "checkpoint_every": 5, "max_steps": 12})
    run = tmp_path / "run"
    disk = full_disk(which, after)
    assert main(["train", str(config)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [f"rnnkit: error: {run / culprit}: cannot write (No space left on device)"]
    assert temp_files(run) == []
    assert RunDir.open(run).load_checkpoint()[1]["position"]["step"] == resumes_from
    disk.free()
    assert main(["train", "--resume", str(run)]) == 0
    steps = [r["step"] for r in read_metrics(run) if r["kind"] == "step"]
    assert steps == list(range(1, 13))


def test_an_export_on_a_full_disk_leaves_nothing_and_never_copies_the_lock(
    tmp_path, capsys, full_disk
):
    run = tmp_path / "run"
    shutil.copytree(LM_RUN, run)
    (run / ".lock").write_text('{"pid": 1}')
    out = tmp_path / "out"
    disk = full_disk()
    assert main(["export", str(run), "--out", str(out)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [f"rnnkit: error: {out}: cannot write (No space left on device)"]
    assert not out.exists() and temp_files(tmp_path) == []
    disk.free()
    assert main(["export", str(run), "--out", str(out)]) == 0
    assert (out / "manifest.json").is_file() and not (out / ".lock").exists()


def _can_mount_tmpfs() -> bool:
    """Whether this process may mount a tmpfs in a mount namespace of its own."""
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(
        ["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
        capture_output=True,
        timeout=10,
    )
    return probe.returncode == 0


@pytest.mark.skipif(not _can_mount_tmpfs(), reason="cannot mount a tmpfs (unshare -rm)")
def test_a_real_full_tmpfs(tmp_path):
    """The run directory on a 512 KiB tmpfs: two checkpoints fit (211 KB each), the third
    does not. Then the tmpfs grows, and the same run resumes."""
    config = write_config(tmp_path, train={"epochs": 2, "checkpoint_every": 5, "max_steps": 20})
    disk = tmp_path / "disk"
    disk.mkdir()
    run = disk / "run"
    rnnkit = f"{PYTHON} -m rnnkit.cli"
    script = f"""
        mount -t tmpfs -o size=512k tmpfs {disk}
        {rnnkit} train {config} --run-dir {run} 2> {tmp_path}/full.err
        echo $? > {tmp_path}/full.rc
        find {run} > {tmp_path}/full.files
        cat {run}/checkpoints/LATEST > {tmp_path}/full.latest
        mount -o remount,size=8m {disk}
        {rnnkit} train --resume {run} 2> {tmp_path}/resumed.err
        echo $? > {tmp_path}/resumed.rc
        cat {run}/checkpoints/LATEST > {tmp_path}/resumed.latest
    """
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    subprocess.run(["unshare", "-rm", "sh", "-c", script], env=env, timeout=240, check=True)
    error = (tmp_path / "full.err").read_text().strip().splitlines()
    assert (tmp_path / "full.rc").read_text().strip() == "2", error
    assert len(error) == 1 and error[0].startswith(f"rnnkit: error: {run}"), error
    assert error[0].endswith(": cannot write (No space left on device)")
    files = (tmp_path / "full.files").read_text().splitlines()
    assert not [f for f in files if f.endswith(".tmp") or ".tmp/" in f], files
    assert (tmp_path / "full.latest").read_text() in ("step-00000005\n", "step-00000010\n")
    resumed = (tmp_path / "resumed.err").read_text()
    assert (tmp_path / "resumed.rc").read_text().strip() == "0", resumed
    assert (tmp_path / "resumed.latest").read_text() == "step-00000020\n"
