"""The run directory: everything about one training run, written so that a kill never corrupts it.

Training writes it, ``--resume`` continues it, and evaluate, generate and serve start from it::

    RUN/
      config.yaml                the full resolved config (YAML)
      tokenizer.json             the tokenizer (written by ``data/tokenizers.py``), plus
      tokenizer.model            its sentencepiece model for subwords
      model.safetensors          the model's weights (the best so far, as the trainer decides)
      metrics.jsonl              one JSON object per line: step, epoch, summary and test records
      metrics.csv                the same records as a table; columns: every key, first seen first
      tensorboard/               event files when train.tensorboard is on (written by the trainer)
      .lock                      the writer's lock and who holds it (``lock.py``)
      checkpoints/
        step-00000120/           a full checkpoint, enough to continue bitwise-exactly:
          model.safetensors        the model's weights
          trainer.safetensors      every tensor of the trainer's state (optimizer, RNGs, ...)
          trainer.json             the rest of that state, pointing at those tensors (flatten_state)
          manifest.json            the size and SHA-256 of each of the three, written last
        LATEST                   names the newest complete checkpoint directory

One process writes a run directory at a time: training holds ``RunLock`` (``lock.py``) from
before its first write or deletion to its end; readers need no lock.

Crash safety: every file is written whole under a temp name in its own directory, fsynced and
renamed over the old one (``atomic_write_bytes``), so a SIGKILL leaves the old file or the new,
never a torn one. A checkpoint is written into a temp directory (``.step-00000120.<hex>.tmp``)
that is renamed into place once complete; only then does LATEST name it, and only then are old
ones pruned. A killed save's temp directory is ignored by ``load_checkpoint`` and removed by the
next ``save_checkpoint``. metrics.jsonl is the one file appended to: a kill may tear its last
line, which ``read_metrics`` skips and the next ``append_metrics`` cuts off.

Damage and full disks: ``load_checkpoint`` checks a checkpoint's files against its manifest and
passes over a damaged, truncated or incomplete one to the newest intact one, with one warning
line. A write the OS refuses (no space left, a read-only folder) removes what it had begun (the
temp file, the temp checkpoint directory, the part of a metrics line) and ends in one UserError
naming the path and the OS error; the files before it, the last checkpoint among them, are as
they were.

Nothing is pickled: tensors go to safetensors, everything else to JSON or YAML, so opening a run
directory never runs code from it.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import math
import os
import re
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
import yaml
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_bytes
from torch import Tensor

from rnnkit.atomic import atomic_write_bytes, atomic_write_text, fsync_dir, temp_sibling, writing
from rnnkit.config import read_yaml
from rnnkit.errors import UserError
from rnnkit.runs.lock import LOCK_FILES, RunLock
from rnnkit.textio import read_text

CONFIG_FILE = "config.yaml"
MODEL_FILE = "model.safetensors"
METRICS_FILE = "metrics.jsonl"
METRICS_CSV_FILE = "metrics.csv"
TENSORBOARD_DIR = "tensorboard"
CHECKPOINTS_DIR = "checkpoints"
LATEST_FILE = "LATEST"
TRAINER_TENSORS_FILE = "trainer.safetensors"
TRAINER_JSON_FILE = "trainer.json"
CHECKPOINT_MANIFEST_FILE = "manifest.json"
_CHECKPOINT_FILES = (MODEL_FILE, TRAINER_TENSORS_FILE, TRAINER_JSON_FILE)

_CHECKPOINT = re.compile(r"step-(\d{8,})")
_TEMP_CHECKPOINT = re.compile(r"\.(step-\d{8,})\.[0-9a-f]{8}\.tmp")
# What ``RunDir.create(overwrite=True)`` deletes; config.yaml last, so that an overwrite killed
# halfway still leaves a run directory, which the same command can overwrite again.
_RUN_ENTRIES = (
    CHECKPOINTS_DIR,
    TENSORBOARD_DIR,
    MODEL_FILE,
    METRICS_FILE,
    METRICS_CSV_FILE,
    CONFIG_FILE,
)
# safetensors metadata key: {name: the stored name whose tensor it is} (tied weights).
_ALIASES = "rnnkit.aliases"


# -- files ----------------------------------------------------------------------------------
def _discard(directory: Path) -> None:
    """Delete a directory tree, first renaming it to a temp name so that a kill halfway never
    leaves a half-deleted tree under a name that looks complete."""
    trash = temp_sibling(directory)
    os.rename(directory, trash)
    shutil.rmtree(trash)


# -- tensors --------------------------------------------------------------------------------
def save_tensors(path: str | Path, tensors: dict[str, Tensor]) -> None:
    """Write named tensors to a safetensors file, atomically (``safetensors_file``)."""
    atomic_write_bytes(path, safetensors_file(tensors))


def safetensors_file(tensors: dict[str, Tensor]) -> bytes:
    """Named tensors as the bytes of a safetensors file.

    safetensors refuses tensors that share memory, and a state_dict with tied weights (an
    embedding and an output layer holding one Parameter) lists one tensor under two names. Such
    an exact duplicate (same memory, dtype, shape and strides) is stored once and its other name
    recorded in the file's metadata; ``load_tensors`` puts the one tensor back under both names,
    so ``load_state_dict(strict=True)`` fills both. Other tensors whose memory overlaps (views of
    one buffer) are stored as copies. Non-contiguous tensors are made contiguous.
    """
    stored: dict[str, Tensor] = {}
    aliases: dict[str, str] = {}
    names_by_view: dict[tuple, str] = {}
    storages: set[tuple] = set()
    for name, tensor in tensors.items():
        view = (
            tensor.device,
            tensor.data_ptr(),
            tensor.dtype,
            tuple(tensor.shape),
            tensor.stride(),
        )
        if view in names_by_view:
            aliases[name] = names_by_view[view]
            continue
        names_by_view[view] = name
        tensor = tensor.detach().contiguous()
        storage = (tensor.device, tensor.untyped_storage().data_ptr())
        stored[name] = tensor.clone() if storage in storages else tensor
        storages.add(storage)
    return safetensors_bytes(stored, metadata={_ALIASES: json.dumps(aliases)})


def load_tensors(path: str | Path) -> dict[str, Tensor]:
    """The tensors of a safetensors file, on the CPU, with ``save_tensors``' aliases restored.

    Raises UserError naming the file if it is missing or not a safetensors file.
    """
    path = Path(path)
    try:
        with safe_open(path, framework="pt") as f:
            tensors = {name: f.get_tensor(name) for name in f.keys()}
            aliases = json.loads((f.metadata() or {}).get(_ALIASES, "{}"))
        return tensors | {alias: tensors[name] for alias, name in aliases.items()}
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except (SafetensorError, OSError, ValueError, KeyError, AttributeError) as e:
        raise UserError(f"{path}: not a readable safetensors file ({_first_line(e)})") from None


# -- nested state <-> JSON + tensors ----------------------------------------------------------
def flatten_state(obj: Any) -> tuple[Any, dict[str, Tensor]]:
    """Split a nested state into a JSON tree and its tensors, losing nothing and pickling nothing.

    Covers what optimizer, LR scheduler and GradScaler state dicts hold, and the RNG states of
    torch (a uint8 tensor), CUDA (a list of them), NumPy (a tuple holding a uint32 array) and
    Python (nested tuples of ints). None, bool, int, str, finite floats (whose repr reads back
    bit-exactly), lists and dicts with str keys are JSON as they are; everything else becomes
    an object whose first key starts with "$":

    - ``{"$tensor": "t3"}``: a tensor, ``tensors["t3"]`` (dtype, shape and bits kept);
    - ``{"$ndarray": "t4", "dtype": "<u4", "shape": [624]}``: a NumPy array of bools or numbers,
      its bytes as the uint8 tensor ``tensors["t4"]``; ``"$numpy_scalar"`` likewise for a scalar;
    - ``{"$tuple": [...]}``; ``{"$float": "inf"}`` (or "-inf", "nan": strict JSON has none);
    - ``{"$dict": [[key, value], ...]}``: a dict with a key that is not a str (optimizer state
      is keyed by int) or that starts with "$".

    Tensors come back on the CPU (an optimizer's ``load_state_dict`` moves them to its
    parameters); dict subclasses such as OrderedDict come back as dict. Any other type
    (set, bytes, a namedtuple, a function, ...) raises TypeError.
    """
    tensors: dict[str, Tensor] = {}

    def add(tensor: Tensor) -> str:
        key = f"t{len(tensors)}"
        tensors[key] = tensor
        return key

    def encode(value: Any) -> Any:
        if value is None or type(value) in (bool, int, str):
            return value
        if type(value) is float:
            return value if math.isfinite(value) else {"$float": repr(value)}
        if type(value) is list:
            return [encode(item) for item in value]
        if type(value) is tuple:
            return {"$tuple": [encode(item) for item in value]}
        if isinstance(value, dict):
            if all(type(key) is str and not key.startswith("$") for key in value):
                return {key: encode(item) for key, item in value.items()}
            return {"$dict": [[encode(key), encode(item)] for key, item in value.items()]}
        if isinstance(value, Tensor):
            return {"$tensor": add(value)}
        if isinstance(value, (np.ndarray, np.generic)) and value.dtype.kind in "biufc":
            array = np.asarray(value)
            data = torch.tensor(np.ascontiguousarray(array).reshape(-1).view(np.uint8))  # a copy
            tag = "$ndarray" if isinstance(value, np.ndarray) else "$numpy_scalar"
            return {tag: add(data), "dtype": array.dtype.str, "shape": list(array.shape)}
        raise TypeError(
            f"cannot store a {type(value).__name__} in a checkpoint "
            "(only tensors, NumPy arrays and JSON-like values)"
        )

    return encode(obj), tensors


def unflatten_state(tree: Any, tensors: dict[str, Tensor]) -> Any:
    """The inverse of ``flatten_state``. Raises KeyError, ValueError or TypeError on a tree
    that ``flatten_state`` did not make."""

    def decode(value: Any) -> Any:
        if isinstance(value, list):
            return [decode(item) for item in value]
        if not isinstance(value, dict):
            return value
        if not any(key.startswith("$") for key in value):
            return {key: decode(item) for key, item in value.items()}
        tag, arg = next(iter(value.items()))
        if tag == "$tensor":
            return tensors[arg]
        if tag == "$tuple":
            return tuple(decode(item) for item in arg)
        if tag == "$float":
            return float(arg)
        if tag == "$dict":
            return {decode(key): decode(item) for key, item in arg}
        if tag in ("$ndarray", "$numpy_scalar"):
            array = tensors[arg].numpy().view(np.dtype(value["dtype"])).reshape(value["shape"])
            return array if tag == "$ndarray" else array[()]
        raise ValueError(f"unknown tag {tag!r}")

    return decode(tree)


# -- the run directory ------------------------------------------------------------------------
class RunDir:
    """One run's directory (layout in the module docstring). Get one with ``create`` or ``open``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        # metrics.csv's columns once this object has written the file whole; until then the
        # file may be stale (a kill between the two appends), so the first append rewrites it.
        self._csv_columns: list[str] | None = None
        # The checkpoints load_checkpoint passed over as damaged: the next save deletes them,
        # without counting them among the ones it keeps.
        self._damaged: list[Path] = []

    @staticmethod
    def check_new(path: str | Path, *, overwrite: bool = False) -> None:
        """Raise UserError unless ``create(path, overwrite=...)`` may go ahead; writes nothing.

        A non-empty directory is refused, so nothing of the user's is written over: any
        directory that is not a run directory, and a run that has trained (a checkpoint or
        weights) unless ``overwrite``. A run directory without either is what a run killed
        before its first checkpoint leaves: it holds nothing to keep, and is replaced. A
        directory holding nothing but lock files (``lock.py``) counts as empty.
        """
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise UserError(f"{path}: exists and is not a directory; choose another --run-dir")
        if not path.is_dir() or all(entry.name in LOCK_FILES for entry in path.iterdir()):
            return
        if not _is_run_dir(path):
            raise UserError(
                f"{path}: not empty and not an rnnkit run directory; choose another --run-dir"
            )
        trained = (path / CHECKPOINTS_DIR / LATEST_FILE).exists() or (path / MODEL_FILE).exists()
        if trained and not overwrite:
            raise UserError(
                f"{path}: already a run directory; use --resume to continue it, "
                "--overwrite to replace it, or choose another --run-dir"
            )

    @classmethod
    def create(
        cls,
        path: str | Path,
        *,
        overwrite: bool = False,
        task_files: tuple[str, ...] = (),
        lock: RunLock | None = None,
    ) -> RunDir:
        """A new run directory at ``path``: made (with its parents) if missing; an empty
        directory is used as it is. What ``check_new`` refuses is refused; a run directory it
        lets through has rnnkit's files in it (``_RUN_ENTRIES`` and the tasks' ``task_files``,
        their vocabularies) deleted first, anything else in it kept.

        ``lock`` (``RunLock(path)``, released by the caller) is taken once the directory exists
        and before anything in it is deleted, and ``check_new`` asked again under it, as its
        last holder may have trained meanwhile. Refused, it deletes and writes nothing.
        """
        cls.check_new(path, overwrite=overwrite)
        path = Path(path)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"{path}: cannot create the run directory ({e.strerror})") from None
        if lock is not None:
            lock.acquire()
            cls.check_new(path, overwrite=overwrite)
        with writing(path):
            for name in (*task_files, *_RUN_ENTRIES):
                entry = path / name
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink(missing_ok=True)
        return cls(path)

    @classmethod
    def open(cls, path: str | Path) -> RunDir:
        """An existing run directory; UserError if ``path`` is not one."""
        path = Path(path)
        if not _is_run_dir(path):
            raise UserError(f"{path}: not an rnnkit run directory (no {CONFIG_FILE})")
        return cls(path)

    def file(self, name: str) -> Path:
        """The path of an entry of the run directory, e.g. ``run.file("config.yaml")``."""
        return self.path / name

    # -- config and weights -----------------------------------------------------------------
    def save_config(self, config: dict[str, Any]) -> None:
        """Write config.yaml, keys in the given order."""
        path = self.file(CONFIG_FILE)
        with writing(path):
            atomic_write_text(path, yaml.safe_dump(config, sort_keys=False, allow_unicode=True))

    def load_config(self) -> dict[str, Any]:
        """config.yaml as a dict; UserError naming the file if it is unreadable or not a mapping."""
        path = self.file(CONFIG_FILE)
        tree = read_yaml(path, missing="no such file")
        if not isinstance(tree, dict):
            raise UserError(f"{path}: not a YAML mapping of config sections")
        return tree

    def save_model(self, state_dict: dict[str, Tensor]) -> None:
        """Write model.safetensors (tied weights allowed, see ``save_tensors``)."""
        path = self.file(MODEL_FILE)
        with writing(path):
            save_tensors(path, state_dict)

    def load_model_state(self) -> dict[str, Tensor]:
        """model.safetensors as a state_dict; UserError naming the file if missing or corrupt."""
        return load_tensors(self.file(MODEL_FILE))

    # -- metrics ----------------------------------------------------------------------------
    def append_metrics(self, record: dict[str, Any]) -> None:
        """Add one record to metrics.jsonl and metrics.csv.

        The JSON line is appended, flushed and fsynced; a torn last line left by a kill is cut
        off first. Non-finite numbers are written as NaN / Infinity, which Python's json and
        pandas read back. metrics.csv is derived from metrics.jsonl: a record whose keys all
        have a column is appended as a row; otherwise (a new key, or the first append of this
        object) the CSV is rewritten whole and atomically from the JSONL, which also repairs a
        row torn by a kill. A write the OS refuses is undone (``_append``) and raises UserError.
        """
        path = self.file(METRICS_FILE)
        with writing(path):
            _append(path, json.dumps(record).encode("utf-8") + b"\n", repair=True, sync=True)
        path = self.file(METRICS_CSV_FILE)
        with writing(path):
            if self._csv_columns is not None and record.keys() <= set(self._csv_columns):
                # No fsync: the CSV is derived, and the next process's first append rewrites it.
                row = _csv_text(self._csv_columns, [record], header=False)
                _append(path, row.encode("utf-8"))
            else:
                records = self.read_metrics()
                self._csv_columns = list(dict.fromkeys(key for r in records for key in r))
                atomic_write_text(path, _csv_text(self._csv_columns, records, header=True))

    def keep_metrics(self, count: int) -> None:
        """Keep the first ``count`` records of metrics.jsonl (those a checkpoint saw written),
        dropping any a killed run wrote after it; both files are rewritten atomically."""
        path = self.file(METRICS_FILE)
        records = self.read_metrics()
        if not path.exists() or (len(records) == count and path.read_bytes().endswith(b"\n")):
            return
        records = records[:count]
        with writing(path):
            atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in records))
        self._csv_columns = list(dict.fromkeys(key for r in records for key in r))
        with writing(self.file(METRICS_CSV_FILE)):
            atomic_write_text(
                self.file(METRICS_CSV_FILE), _csv_text(self._csv_columns, records, header=True)
            )

    def read_metrics(self) -> list[dict[str, Any]]:
        """The records of metrics.jsonl ([] if there is none yet), skipping a last line torn by
        a kill (one without its newline); UserError naming file and line for any other bad line."""
        path = self.file(METRICS_FILE)
        if not path.exists():
            return []
        *lines, _torn = path.read_bytes().split(b"\n")
        records = []
        for number, line in enumerate(lines, 1):
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if not isinstance(record, dict):
                raise UserError(f"{path}:{number}: not a JSON object")
            records.append(record)
        return records

    # -- checkpoints ------------------------------------------------------------------------
    def save_checkpoint(
        self,
        step: int,
        model_state: dict[str, Tensor],
        trainer_state: dict[str, Any],
        keep: int = 2,
    ) -> None:
        """Write checkpoints/step-XXXXXXXX/ (its files, then their manifest), point LATEST at
        it, and delete all but the ``keep`` newest intact checkpoints up to it, by step (those
        past it are a future that a resume from an older checkpoint abandoned, and go too).

        ``trainer_state`` goes through ``flatten_state`` (TypeError, before anything is written,
        if it holds something that cannot be stored). Saving a step that already has a
        checkpoint (mid-epoch, then again at the epoch's end) replaces it. A write the OS
        refuses (a full disk) removes the temp directory and raises UserError naming
        ``checkpoints``; LATEST and the checkpoints before are untouched.
        """
        if keep < 1:
            raise ValueError(f"keep must be at least 1, not {keep}")
        tree, tensors = flatten_state(trainer_state)

        def files() -> Iterator[tuple[str, bytes]]:  # one file's bytes in memory at a time
            yield MODEL_FILE, safetensors_file(model_state)
            yield TRAINER_TENSORS_FILE, safetensors_file(tensors)
            yield TRAINER_JSON_FILE, json.dumps(tree, allow_nan=False).encode("utf-8")

        checkpoints = self.file(CHECKPOINTS_DIR)
        name = f"step-{step:08d}"
        final, tmp = checkpoints / name, temp_sibling(checkpoints / name)
        with writing(checkpoints):
            checkpoints.mkdir(exist_ok=True)
            replacing = final.exists()
            tmp.mkdir()
            try:
                _write_checkpoint(tmp, files())
                if replacing:
                    # LATEST names the complete temp directory while the old one is swapped
                    # out, so a kill in between loses nothing (see _checkpoint_dir for a kill
                    # after the rename).
                    self._set_latest(tmp.name)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            if replacing:
                _discard(final)
            os.rename(tmp, final)
            fsync_dir(checkpoints)
            self._set_latest(name)
            self._prune(step, keep)

    def _prune(self, step: int, keep: int) -> None:
        """Delete all checkpoints but the ``keep`` newest intact ones up to ``step``: those past
        it, those ``load_checkpoint`` found damaged, and the temp directories of killed saves
        (LATEST names none of them now)."""
        checkpoints = self.file(CHECKPOINTS_DIR)
        numbered = _numbered(checkpoints)
        damaged = {entry.name for entry in self._damaged} - {f"step-{step:08d}"}  # now rewritten
        older = [entry for s, entry in numbered if s < step and entry.name not in damaged]
        doomed = older[: max(0, len(older) - (keep - 1))]
        doomed += [entry for s, entry in numbered if s > step or entry.name in damaged]
        for entry in doomed:
            _discard(entry)
        self._damaged = []
        for entry in checkpoints.iterdir():
            if _TEMP_CHECKPOINT.fullmatch(entry.name) and entry.is_dir():
                shutil.rmtree(entry)

    def load_checkpoint(
        self, warn: Callable[[str], None] | None = None
    ) -> tuple[dict[str, Tensor], dict[str, Any]] | None:
        """(model_state, trainer_state) of the newest intact checkpoint, or None if there is none.

        The newest is the one LATEST names, then the others by step, newest first; each is
        checked against its manifest (one written by an rnnkit that kept none, by loading it).
        If the newest is damaged, truncated or incomplete (or LATEST is), the newest intact one
        is used and ``warn`` (default: a line on stderr) gets one line naming what was wrong and
        the step resumed from; the next ``save_checkpoint`` deletes the ones passed over. If none
        is intact: UserError naming what was wrong.
        """
        directories, problem = self._newest_first()
        self._damaged = []
        for directory in directories:
            try:
                loaded = _read_checkpoint(directory)
            except UserError as e:
                problem = problem or str(e)
                self._damaged.append(directory)
                continue
            if problem:
                (warn or _warn)(
                    f"{problem}; resuming from step {_step_of(directory)}, "
                    "the newest intact checkpoint"
                )
            return loaded
        if problem:
            raise UserError(f"{problem}; no intact checkpoint to resume from")
        return None

    def _newest_first(self) -> tuple[list[Path], str | None]:
        """The checkpoint directories, newest first (LATEST's, then the others by step), and
        what is wrong with LATEST, if anything."""
        checkpoints = self.file(CHECKPOINTS_DIR)
        if not checkpoints.is_dir():
            return [], None
        found, problem = [], None
        latest = checkpoints / LATEST_FILE
        if latest.exists():
            try:
                found.append(self._checkpoint_dir(read_text(latest).strip()))
            except UserError as e:
                problem = str(e)
        found += [entry for _, entry in reversed(_numbered(checkpoints)) if entry not in found]
        return found, problem

    def _checkpoint_dir(self, name: str) -> Path:
        """The directory LATEST's ``name`` stands for."""
        checkpoints = self.file(CHECKPOINTS_DIR)
        latest = checkpoints / LATEST_FILE
        temp = _TEMP_CHECKPOINT.fullmatch(name)
        if not (_CHECKPOINT.fullmatch(name) or temp):
            raise UserError(f"{latest}: does not name a checkpoint directory ({name[:40]!r})")
        directory = checkpoints / name
        if temp and not directory.is_dir():
            # A kill between renaming a replacing checkpoint into place and rewriting LATEST.
            directory = checkpoints / temp[1]
        if not directory.is_dir():
            raise UserError(f"{latest}: names {name}, which is missing")
        return directory

    def _set_latest(self, name: str) -> None:
        atomic_write_text(self.file(CHECKPOINTS_DIR) / LATEST_FILE, name + "\n")


def _is_run_dir(path: str | Path) -> bool:
    """Whether ``path`` is a run directory (it has a config.yaml)."""
    return (Path(path) / CONFIG_FILE).is_file()


def _numbered(checkpoints: Path) -> list[tuple[int, Path]]:
    """(step, directory) of every checkpoint directory, by step."""
    return sorted(
        (int(m[1]), entry)
        for entry in checkpoints.iterdir()
        if (m := _CHECKPOINT.fullmatch(entry.name)) and entry.is_dir()
    )


def _write_checkpoint(directory: Path, files: Iterator[tuple[str, bytes]]) -> None:
    """Write each file into ``directory``, then manifest.json with the size and SHA-256 of
    each, last: a checkpoint whose files no longer match it was damaged after it was written."""
    recorded = {}
    for name, data in files:
        atomic_write_bytes(directory / name, data)
        recorded[name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    atomic_write_text(
        directory / CHECKPOINT_MANIFEST_FILE, json.dumps({"files": recorded}, indent=1) + "\n"
    )


def _read_checkpoint(directory: Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """(model_state, trainer_state) of one checkpoint directory, its files checked first;
    UserError naming the file at fault."""
    _check_manifest(directory)
    model_state = load_tensors(directory / MODEL_FILE)
    tensors = load_tensors(directory / TRAINER_TENSORS_FILE)
    path = directory / TRAINER_JSON_FILE
    try:
        trainer_state = unflatten_state(json.loads(read_text(path)), tensors)
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise UserError(
            f"{path}: not a trainer state ({type(e).__name__}: {_first_line(e)})"
        ) from None
    return model_state, trainer_state


def _check_manifest(directory: Path) -> None:
    """Raise UserError naming the first file of a checkpoint that is missing, cut short or
    changed since its manifest recorded it. A checkpoint without a manifest (written by an
    rnnkit that kept none) is left to loading to check."""
    manifest = directory / CHECKPOINT_MANIFEST_FILE
    if not manifest.exists():
        return
    try:
        files = json.loads(read_text(manifest))["files"]
        expected = {
            name: (int(files[name]["bytes"]), str(files[name]["sha256"]))
            for name in _CHECKPOINT_FILES
        }
    except (ValueError, KeyError, TypeError):
        raise UserError(f"{manifest}: not a checkpoint manifest") from None
    for name, (size, digest) in expected.items():
        path = directory / name
        if not path.is_file():
            raise UserError(f"{path}: missing (the checkpoint is incomplete)")
        actual = path.stat().st_size
        if actual < size:
            raise UserError(f"{path}: truncated ({actual} of {size} bytes)")
        if actual > size:
            raise UserError(f"{path}: {actual} bytes, {size} when it was written")
        if _sha256(path) != digest:
            raise UserError(f"{path}: damaged (not the SHA-256 recorded when it was written)")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror})") from None
    return digest.hexdigest()


def _step_of(directory: Path) -> int:
    """The step in a checkpoint directory's name (step-00000120 or its temp name)."""
    return int(re.search(r"step-(\d{8,})", directory.name)[1])


def _warn(line: str) -> None:
    print(f"rnnkit: warning: {line}", file=sys.stderr)


def _append(path: Path, data: bytes, *, repair: bool = False, sync: bool = False) -> None:
    """Append ``data`` to ``path`` whole or not at all: a write that fails part way (a full
    disk) is cut off again, so the file ends where it did. ``repair`` first cuts a last line
    torn by a kill; ``sync`` fsyncs."""
    with open(path, "a+b", buffering=0) as f:
        if repair:
            _cut_torn_line(f)
        size = f.seek(0, os.SEEK_END)
        try:
            view = memoryview(data)
            while view:
                view = view[f.write(view) :]
            if sync:
                os.fsync(f.fileno())
        except BaseException:
            with contextlib.suppress(OSError):
                f.truncate(size)
            raise


def _cut_torn_line(f: BinaryIO) -> None:
    """Truncate a file open for appending after its last newline (a no-op when it ends in one)."""
    size = f.seek(0, os.SEEK_END)
    if size == 0:
        return
    f.seek(size - 1)
    if f.read(1) == b"\n":
        return
    f.seek(0)
    f.truncate(f.read().rfind(b"\n") + 1)


def _csv_text(columns: list[str], records: list[dict[str, Any]], header: bool) -> str:
    """CSV rows of ``records`` (missing keys empty; lists and dicts as JSON), after a header row
    if asked."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, restval="", lineterminator="\n")
    if header:
        writer.writeheader()
    for record in records:
        writer.writerow(
            {
                key: json.dumps(value) if isinstance(value, (list, dict)) else value
                for key, value in record.items()
            }
        )
    return out.getvalue()


def _first_line(error: BaseException) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__
