"""Figures written to PNG files: the attention heatmap of one translation, the gradient flow
through time of several models, a run's loss and gradient norm per step, and a validation score
against wall-clock minutes (time to quality) for several runs.

Luong et al. 2015 and Bahdanau et al. 2015 show alignments as a matrix of
the weights a_ts, one row per target word and one column per source word. Figures are drawn on a
``matplotlib.figure.Figure`` with the Agg canvas, not through pyplot, so no global state and no
display is involved, and written with ``atomic_write_bytes``.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from rnnkit.atomic import atomic_write_bytes

INCHES_PER_TOKEN = 0.35


def attention_heatmap(
    weights: Any,
    source_tokens: list[str],
    target_tokens: list[str],
    path: str | Path,
    title: str | None = None,
) -> None:
    """Write a PNG heatmap of a_ts: weights (T, S), rows target tokens, columns source tokens.

    The colour scale is fixed to 0..1 so that heatmaps of different sentences compare.
    """
    if hasattr(weights, "detach"):  # a torch tensor (duck-typed: plotting needs no torch)
        weights = weights.detach().float().cpu().numpy()
    weights = np.asarray(weights)
    expected = (len(target_tokens), len(source_tokens))
    if weights.shape != expected:
        raise ValueError(
            f"attention weights of shape {weights.shape} do not match "
            f"(len(target_tokens), len(source_tokens)) = {expected}"
        )
    fig = Figure(
        figsize=(2.5 + INCHES_PER_TOKEN * expected[1], 1.5 + INCHES_PER_TOKEN * expected[0])
    )
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
    save_png(fig, path)


def save_png(fig: Figure, path: str | Path) -> None:
    buffer = io.BytesIO()
    # "tight" grows or crops the canvas to fit long rotated labels and the title.
    fig.savefig(buffer, format="png", bbox_inches="tight")
    atomic_write_bytes(path, buffer.getvalue())


def gradient_flow_plot(
    curves: dict[str, np.ndarray],
    eigenvalues: dict[str, np.ndarray],
    path: str | Path,
    title: str | None = None,
) -> None:
    """Left: ||dL_T/dh_t|| against t on a log scale, one curve per model (curves: label -> (T,)).
    Right: each model's state-carrying recurrent eigenvalues in the complex plane, with the unit
    circle: outside it, gradients may explode; well inside, they vanish."""
    fig = Figure(figsize=(12, 4.8))
    FigureCanvasAgg(fig)
    flow, plane = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for label, norms in curves.items():
        flow.plot(np.arange(1, len(norms) + 1), np.where(norms > 0, norms, np.nan), label=label)
    flow.set_yscale("log")
    flow.set_xlabel("time step t")
    flow.set_ylabel("||dL_T / dh_t||")
    flow.legend(fontsize="small")
    flow.grid(True, which="major", alpha=0.3)
    angle = np.linspace(0, 2 * np.pi, 200)
    plane.plot(np.cos(angle), np.sin(angle), color="grey", linewidth=0.8)
    for label, values in eigenvalues.items():
        plane.scatter(values.real, values.imag, s=6, label=label)
    plane.set_aspect("equal")
    plane.set_xlabel("Re lambda")
    plane.set_ylabel("Im lambda")
    plane.set_title("eigenvalues of W_hh (RNN), W_hg (LSTM), W_hn (GRU)", fontsize="small")
    if title is not None:
        fig.suptitle(title)
    save_png(fig, path)


def training_curves_plot(
    steps: np.ndarray,
    loss: np.ndarray,
    grad_norm: np.ndarray,
    path: str | Path,
    clip_norm: float | None = None,
    title: str | None = None,
) -> None:
    """A run's training loss and gradient norm (before clipping) per optimizer step, log scale;
    a dashed line marks the clipping threshold."""
    fig = Figure(figsize=(8, 6))
    FigureCanvasAgg(fig)
    top, bottom = fig.add_subplot(2, 1, 1), fig.add_subplot(2, 1, 2, sharex=None)
    top.plot(steps, loss, linewidth=0.8)
    top.set_yscale("log")
    top.set_ylabel("training loss")
    bottom.plot(steps, np.maximum(grad_norm, 1e-30), linewidth=0.8, color="tab:red")
    if clip_norm is not None:
        bottom.axhline(
            clip_norm,
            linestyle="--",
            color="black",
            linewidth=0.8,
            label=f"clip_norm {clip_norm:g}",
        )
        bottom.legend(fontsize="small")
    bottom.set_yscale("log")
    bottom.set_ylabel("gradient norm")
    bottom.set_xlabel("optimizer step")
    if title is not None:
        top.set_title(title)
    save_png(fig, path)


def time_to_quality_plot(
    curves: dict[str, tuple[list[float], list[float]]],
    ylabel: str,
    path: str | Path,
    log_y: bool = False,
    title: str | None = None,
) -> None:
    """A validation score against wall-clock minutes of training, one marked line per run
    (curves: label -> (minutes, scores), one point per validation)."""
    fig = Figure(figsize=(7, 4.5))
    FigureCanvasAgg(fig)
    axes = fig.add_subplot(1, 1, 1)
    for label, (minutes, scores) in curves.items():
        axes.plot(minutes, scores, marker="o", markersize=3, label=label)
    if log_y:
        axes.set_yscale("log")
    axes.set_xlabel("wall-clock minutes of training")
    axes.set_ylabel(ylabel)
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize="small")
    if title is not None:
        axes.set_title(title, fontsize="small")
    save_png(fig, path)
