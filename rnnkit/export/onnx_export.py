"""``rnnkit export RUN --format onnx --out DIR``: a trained run as ONNX graphs and a manifest.

The graphs come from the run's task (``base.Task.graphs``: ``tasks/<task>/graphs.py``), every
tensor batch-first, B, T and S free (any batch, any length).

The recurrent layers are ONNX's native RNN / LSTM / GRU ops (``onnx_recurrent``); the rest is
traced by ``torch.onnx.export`` (the TorchScript exporter: torch 2.13's dynamo exporter cannot
trace ragged packed sequences). fp32, opset 17, each graph checked by ``onnx.checker``.

``manifest.json`` (``MANIFEST_VERSION``) says what a runtime in any language needs: the task,
each graph's file, inputs and outputs (name, dtype, shape with named free dimensions), the
vocabularies (every token, the special ids) and tokenizer rules, the decode settings and the
opset. The run's own vocabulary files and config sit beside it.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import onnx
import torch

from rnnkit.atomic import writing
from rnnkit.errors import UserError
from rnnkit.export.graphs import GraphSpec
from rnnkit.export.onnx_recurrent import OPSET, native_recurrent

MANIFEST_VERSION = 1
FORMAT = "rnnkit-onnx"

DTYPES = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.INT64: "int64",
          onnx.TensorProto.BOOL: "bool", onnx.TensorProto.INT32: "int32"}  # fmt: skip


def value_info(values: Any) -> list[dict[str, Any]]:
    """Name, dtype and shape (free dimensions by name) of a graph's inputs or outputs."""
    described = []
    for v in values:
        dims = [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
        dtype = DTYPES.get(v.type.tensor_type.elem_type, str(v.type.tensor_type.elem_type))
        described.append({"name": v.name, "dtype": dtype, "shape": dims})
    return described


def export_graph(spec: GraphSpec, path: Path) -> dict[str, Any]:
    """Trace ``spec`` to ``path`` and check it: -> its manifest entry."""
    names, outputs = list(spec.inputs), spec.outputs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on Python values it freezes
        torch.onnx.export(
            spec.module, tuple(spec.inputs.values()), str(path), dynamo=False,
            input_names=names, output_names=outputs, opset_version=OPSET,
            dynamic_axes={k: v for k, v in spec.axes.items() if k in names + outputs},
        )  # fmt: skip
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    return {
        "file": spec.file,
        "inputs": value_info(model.graph.input),
        "outputs": value_info(model.graph.output),
    }


def vocabularies(run: Any, directory: Path) -> dict[str, Any]:
    """Every vocabulary file of the run (tokens, special ids, tokenizer kind and rules), as
    JSON, by its path in the export folder."""
    found = {}
    for path in sorted(directory.rglob("*.json")):
        if path.name != "manifest.json":
            found[str(path.relative_to(directory))] = json.loads(path.read_text())
    return found


def export_onnx(run: Any, out: str | Path, overwrite: bool = False) -> Path:
    """Export a loaded run (``rnnkit.load``) to the folder ``out``, written whole or not at all
    (a temporary folder, renamed at the end). The run's model is left on the CPU in fp32. A
    write the OS refuses (a full disk, a read-only folder) removes the temporary folder and
    raises a one-line UserError naming ``out``."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise UserError(f"{out}: exists; pass --overwrite to replace it")
    model = run.engine.model.float().cpu().eval()
    for p in model.parameters():
        p.requires_grad_(False)
    specs = run.spec.graph_specs(run)
    if not specs:
        raise UserError(f"export: task {run.task!r} has no ONNX export")
    with writing(out):
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as tmp:
            folder = Path(tmp) / "export"
            folder.mkdir()
            write_export(run, model, specs, folder)
            if out.exists():
                shutil.rmtree(out)
            folder.rename(out)
    return out


def write_export(run: Any, model: torch.nn.Module, specs: list[GraphSpec], folder: Path) -> None:
    """The export's files in ``folder``: the run's vocabulary files and config (nothing else of
    the run directory: not its lock file, weights or checkpoints), the graphs, the manifest."""
    for name in (*run.spec.run_files, "config.yaml"):
        source = run.path / name
        if source.is_dir():
            shutil.copytree(source, folder / name)
        elif source.exists():
            shutil.copy2(source, folder / name)
    with native_recurrent(model), torch.no_grad():
        graphs = {s.file.removesuffix(".onnx"): export_graph(s, folder / s.file)
                  for s in specs}  # fmt: skip
    manifest = {
        "format": FORMAT,
        "version": MANIFEST_VERSION,
        "task": run.task,
        "opset": OPSET,
        "dtype": "float32",
        "model": run.describe(),
        "graphs": graphs,
        "vocabularies": vocabularies(run, folder),
        "decode": dataclasses.asdict(run.cfg.decode),
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
