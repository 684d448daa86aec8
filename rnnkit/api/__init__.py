"""``rnnkit.load(RUN)``: the one door into a trained run, for Python users, every CLI command
that reads a run, and the server.

    import rnnkit
    lm = rnnkit.load("runs/demo")
    [g.text for g in lm.generate(["ROMEO:", "JULIET:"], max_new_tokens=50, seed=[1, 2])]
    rnnkit.load("runs/reverse").translate(["a b c"], beam=5, n_best=2)
    rnnkit.load("runs/sst2").predict(["a gripping film"])

``load`` reads the run directory (config, vocabularies, best weights) and returns the task's
loaded-run type (``tasks.TASKS[task].loaded``): ``LanguageModelRun``, ``TranslationRun``,
``ClassifierRun``, ``TaggerRun`` or ``LongRangeRun``. Each holds its model behind an engine
(``engine.TorchEngine``), the seam where another runtime can take the model's place.
"""

from __future__ import annotations

from pathlib import Path

from .base import LoadedRun


def load(path: str | Path, device: str = "cpu") -> LoadedRun:
    """The run at ``path`` with its best weights on ``device`` (``auto``: a GPU if there is
    one), ready to use; a one-line UserError if it is not a run directory or does not fit."""
    from ..config import config_from_dict
    from ..errors import UserError
    from ..rundir import RunDir
    from ..tasks import TASKS
    from ..training.distributed import select_device
    from .engine import TorchEngine

    run = RunDir.open(path)
    cfg = config_from_dict(run.load_config(), str(run.path / "config.yaml"))
    kind = TASKS[cfg.task]
    vocabularies = kind.load_vocabularies(run.path)
    cfg.model.pretrained_embeddings = None  # the trained weights replace them
    model = kind.build_model(cfg, vocabularies)
    try:
        model.load_state_dict(run.load_model_state())
    except RuntimeError as e:
        raise UserError(
            f"{run.path / 'model.safetensors'}: does not fit the config ({str(e).splitlines()[0]})"
        ) from None
    engine = TorchEngine(model, select_device(device))
    return kind.loaded(run.path, cfg, vocabularies, engine)


__all__ = ["load", "LoadedRun"]
