"""``rnnkit diagnose``: gradient flow and recurrent spectra of fresh and trained models, side by
side, and a run's gradient norm per step, as CSV files and PNG plots.

    rnnkit diagnose gradients configs/adding.yaml --cells rnn-tanh rnn-relu lstm gru --out diag/
    rnnkit diagnose gradients --run runs/adding-lstm --run runs/adding-rnn --out diag/
    rnnkit diagnose grad-norm runs/adding-lstm --out diag/adding-lstm.png

``gradients`` writes OUT/gradient_flow.csv (label, layer, direction, t, grad_norm),
OUT/spectrum.csv (label, layer, direction, gate, spectral_radius, sigma_max, sigma_min) and
OUT/gradient_flow.png. A fresh model of each cell is built from the config with the config's
seed, and every model of one config is measured on the same batch.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rnnkit.atomic import atomic_write_text
from rnnkit.config import Config, override_config
from rnnkit.diagnostics import gradient_flow, recurrent_layer, recurrent_spectrum, state_eigenvalues
from rnnkit.errors import UserError
from rnnkit.plots import gradient_flow_plot, training_curves_plot
from rnnkit.tasks import registry
from rnnkit.tasks.trainable import TaskTraining
from rnnkit.workflows.load import load, open_run

CELLS: dict[str, list[str]] = {
    "rnn-tanh": ["model.cell=rnn", "model.nonlinearity=tanh"],
    "rnn-relu": ["model.cell=rnn", "model.nonlinearity=relu"],
    "lstm": ["model.cell=lstm"],
    "gru": ["model.cell=gru"],
}


def cell_name(cfg: Config) -> str:
    return f"rnn-{cfg.model.nonlinearity}" if cfg.model.cell == "rnn" else cfg.model.cell


@dataclass
class Diagnosis:
    label: str
    flow: list[dict[str, Any]]
    spectrum: list[dict[str, Any]]
    eigenvalues: np.ndarray  # (H,) complex


def diagnosable(cfg: Config, where: str) -> TaskTraining:
    """The torch side of the config's task, if it has one recurrent stack to diagnose."""
    spec = registry.get(cfg.task)
    if not spec.diagnosable:
        supported = ", ".join(t.name for t in registry.TASKS.values() if t.diagnosable)
        raise UserError(
            f"{where}: task '{cfg.task}' has no single recurrent stack to diagnose "
            f"(diagnose supports {supported})"
        )
    return spec.trainer_side()


def diagnose(label: str, kind: TaskTraining, model: nn.Module, batch: Any) -> Diagnosis:
    flow = gradient_flow(model, batch, kind.last_step_loss)
    layer = recurrent_layer(model)
    return Diagnosis(label, flow, recurrent_spectrum(layer), state_eigenvalues(layer).numpy())


def fresh_models(
    config: str, overrides: list[str], cells: list[str], batch_size: int
) -> list[Diagnosis]:
    """One fresh model per cell (or the config's own), each at initialisation."""
    unknown = [c for c in cells if c not in CELLS]
    if unknown:
        raise UserError(f"diagnose: unknown cell {unknown[0]!r}; choose from {', '.join(CELLS)}")
    cfg = registry.load_config(config, overrides)
    kind = diagnosable(cfg, config)
    data = kind.read_data(cfg)
    tokenizers = kind.build_vocabularies(cfg, data)
    batch = kind.diagnostic_batch(cfg, tokenizers, data, batch_size)
    results = []
    for cell in cells or [None]:
        cell_cfg = override_config(cfg, CELLS[cell]) if cell else cfg
        torch.manual_seed(cell_cfg.seed)
        model = kind.build_model(cell_cfg, tokenizers)
        results.append(diagnose(f"{cell_name(cell_cfg)}, init", kind, model, batch))
    return results


def trained_model(run: str, batch_size: int) -> Diagnosis:
    loaded = load(run)
    cfg = loaded.cfg
    kind = diagnosable(cfg, run)
    batch = kind.diagnostic_batch(cfg, loaded.vocabularies, kind.read_data(cfg), batch_size)
    return diagnose(f"{cell_name(cfg)}, {Path(run).name}", kind, loaded.engine.model, batch)


def csv_text(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_report(results: list[Diagnosis], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(
        out / "gradient_flow.csv",
        csv_text([{"label": r.label, **row} for r in results for row in r.flow]),
    )
    atomic_write_text(
        out / "spectrum.csv",
        csv_text([{"label": r.label, **row} for r in results for row in r.spectrum]),
    )
    curves = {}
    for r in results:
        layers = max(row["layer"] for row in r.flow) + 1
        for layer in range(layers):
            norms = [
                row["grad_norm"]
                for row in r.flow
                if row["layer"] == layer and row["direction"] == 0
            ]
            curves[r.label + (f", layer {layer + 1}" if layers > 1 else "")] = np.array(norms)
    gradient_flow_plot(
        curves,
        {r.label: r.eigenvalues for r in results},
        out / "gradient_flow.png",
        title="gradient reaching step t from the loss at the last step",
    )


def summary_rows(results: list[Diagnosis]) -> list[dict[str, Any]]:
    """Per model: the first layer's ||dL_T/dh_T||, ||dL_T/dh_1|| and their ratio, and the
    spectral radius of its state-carrying block."""
    rows = []
    for r in results:
        first = [row["grad_norm"] for row in r.flow if row["layer"] == 0 and row["direction"] == 0]
        rows.append(
            {
                "label": r.label,
                "grad_T": first[-1],
                "grad_1": first[0],
                "ratio": first[0] / first[-1] if first[-1] else float("nan"),
                "radius": float(np.abs(r.eigenvalues).max()),
            }
        )
    return rows


def grad_norm_plot(run: str, out: str | Path | None = None) -> Path:
    """Plot the loss and gradient norm the trainer logged at every step of a run."""
    directory, cfg = open_run(run)
    steps = [r for r in directory.read_metrics() if r.get("kind") == "step"]
    if not steps:
        raise UserError(f"{run}: no step records in metrics.jsonl yet")
    clip = cfg.train.clip_norm
    path = Path(out) if out else directory.path / "grad_norm.png"
    training_curves_plot(
        np.array([r["step"] for r in steps]),
        np.array([r["loss"] for r in steps]),
        np.array([r["grad_norm"] for r in steps]),
        path,
        clip,
        title=str(run),
    )
    return path
