"""``rnnkit.load(RUN)``: the one door into a trained run, for Python users, every CLI command
that reads a run, and the server.

    import rnnkit
    lm = rnnkit.load("runs/demo")
    [g.text for g in lm.generate(["ROMEO:", "JULIET:"], max_new_tokens=50, seed=[1, 2])]
    rnnkit.load("runs/reverse").translate(["a b c"], beam=5, n_best=2)
    rnnkit.load("runs/sst2").predict(["a gripping film"])

``load`` reads the run directory (config, vocabularies, best weights), or an export folder
of ``rnnkit export`` (onnxruntime then runs its graphs: ``onnx_engine.OnnxEngine``, and torch
is never imported), and returns the task's loaded-run type (``RUN_TYPES[task]``):
``LanguageModelRun``, ``TranslationRun``, ``ClassifierRun``, ``TaggerRun`` or
``LongRangeRun``. Each holds its model behind an engine (``engine.TorchEngine``), the seam
where another runtime takes the model's place.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

from .base import LoadedRun
from .classify import ClassifierRun
from .lm import LanguageModelRun
from .long_range import LongRangeRun
from .tag import TaggerRun
from .translate import TranslationRun

ENGINES = ("auto", "torch", "onnxruntime")

# config.task -> what rnnkit.load returns for it (the training side's registry is tasks.TASKS)
RUN_TYPES: dict[str, type[LoadedRun]] = {
    task: run_type
    for run_type in (LanguageModelRun, TranslationRun, ClassifierRun, TaggerRun, LongRangeRun)
    for task in run_type.tasks
}


def load(
    path: str | Path, device: str = "cpu", engine: str = "auto", precision: str = "fp32"
) -> LoadedRun:
    """The run at ``path`` with its best weights on ``device`` (``auto``: a GPU if there is
    one), ready to use; a one-line UserError if it is not a run directory or does not fit.
    ``engine``: ``auto`` runs an export folder in onnxruntime and a run directory in PyTorch;
    ``onnxruntime`` with a run directory exports it to a temporary folder first.
    ``precision``: the weights' dtype in PyTorch, ``fp32``, ``bf16`` (on a CPU without native
    bf16: a notice, then fp32) or ``fp16`` (GPU); an export runs in fp32."""
    import yaml

    from ..allocator import retain_freed_memory
    from ..config import config_from_dict
    from ..data.textio import read_text
    from ..errors import UserError
    from .onnx_engine import OnnxEngine, is_export

    retain_freed_memory()
    if engine not in ENGINES:
        raise UserError(f"engine: one of {', '.join(ENGINES)}, not {engine!r}")
    if engine == "torch" and is_export(path):
        raise UserError(f"{path}: an export folder runs in onnxruntime (--engine onnxruntime)")
    if engine == "onnxruntime" and not is_export(path):
        from ..export.onnx_export import export_onnx

        folder = Path(tempfile.mkdtemp(prefix="rnnkit-export-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        path = export_onnx(load(path, "cpu", "torch"), folder / "export")
    if is_export(path):  # rnnkit export's folder: the same loaded run, run by onnxruntime
        if device not in ("cpu", "auto"):
            raise UserError(f"{path}: an ONNX export runs on the CPU (onnxruntime), not {device}")
        if precision != "fp32":
            raise UserError(f"{path}: an ONNX export runs in fp32, not {precision}")
        folder, graphs = Path(path), OnnxEngine(path)
        config = folder / "config.yaml"
        cfg = config_from_dict(yaml.safe_load(read_text(config)), str(config), False)
        run_type = RUN_TYPES[graphs.manifest["task"]]
        return run_type(folder, cfg, run_type.load_vocabularies(folder), graphs)
    return load_run_directory(path, device, precision)


def load_run_directory(path: str | Path, device: str, precision: str = "fp32") -> LoadedRun:
    """A run directory's best weights in its PyTorch model (``engine.TorchEngine``)."""
    from ..config import config_from_dict
    from ..errors import UserError
    from ..rundir import RunDir
    from ..tasks import TASKS
    from ..training.distributed import select_device
    from .engine import TorchEngine, weight_dtype

    run = RunDir.open(path)
    cfg = config_from_dict(run.load_config(), str(run.path / "config.yaml"))
    run_type = RUN_TYPES[cfg.task]
    vocabularies = run_type.load_vocabularies(run.path)
    cfg.model.pretrained_embeddings = None  # the trained weights replace them
    model = TASKS[cfg.task].build_model(cfg, vocabularies)
    try:
        model.load_state_dict(run.load_model_state())
    except RuntimeError as e:
        raise UserError(
            f"{run.path / 'model.safetensors'}: does not fit the config ({str(e).splitlines()[0]})"
        ) from None
    where = select_device(device)
    engine = TorchEngine(model, where, weight_dtype(precision, where))
    return run_type(run.path, cfg, vocabularies, engine)


__all__ = ["load", "LoadedRun", "RUN_TYPES"]
