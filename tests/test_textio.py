"""rnnkit.data.textio: each bad file gives a one-line UserError naming the file (and line)."""

import pytest

from rnnkit.errors import UserError
from rnnkit.textio import iter_lines, read_lines, read_text, split_lines


def _error(tmp_path, name: str, data: bytes | None) -> str:
    path = tmp_path / name
    if data is not None:
        path.write_bytes(data)
    with pytest.raises(UserError) as info:
        read_text(path)
    message = str(info.value)
    assert name in message and "\n" not in message
    return message


def test_missing_file(tmp_path):
    assert "no such file" in _error(tmp_path, "absent.txt", None)


def test_directory(tmp_path):
    (tmp_path / "corpus").mkdir()
    assert "directory" in _error(tmp_path, "corpus", None)


@pytest.mark.parametrize("data", [b"", b" \n\t\r\n"])
def test_empty_file(tmp_path, data):
    assert "file is empty" in _error(tmp_path, "empty.txt", data)


def test_binary_file_names_the_line_of_the_nul(tmp_path):
    assert "looks binary (NUL byte at line 2)" in _error(tmp_path, "a.bin", b"ok\nab\x00cd\n")


def test_invalid_utf8_names_line_and_column(tmp_path):
    # the column counts characters: "th\u00e9" is 3 characters (4 bytes) before the bad byte
    message = _error(tmp_path, "bad.txt", b"one\ntwo\nth\xc3\xa9\xff!\n")
    assert "bad.txt:3: invalid UTF-8 (byte 0xff at column 4)" in message


def test_bom_and_crlf(tmp_path):
    path = tmp_path / "windows.txt"
    path.write_bytes(b"\xef\xbb\xbfa b\r\n\r\nc\r\n")
    assert read_text(path) == "a b\n\nc\n"
    assert read_lines(path) == ["a b", "", "c"]


def test_split_lines_keeps_empty_lines_and_only_breaks_at_newline():
    assert split_lines("a\n\nb\x0cc\n") == ["a", "", "b\x0cc"]
    assert split_lines("a\nb") == ["a", "b"]


def test_iter_lines_streams_with_numbers_and_reports_bad_bytes(tmp_path):
    path = tmp_path / "vectors.txt"
    path.write_bytes(b"\xef\xbb\xbfx 1\r\ny 2\n\xce\xb1 3\nz\xc3 4\n")
    lines = iter_lines(path)
    assert [next(lines) for _ in range(3)] == [(1, "x 1"), (2, "y 2"), (3, "\u03b1 3")]
    with pytest.raises(UserError, match=r"vectors\.txt:4: invalid UTF-8 \(byte 0xc3 at column 2\)"):
        next(lines)
