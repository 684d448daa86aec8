"""Padding: id lists of different lengths -> one (B, T) batch, the one place every task pads."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence


def pad_ids(rows: Sequence[Sequence[int]], pad: int) -> Tensor:
    """Id lists -> (B, longest row) long, each row right-padded with ``pad``."""
    return pad_sequence(
        [torch.as_tensor(list(row), dtype=torch.long) for row in rows],
        batch_first=True,
        padding_value=pad,
    )
