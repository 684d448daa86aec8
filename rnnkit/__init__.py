"""rnnkit: recurrent sequence learning (RNN, LSTM, GRU, BPTT, attention) on PyTorch.

    import rnnkit
    run = rnnkit.load("runs/demo")               # any trained run: lm, translate, classify, ...
    print(run.generate("ROMEO:", max_new_tokens=100, seed=0)[0].text)

``import rnnkit`` is cheap: torch is imported when a run is loaded or trained, not before.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__version__ = "0.1.0"


def load(
    path: str | Path, device: str = "cpu", engine: str = "auto", precision: str = "fp32"
) -> Any:
    """A trained run (or an export folder), ready to use: see ``rnnkit.workflows.load``."""
    from rnnkit.workflows.load import load as load_run

    return load_run(path, device, engine, precision)


def train(cfg: Any, **options: Any) -> dict[str, Any]:
    """Train a run from a config (``load_config``): see ``rnnkit.workflows.train``."""
    from rnnkit.workflows.train import train as train_run

    return train_run(cfg, **options)


def load_config(path: str | Path | None, overrides: list[str] = ()) -> Any:
    """A YAML config (or the defaults when path is None) with ``section.key=value`` overrides,
    checked: see ``rnnkit.tasks.registry.load_config``."""
    from rnnkit.tasks.registry import load_config as load

    return load(path, overrides)


__all__ = ["load", "train", "load_config", "__version__"]
