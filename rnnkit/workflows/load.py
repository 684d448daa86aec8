"""``rnnkit.load(RUN)``: the one door into a trained run, for Python users, every CLI command
that reads a run, and the server.

    import rnnkit
    lm = rnnkit.load("runs/demo")
    [g.text for g in lm.generate(["ROMEO:", "JULIET:"], max_new_tokens=50, seed=[1, 2])]
    rnnkit.load("runs/reverse").translate(["a b c"], beam=5, n_best=2)
    rnnkit.load("runs/sst2").predict(["a gripping film"])

``load`` reads the run directory (config, vocabularies, best weights), or an export folder
of ``rnnkit export`` (``exported.load_export``: onnxruntime runs its graphs, and torch is never
imported), and returns the task's loaded-run type (``registry.get(task).run_type``):
``LanguageModelRun``, ``TranslationRun``, ``ClassifierRun``, ``TaggerRun`` or
``LongRangeRun``. Each holds its model behind an engine (``decoding.engine.TorchEngine``), the
seam where another runtime takes the model's place. ``open_run`` is the one function that
opens a run directory and checks its config.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from rnnkit.allocator import retain_freed_memory
from rnnkit.config import Config
from rnnkit.errors import UserError
from rnnkit.tasks import registry
from rnnkit.tasks.loaded import LoadedRun
from rnnkit.workflows.exported import is_export, load_export

if TYPE_CHECKING:
    from rnnkit.runs.rundir import RunDir

# Torch (a run directory's weights, the export) is imported where it is needed, not above:
# loading an export folder runs without it.

ENGINES = ("auto", "torch", "onnxruntime")


def open_run(path: str | Path) -> tuple[RunDir, Config]:
    """A run directory and its checked config; a one-line UserError if ``path`` is not a run
    directory or its config does not read."""
    from rnnkit.runs.rundir import CONFIG_FILE, RunDir

    run = RunDir.open(path)
    return run, registry.config_from_dict(run.load_config(), str(run.file(CONFIG_FILE)))


def load(
    path: str | Path, device: str = "cpu", engine: str = "auto", precision: str = "fp32"
) -> LoadedRun:
    """The run at ``path`` with its best weights on ``device`` (``auto``: a GPU if there is
    one), ready to use; a one-line UserError if it is not a run directory or does not fit.
    ``engine``: ``auto`` runs an export folder in onnxruntime and a run directory in PyTorch;
    ``onnxruntime`` with a run directory exports it to a temporary folder first.
    ``precision``: the weights' dtype in PyTorch, ``fp32``, ``bf16`` (on a CPU without native
    bf16: a notice, then fp32) or ``fp16`` (GPU); an export runs in fp32."""
    retain_freed_memory()
    if engine not in ENGINES:
        raise UserError(f"engine: one of {', '.join(ENGINES)}, not {engine!r}")
    if engine == "torch" and is_export(path):
        raise UserError(f"{path}: an export folder runs in onnxruntime (--engine onnxruntime)")
    if engine == "onnxruntime" and not is_export(path):
        from rnnkit.export.onnx_export import export_onnx

        folder = Path(tempfile.mkdtemp(prefix="rnnkit-export-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        path = export_onnx(load(path, "cpu", "torch"), folder / "export")
    if is_export(path):  # rnnkit export's folder: the same loaded run, run by onnxruntime
        return load_export(path, device, precision)
    return load_run_directory(path, device, precision)


def load_run_directory(path: str | Path, device: str, precision: str = "fp32") -> LoadedRun:
    """A run directory's best weights in its PyTorch model (``engine.TorchEngine``)."""
    from rnnkit.decoding.engine import TorchEngine, weight_dtype
    from rnnkit.nn.device import select_device

    run, cfg = open_run(path)
    spec = registry.get(cfg.task)
    vocabularies = spec.run_type.load_vocabularies(run.path)
    cfg.model.pretrained_embeddings = None  # the trained weights replace them
    model = spec.trainer_side().build_model(cfg, vocabularies)
    try:
        model.load_state_dict(run.load_model_state())
    except RuntimeError as e:
        raise UserError(
            f"{run.file('model.safetensors')}: does not fit the config ({str(e).splitlines()[0]})"
        ) from None
    where = select_device(device)
    engine = TorchEngine(model, where, weight_dtype(precision, where))
    return spec.run_type(spec, run.path, cfg, vocabularies, engine)


__all__ = ["load", "open_run", "LoadedRun"]
