"""Reading the user's text files: UTF-8 only, and every problem reported as a one-line UserError.

A corpus is read whole (``read_text``, ``read_lines``); a large file such as a 1 GB table of
word vectors is streamed line by line (``iter_lines``). Both name the file, and the line and
column where there is one: ``data/train.txt:3: invalid UTF-8 (byte 0xff at column 7)``.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from rnnkit.errors import UserError


def read_text(path: str | Path, allow_empty: bool = False) -> str:
    """The whole file as one str: leading BOM dropped, CRLF turned into LF.

    Raises UserError if the file is missing, a directory, empty (or only whitespace), binary
    (holds a NUL byte) or not valid UTF-8.
    """
    path = Path(path)
    with _open_binary(path) as f:
        data = f.read()
    nul = data.find(b"\0")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise UserError(f"{path}: looks binary (NUL byte at line {line})")
    data = data.removeprefix(codecs.BOM_UTF8)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line_start = data.rfind(b"\n", 0, e.start) + 1
        raise _invalid_utf8(
            path, data.count(b"\n", 0, e.start) + 1, data[line_start : e.start + 1]
        ) from None
    if not text.strip() and not allow_empty:
        raise UserError(f"{path}: file is empty")
    return text.replace("\r\n", "\n")


def split_lines(text: str) -> list[str]:
    """Lines without their "\\n", empty ones kept; a final newline does not start another line.

    Only "\\n" ends a line (unlike str.splitlines, which also breaks at form feeds, U+2028, ...),
    so a line here is a line in the user's editor.
    """
    return text.removesuffix("\n").split("\n")


def read_lines(path: str | Path) -> list[str]:
    """``read_text`` cut into lines by ``split_lines``."""
    return split_lines(read_text(path))


def iter_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """Stream (line number from 1, line without its line ending) without reading the file whole.

    The same UTF-8 check and BOM/CRLF handling as ``read_text``; an invalid byte is reported when
    its line is reached. Empty files and NUL bytes are left to the caller.
    """
    path = Path(path)
    with _open_binary(path) as f:
        for number, raw in enumerate(f, 1):
            if number == 1:
                raw = raw.removeprefix(codecs.BOM_UTF8)
            raw = raw.removesuffix(b"\n").removesuffix(b"\r")
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise _invalid_utf8(path, number, raw[: e.start + 1]) from None


def _open_binary(path: Path) -> BinaryIO:
    try:
        return path.open("rb")
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a directory, not a file") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror})") from None


def _invalid_utf8(path: Path, line: int, prefix: bytes) -> UserError:
    """prefix: the bytes of the line up to and including the first invalid one."""
    column = len(prefix[:-1].decode("utf-8")) + 1  # in characters, as an editor counts
    return UserError(f"{path}:{line}: invalid UTF-8 (byte 0x{prefix[-1]:02x} at column {column})")
