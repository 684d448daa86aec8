"""An export folder of ``rnnkit export`` as the task's usual loaded run, its graphs run by
onnxruntime (``decoding.onnx_engine``). Nothing on this path imports torch: an export decodes
where torch is not installed (``make lint`` checks it with import-linter)."""

from __future__ import annotations

from pathlib import Path

from rnnkit.config import read_yaml
from rnnkit.decoding.onnx_engine import OnnxEngine, is_export, read_manifest
from rnnkit.errors import UserError
from rnnkit.tasks import registry
from rnnkit.tasks.loaded import LoadedRun

__all__ = ["is_export", "load_export"]


def load_export(path: str | Path, device: str = "cpu", precision: str = "fp32") -> LoadedRun:
    """The export folder at ``path``, run on the CPU in fp32."""
    folder = Path(path)
    if device not in ("cpu", "auto"):
        raise UserError(f"{folder}: an ONNX export runs on the CPU (onnxruntime), not {device}")
    if precision != "fp32":
        raise UserError(f"{folder}: an ONNX export runs in fp32, not {precision}")
    spec = registry.get(read_manifest(folder)["task"])
    config = folder / "config.yaml"
    cfg = registry.config_from_dict(read_yaml(config), str(config))
    engine = OnnxEngine(folder, spec.run_type.graphs)
    return spec.run_type(spec, folder, cfg, spec.run_type.load_vocabularies(folder), engine)
