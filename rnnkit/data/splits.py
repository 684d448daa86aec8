"""Train, valid and test splits: each from its file, or the validation split held out of train.

    read_splits(cfg.data, read)      # {"train": ..., "valid": ..., "test": ...}

``read(path)`` reads one file into a list of examples (lines, pairs, labelled texts); without
``data.valid``, the last ``data.valid_fraction`` of the training examples validates.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from rnnkit.config import key
from rnnkit.errors import UserError

if TYPE_CHECKING:
    from rnnkit.config import DataConfig

T = TypeVar("T")


@dataclass
class TextFileKeys:
    """Where the text is: a training file (or the whole corpus, with valid_fraction), and
    optional validation and test files."""

    train: str | None = key(None)
    valid: str | None = key(None)
    test: str | None = key(None)
    # without a valid file: the last fraction of train validates
    valid_fraction: float = key(0.1, above=0, below=1)


def hold_out(items: Sequence[T], fraction: float, name: str) -> tuple[list[T], list[T]]:
    """The last ``fraction`` of ``items`` held out for validation: (train, valid), neither empty;
    too few items is a UserError naming ``name`` (the training file)."""
    cut = int(len(items) * (1 - fraction))
    if cut == 0 or cut == len(items):
        raise UserError(f"{name}: too few examples to hold out {fraction:.0%} for validation")
    return list(items[:cut]), list(items[cut:])


def read_splits(data: DataConfig, read: Callable[[str], list[T]]) -> dict[str, list[T]]:
    """The train/valid(/test) examples, each file read by ``read``; without a valid file, the
    last ``data.valid_fraction`` of train validates. An empty split is a UserError."""
    if data.train is None:
        raise UserError("data.train: no training file given")
    splits = {"train": read(data.train)}
    if data.valid is not None:
        splits["valid"] = read(data.valid)
    else:
        splits["train"], splits["valid"] = hold_out(
            splits["train"], data.valid_fraction, data.train
        )
    if data.test is not None:
        splits["test"] = read(data.test)
    for name, examples in splits.items():
        if not examples:
            raise UserError(f"{getattr(data, name) or data.train}: no examples")
    return splits
