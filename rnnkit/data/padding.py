"""Padding: id lists of different lengths -> one (B, T) batch, the one place every task pads.

``pad_array`` is numpy, so that decoding an ONNX export pads without torch; ``shuffle.pad_ids``
is the same batch as a tensor, for training and the PyTorch models.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def pad_array(rows: Sequence[Sequence[int]], pad: int) -> np.ndarray:
    """Id lists -> (B, longest row) int64, each row right-padded with ``pad``."""
    out = np.full((len(rows), max((len(row) for row in rows), default=0)), pad, dtype=np.int64)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def pad_sources(
    sources: Sequence[Sequence[int]], pad: int, eos: int
) -> tuple[np.ndarray, np.ndarray]:
    """x_1 .. x_m -> (rows x_1 .. x_m <eos> padded (B, S), lengths m + 1 (B,)), int64."""
    lengths = np.array([len(src) + 1 for src in sources], dtype=np.int64)
    return pad_array([[*src, eos] for src in sources], pad), lengths
