"""Reading sentence pairs: two aligned files, or one TSV file (torch-free: ``evaluate`` reads
them where an ONNX export decodes)."""

from __future__ import annotations

from pathlib import Path

from rnnkit.errors import UserError
from rnnkit.textio import read_lines


def read_parallel(source: str | Path, target: str | Path | None = None) -> list[tuple[str, str]]:
    """(source line, target line) pairs from two aligned files, or from one TSV file if ``target``
    is None.

    Lines are kept as they are, less the line ending (normalising is the tokenizer's job), and
    empty lines are kept (``filter_pairs`` drops them, so line numbers stay aligned until then).
    Raises UserError for unreadable or empty files (see ``textio.read_text``), for two files of
    different line counts, and for a TSV line without a tab.
    """
    if target is not None:
        sources, targets = read_lines(source), read_lines(target)
        if len(sources) != len(targets):
            raise UserError(
                f"{source} has {len(sources)} lines but {target} has {len(targets)}: "
                "parallel files need one line per sentence, aligned"
            )
        return list(zip(sources, targets, strict=True))
    pairs = []
    for number, line in enumerate(read_lines(source), 1):
        columns = line.split("\t", 2)
        if len(columns) < 2:
            raise UserError(f"{source}:{number}: expected two tab-separated columns")
        pairs.append((columns[0], columns[1]))
    return pairs
