"""``OnnxEngine``: an export folder (``rnnkit export``) run by onnxruntime, behind the same
``call`` as ``engine.TorchEngine``, so that ``rnnkit.load(EXPORT_DIR)`` gives the task's usual
loaded run and every search, batching and scoring step above the engine is the one PyTorch runs.

The task's loaded run says how its graphs stand in for its model's methods: its ``graphs``
class (e.g. ``tasks/lm/run.LanguageModelGraphs``) takes this engine and offers the methods
the run calls (``forward``, ``start``, ``search_step``), built on ``run(graph, **arrays)``.
Everything here is numpy: torch is never imported, so an export decodes where torch is not
installed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from rnnkit.decoding.arrays import NUMPY
from rnnkit.errors import UserError

MANIFEST = "manifest.json"


def is_export(path: str | Path) -> bool:
    manifest = Path(path) / MANIFEST
    return manifest.is_file() and read_manifest(path).get("format") == "rnnkit-onnx"


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """An export folder's ``manifest.json``."""
    return json.loads((Path(folder) / MANIFEST).read_text())


class OnnxEngine:
    """The graphs of an export folder in onnxruntime sessions (CPU)."""

    def __init__(self, folder: str | Path, graphs: Callable[[OnnxEngine], Any]) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise UserError("onnxruntime is missing: pip install 'rnnkit[onnx]'") from None
        self.folder = Path(folder)
        self.manifest = read_manifest(self.folder)
        self.xp, self.device = NUMPY, "cpu"
        # The search runs numpy between graph calls: onnxruntime's threads must not spin
        # while it works (spinning, they took the cores from the search: beam 5 batch-1 at
        # 105 ms instead of 12, benchmarks/RESULTS.md).
        options = ort.SessionOptions()
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.sessions = {
            name: ort.InferenceSession(
                str(self.folder / g["file"]), options, providers=["CPUExecutionProvider"]
            )
            for name, g in self.manifest["graphs"].items()
        }
        self.inputs = {
            n: [i["name"] for i in g["inputs"]] for n, g in self.manifest["graphs"].items()
        }
        self.outputs = {
            n: [o["name"] for o in g["outputs"]] for n, g in self.manifest["graphs"].items()
        }
        self.graphs = graphs(self)

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """The graphs' stand-in for ``model.method(*args, **kwargs)``."""
        return getattr(self.graphs, method)(*args, **kwargs)

    def parameters(self) -> int:
        return self.manifest["model"]["parameters"]

    def run(self, graph: str, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        """One graph on named arrays (those it does not take are left out) -> named outputs."""
        feed = {name: np.ascontiguousarray(inputs[name]) for name in self.inputs[graph]}
        values = self.sessions[graph].run(None, feed)
        return dict(zip(self.outputs[graph], values, strict=True))

    def state_shape(self, graph: str, batch: int) -> tuple[int, int, int]:
        layers, _, hidden = next(
            i for i in self.manifest["graphs"][graph]["inputs"] if i["name"] == "h"
        )["shape"]
        return layers, batch, hidden

    def state_names(self, graph: str) -> list[str]:
        return [n for n in ("h", "c") if n in self.inputs[graph]]
