"""The Python API behind ``rnnkit train / evaluate / generate``: config -> data and vocabulary
-> model -> trainer -> run directory, and back from a run directory to a model.

    from rnnkit.config import load_config
    from rnnkit.training import train, load_run, evaluate_run
    summary = train(load_config("configs/ptb-small.yaml", ["train.epochs=1"]))
    cfg, tokenizer, model = load_run("runs/ptb-small")
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import Config, config_from_dict, override_config
from .distributed import Distributed, barrier, setup_distributed, teardown_distributed
from .errors import UserError
from .models.language_model import RNNLanguageModel
from .rundir import RunDir
from .tasks.lm import LanguageModelScorer, LanguageModelTask, new_model, new_tokenizer, read_splits
from .textio import read_text
from .tokenizers import Tokenizer, load_tokenizer
from .trainer import Trainer


def select_device(spec: str, env: Distributed = Distributed()) -> torch.device:
    """``auto``: this rank's GPU when CUDA is there, else the CPU."""
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(spec)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"train.device: {spec} asked for, but CUDA is not available")
        if device.index is None:
            device = torch.device("cuda", env.local_rank)
        torch.cuda.set_device(device)
    return device


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        # cuBLAS needs this workspace setting for deterministic results (CUDA docs).
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)


def train(cfg: Config | None, *, resume: str | Path | None = None, overwrite: bool = False,
          overrides: list[str] = ()) -> dict[str, Any]:
    """Train a fresh run in ``cfg.run_dir``, or continue the run at ``resume`` exactly where
    its last checkpoint left it (its own config, with ``overrides`` applied)."""
    run = None
    if resume is not None:
        run = RunDir.open(resume)
        cfg = override_config(config_from_dict(run.load_config(), str(run.path / "config.yaml")), overrides)
    kind = "cuda" if cfg.train.device.startswith("cuda") or (
        cfg.train.device == "auto" and torch.cuda.is_available()) else "cpu"
    env = setup_distributed(kind)
    try:
        summary = _train(cfg, env, run, overwrite)
        barrier(env)  # no rank tears the group down while another still talks in it
        return summary
    finally:
        teardown_distributed(env)


def _train(cfg: Config, env: Distributed, run: RunDir | None, overwrite: bool) -> dict[str, Any]:
    resuming = run is not None
    checkpoint = run.load_checkpoint() if resuming else None
    if resuming and checkpoint is None:
        raise UserError(f"{run.path}: no checkpoint to resume from")
    device = select_device(cfg.train.device, env)
    texts = read_splits(cfg)
    if resuming:
        tokenizer = load_tokenizer(run.path)
    else:
        run = RunDir.create(cfg.run_dir, overwrite=overwrite) if env.is_main else None
        tokenizer = new_tokenizer(cfg, texts["train"])  # deterministic: every rank builds the same
        if run:
            run.save_config(cfg.to_dict())
            tokenizer.save(run.path)
    seed_everything(cfg.seed, cfg.train.deterministic)
    task = LanguageModelTask(cfg, tokenizer, new_model(cfg, tokenizer), texts, device, env)
    trainer = Trainer(task, cfg.train, run if env.is_main else None, env, device)
    if checkpoint is not None:
        trainer.resume(*checkpoint)
    summary = trainer.fit()
    if "test" in texts and run is not None and env.is_main:
        task.model.load_state_dict(run.load_model_state())  # the best weights
        test = task.score(texts["test"])
        run.append_metrics({"kind": "test", **{f"test_{k}": v for k, v in test.items()}})
        summary["test"] = test
    return summary


def load_run(path: str | Path, device: str = "cpu") -> tuple[Config, Tokenizer, RNNLanguageModel]:
    """A trained run's config, tokenizer and model (best weights), ready to score or generate."""
    run = RunDir.open(path)
    cfg = config_from_dict(run.load_config(), str(run.path / "config.yaml"))
    tokenizer = load_tokenizer(run.path)
    cfg.model.pretrained_embeddings = None  # the trained weights replace them
    model = RNNLanguageModel(len(tokenizer.vocab), cfg.model, tokenizer.vocab.pad_index)
    try:
        model.load_state_dict(run.load_model_state())
    except RuntimeError as e:
        raise UserError(f"{run.path / 'model.safetensors'}: does not fit the config "
                        f"({str(e).splitlines()[0]})") from None
    return cfg, tokenizer, model.to(select_device(device)).eval()


def evaluate_run(path: str | Path, split: str = "test", data: str | Path | None = None,
                 device: str = "cpu") -> dict[str, float]:
    """Loss, perplexity (and bits per character) of a run's best model on a split or a file."""
    cfg, tokenizer, model = load_run(path, device)
    if data is not None:
        text = read_text(data)
    elif split == "valid":
        text = read_splits(cfg)["valid"]
    elif cfg.data.test is None:
        raise UserError(f"{path}: the run has no test file; pass --data FILE")
    else:
        text = read_text(cfg.data.test)
    return LanguageModelScorer(cfg, tokenizer, model, select_device(device)).score(text)
