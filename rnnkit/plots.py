"""Figures written to PNG files: the attention heatmap of one translation.

Luong et al. 2015 and Bahdanau et al. 2015 show alignments as a matrix of
the weights a_ts, one row per target word and one column per source word. Figures are drawn on a
``matplotlib.figure.Figure`` with the Agg canvas, not through pyplot, so no global state and no
display is involved, and written with ``atomic_write_bytes``.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .atomic import atomic_write_bytes

INCHES_PER_TOKEN = 0.35


def attention_heatmap(weights: torch.Tensor | np.ndarray, source_tokens: list[str],
                      target_tokens: list[str], path: str | Path, title: str | None = None) -> None:
    """Write a PNG heatmap of a_ts: weights (T, S), rows target tokens, columns source tokens.

    The colour scale is fixed to 0..1 so that heatmaps of different sentences compare.
    """
    if isinstance(weights, torch.Tensor):
        weights = weights.detach().float().cpu().numpy()
    weights = np.asarray(weights)
    expected = (len(target_tokens), len(source_tokens))
    if weights.shape != expected:
        raise ValueError(f"attention weights of shape {weights.shape} do not match "
                         f"(len(target_tokens), len(source_tokens)) = {expected}")
    fig = Figure(figsize=(2.5 + INCHES_PER_TOKEN * expected[1], 1.5 + INCHES_PER_TOKEN * expected[0]))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(weights, cmap="viridis", vmin=0.0, vmax=1.0)
    # parse_math=False: tokens are text, and one holding two "$" would otherwise be read as TeX.
    ax.set_xticks(range(expected[1]), labels=source_tokens, rotation=90, parse_math=False)
    ax.set_yticks(range(expected[0]), labels=target_tokens, parse_math=False)
    ax.set_xlabel("source")
    ax.set_ylabel("target")
    if title is not None:
        ax.set_title(title)
    fig.colorbar(image, ax=ax)
    buffer = io.BytesIO()
    # "tight" grows or crops the canvas to fit long rotated labels and the title.
    fig.savefig(buffer, format="png", bbox_inches="tight")
    atomic_write_bytes(path, buffer.getvalue())
