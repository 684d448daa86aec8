"""Writing a file so that a kill at any moment leaves the old file or the new one, never half;
and a write the OS refuses (a full disk, a read-only folder) as one line naming the path."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from rnnkit.errors import UserError


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Replace ``path`` by ``data``: a kill at any moment leaves the old file or the new one.

    The temp file sits in the same directory because a rename is atomic only within one file
    system; it is fsynced before the rename, and the directory after it, so that the new name
    also survives a power cut. A failed write (a full disk, an interrupt) removes its temp file
    and raises the OSError it got.
    """
    path = Path(path)
    tmp = temp_sibling(path)
    try:
        # os.open with 0o666 lets the umask set the permissions, as for any new file.
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):  # the error to report is the write's, not this one's
            tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_text(path: str | Path, text: str) -> None:
    """``atomic_write_bytes`` of ``text`` in UTF-8."""
    atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def writing(path: str | Path) -> Iterator[None]:
    """Turn an OSError of the writes in the block into the one-line UserError
    ``PATH: cannot write (No space left on device)``, ``PATH`` being what the user knows (a run
    directory's ``checkpoints``, not the temp file inside it). The writes clean up after
    themselves; this only says what went wrong, where."""
    try:
        yield
    except OSError as e:
        raise UserError(f"{path}: cannot write ({e.strerror or e})") from None


def temp_sibling(path: Path) -> Path:
    """A fresh hidden name beside ``path``: ``.NAME.<8 hex>.tmp``."""
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
