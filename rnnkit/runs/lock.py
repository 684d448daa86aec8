"""One writer per run directory: the lock a training process holds for its whole life.

    lock = RunLock("runs/demo")
    lock.acquire()   # UserError naming the holder (pid, host, start time) if another has it
    ...              # write the run directory
    lock.release()

The lock is ``fcntl.flock`` on ``RUN/.lock``. The kernel drops it when the process ends, however
it ends (SIGKILL included), so a stale lock cannot exist. The file itself stays: deleting it
while another process opens it would let two processes lock two different files. It holds the
holder's pid, host and start time as JSON, for the message a second writer gets. Readers
(evaluate, generate, serve, export, ``rnnkit.load``) take no lock: every file they read is
replaced atomically (``atomic.py``), so they see the last complete one.

Where ``flock`` does not work (some network file systems answer ENOLCK or EOPNOTSUPP), one line
on stderr says so and the lock is the exclusive creation of ``RUN/.lock.pid`` instead (O_CREAT |
O_EXCL), deleted on release. A killed holder leaves that file behind; the message then says the
holder is gone and names the file to delete.
"""

from __future__ import annotations

import datetime
import errno
import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from rnnkit.atomic import writing
from rnnkit.errors import UserError

LOCK_FILE = ".lock"
PID_LOCK_FILE = ".lock.pid"
LOCK_FILES = (LOCK_FILE, PID_LOCK_FILE)  # not the run's content: an empty run may hold them
_NO_FLOCK = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP}
_TRIES = 5


class RunLock:
    """The exclusive lock on one run directory, held by this process between ``acquire`` and
    ``release`` (or its end)."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self._fd: int | None = None  # the open .lock whose flock this process holds
        self._pid_file: Path | None = None  # or the .lock.pid it created, where flock fails

    @property
    def held(self) -> bool:
        return self._fd is not None or self._pid_file is not None

    def acquire(self) -> None:
        """Take the lock (a no-op if this object holds it); the directory must exist.

        Raises UserError, one line, naming the process that holds it, or the lock file and the
        OS error if it cannot be written (a read-only folder, a full disk)."""
        if self.held:
            return
        path = self.directory / LOCK_FILE
        with writing(path):
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            _flock_soon(fd, fcntl.LOCK_EX)
        except BlockingIOError:
            os.close(fd)
            raise UserError(_refusal(self.directory, path)) from None
        except OSError as e:
            os.close(fd)
            if e.errno not in _NO_FLOCK:
                raise UserError(f"{path}: cannot lock ({e.strerror})") from None
            self._acquire_pid_file(e)
            return
        self._fd = fd
        try:
            with writing(path):
                os.ftruncate(fd, 0)
                os.pwrite(fd, _holder_record(), 0)
        except UserError:
            self.release()
            raise

    def check_free(self) -> None:
        """Raise the UserError ``acquire`` would if another process holds the lock, taking and
        creating nothing: a writer asks before it decides whether to write at all, so that a
        refused one leaves the directory as it was, its lock file included."""
        path = self.directory / LOCK_FILE
        if self.held:
            return
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:  # no lock file, so no holder; or one unreadable, for acquire to say
            return
        try:
            _flock_soon(fd, fcntl.LOCK_SH)
        except BlockingIOError:
            raise UserError(_refusal(self.directory, path)) from None
        except OSError:  # no flock here: the fallback's file tells
            pid_file = self.directory / PID_LOCK_FILE
            if pid_file.exists():
                raise UserError(_pid_file_refusal(self.directory, pid_file)) from None
        finally:
            os.close(fd)  # and with it the shared lock, if taken

    def _acquire_pid_file(self, error: OSError) -> None:
        """The fallback where flock fails: create ``.lock.pid`` exclusively, or say who has it."""
        path = self.directory / PID_LOCK_FILE
        print(
            f"rnnkit: {self.directory}: flock does not work on this file system "
            f"({error.strerror}); locking with {path} instead",
            file=sys.stderr,
        )
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        except FileExistsError:
            raise UserError(_pid_file_refusal(self.directory, path)) from None
        except OSError as e:
            raise UserError(f"{path}: cannot write ({e.strerror})") from None
        self._pid_file = path
        try:
            with writing(path), open(fd, "wb") as f:
                f.write(_holder_record())
                f.flush()
                os.fsync(f.fileno())
        except UserError:
            self.release()
            raise

    def release(self) -> None:
        """Give the lock up (a no-op if not held). The flock's file stays, the fallback's goes."""
        if self._fd is not None:
            os.close(self._fd)  # closing the last descriptor drops the flock
            self._fd = None
        if self._pid_file is not None:
            self._pid_file.unlink(missing_ok=True)
            self._pid_file = None


def _flock_soon(fd: int, operation: int) -> None:
    """``flock`` without blocking, tried a few times over 0.2 s before BlockingIOError: a
    ``check_free`` in another process holds the lock for microseconds, and must not be taken for
    a writer."""
    for attempt in range(_TRIES):
        try:
            fcntl.flock(fd, operation | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if attempt == _TRIES - 1:
                raise
            time.sleep(0.05)


def _refusal(directory: Path, path: Path) -> str:
    """The message for a lock that another process holds, naming it from its record."""
    return (
        f"{directory}: another rnnkit is training this run ({_describe(_read_holder(path))}); "
        "wait for it to finish or stop it"
    )


def _holder_record() -> bytes:
    """This process as the lock file records it: pid, host and start time, as JSON."""
    started = datetime.datetime.now().astimezone().isoformat(sep=" ", timespec="seconds")
    record = {"pid": os.getpid(), "host": socket.gethostname(), "started": started}
    return (json.dumps(record) + "\n").encode("utf-8")


def _read_holder(path: Path) -> dict[str, Any]:
    """The record in a lock file; {} if it cannot be read (a holder that has not written it)."""
    try:
        record = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _describe(record: dict[str, Any]) -> str:
    """'pid 4242 on host lab1, started 2026-11-28 07:08:07+00:00', or what is known of it."""
    if "pid" not in record:
        return "a process that has not yet recorded its pid"
    return (
        f"pid {record['pid']} on host {record.get('host', '?')}, "
        f"started {record.get('started', '?')}"
    )


def _pid_file_refusal(directory: Path, path: Path) -> str:
    """The message for a ``.lock.pid`` that exists: its holder runs, or has gone (stale)."""
    record = _read_holder(path)
    here = record.get("host") == socket.gethostname()
    pid = record.get("pid")
    if here and isinstance(pid, int) and pid > 0 and not _alive(pid):
        return (
            f"{directory}: locked by {_describe(record)}, which is no longer running (a stale "
            f"lock left by a killed run); delete {path} and try again"
        )
    return (
        f"{directory}: another rnnkit is training this run ({_describe(record)}); wait for it "
        f"to finish or stop it (if it has ended, delete {path})"
    )


def _alive(pid: int) -> bool:
    """Whether a process with this pid runs on this host (signal 0 checks without sending)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
