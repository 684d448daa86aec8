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
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import nn

from .config import Config, config_from_dict, override_config, run_config
from .distributed import (
    SINGLE_PROCESS,
    Distributed,
    barrier,
    setup_distributed,
    teardown_distributed,
)
from .errors import UserError
from .parallel_data import read_parallel
from .rundir import RunDir
from .tasks import classify, lm, long_range, tag, translate
from .tasks.lm import LanguageModelScorer, read_splits
from .textio import read_text
from .trainer import Trainer

TASKS: dict[str, ModuleType] = {
    "lm": lm,
    "translate": translate,
    "adding": long_range,
    "copy": long_range,
    "classify": classify,
    "tag": tag,
}


def select_device(spec: str, env: Distributed = SINGLE_PROCESS) -> torch.device:
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


def train(
    cfg: Config | None,
    *,
    resume: str | Path | None = None,
    overwrite: bool = False,
    overrides: list[str] = (),
) -> dict[str, Any]:
    """Train a fresh run in ``cfg.run_dir``, or continue the run at ``resume`` exactly where
    its last checkpoint left it (its own config, with ``overrides`` applied)."""
    run = None
    if resume is not None:
        run = RunDir.open(resume)
        cfg = override_config(
            config_from_dict(run.load_config(), str(run.path / "config.yaml")), overrides
        )
    kind = (
        "cuda"
        if cfg.train.device.startswith("cuda")
        or (cfg.train.device == "auto" and torch.cuda.is_available())
        else "cpu"
    )
    env = setup_distributed(kind)
    try:
        summary = _train(cfg, env, run, overwrite)
        barrier(env)  # no rank tears the group down while another still talks in it
        return summary
    finally:
        teardown_distributed(env)


def task_module(cfg: Config) -> ModuleType:
    """The module of ``cfg.task``: ``read_data``, ``new_tokenizers``, ``save_tokenizers``,
    ``load_tokenizers``, ``new_model``, ``new_task`` and ``test_metrics``, the same for every
    task."""
    return TASKS[cfg.task]


def _train(cfg: Config, env: Distributed, run: RunDir | None, overwrite: bool) -> dict[str, Any]:
    resuming = run is not None
    checkpoint = run.load_checkpoint() if resuming else None
    if resuming and checkpoint is None:
        raise UserError(f"{run.path}: no checkpoint to resume from")
    if not resuming:
        RunDir.check_new(cfg.run_dir, overwrite=overwrite)
    device = select_device(cfg.train.device, env)
    kind = task_module(cfg)
    data = kind.read_data(cfg)
    if resuming:
        tokenizers = kind.load_tokenizers(run.path)
    else:  # deterministic: every rank builds the same
        tokenizers = kind.new_tokenizers(cfg, data)
    seed_everything(cfg.seed, cfg.train.deterministic)
    task = kind.new_task(cfg, tokenizers, data, device, env)
    # Only now, with the config, the data and the model checked, is anything written.
    if not resuming and env.is_main:
        run = RunDir.create(cfg.run_dir, overwrite=overwrite)
        run.save_config(run_config(cfg))
        kind.save_tokenizers(tokenizers, run.path)
    trainer = Trainer(task, cfg.train, run if env.is_main else None, env, device)
    if checkpoint is not None:
        trainer.resume(*checkpoint)
    summary = trainer.fit()
    if "test" in data and run is not None and env.is_main:
        task.model.load_state_dict(run.load_model_state())  # the best weights
        test = kind.test_metrics(task, data)
        run.append_metrics({"kind": "test", **{f"test_{k}": v for k, v in test.items()}})
        summary["test"] = test
    return summary


def load_run(path: str | Path, device: str = "cpu") -> tuple[Config, Any, nn.Module]:
    """A trained run's config, tokenizer(s) and model (best weights), ready to score or decode."""
    run = RunDir.open(path)
    cfg = config_from_dict(run.load_config(), str(run.path / "config.yaml"))
    kind = task_module(cfg)
    tokenizers = kind.load_tokenizers(run.path)
    cfg.model.pretrained_embeddings = None  # the trained weights replace them
    model = kind.new_model(cfg, tokenizers)
    try:
        model.load_state_dict(run.load_model_state())
    except RuntimeError as e:
        raise UserError(
            f"{run.path / 'model.safetensors'}: does not fit the config ({str(e).splitlines()[0]})"
        ) from None
    return cfg, tokenizers, model.to(select_device(device)).eval()


def evaluate_run(
    path: str | Path, split: str = "test", data: str | Path | None = None, device: str = "cpu"
) -> dict[str, float]:
    """Loss, perplexity (and bits per character) of a language model on a split or a file; the
    MSE (adding) or loss and accuracy (copy) of a long-range run on its held-out split."""
    cfg, tokenizer, model = load_run(path, device)
    if cfg.task in ("adding", "copy"):
        if data is not None:
            raise UserError(f"{path}: a {cfg.task} run generates its data; use --split valid|test")
        splits = long_range.read_data(cfg)
        return long_range.LongRangeTask(cfg, model, splits, select_device(device)).score(
            splits[split]
        )
    require_task(cfg, "lm", path)
    if data is not None:
        text = read_text(data)
    elif split == "valid":
        text = read_splits(cfg)["valid"]
    elif cfg.data.test is None:
        raise UserError(f"{path}: the run has no test file; pass --data FILE")
    else:
        text = read_text(cfg.data.test)
    return LanguageModelScorer(cfg, tokenizer, model, select_device(device)).score(text)


def require_task(cfg: Config, task: str, path: str | Path) -> None:
    if cfg.task != task:
        raise UserError(f"{path}: a {cfg.task} run; this needs a {task} run")


def evaluate_translation(
    path: str | Path,
    split: str = "test",
    source: str | Path | None = None,
    reference: str | Path | None = None,
    beam_size: int | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """BLEU and chrF (sacrebleu, with signatures) of a translation run on a split, or on a
    source file against a reference file (line-aligned)."""
    cfg, tokenizers, model = load_run(path, device)
    require_task(cfg, "translate", path)
    if (source is None) != (reference is None):
        raise UserError("evaluate: give both --src and --ref, or neither (then --split)")
    if source is not None:
        pairs, name = read_parallel(source, reference), str(source)
    else:
        splits = translate.read_data(cfg)
        if split not in splits:
            raise UserError(f"{path}: the run has no {split} data; pass --src FILE --ref FILE")
        pairs, name = splits[split], split
    hypotheses = translate.translate_texts(
        model, tokenizers, [s for s, _ in pairs], cfg, select_device(device), beam_size, name=name
    )
    return translate.corpus_scores([h[0][0] for h in hypotheses], [t for _, t in pairs])


def evaluate_labelled(
    path: str | Path, split: str = "test", data: str | Path | None = None, device: str = "cpu"
) -> dict[str, Any]:
    """A classify run's loss, accuracy, macro-F1 and confusion matrix, or a tag run's loss, token
    accuracy (and entity P/R/F1 for BIO/IOBES tags), on a split or on a labelled file."""
    cfg, tokenizers, model = load_run(path, device)
    if cfg.task not in ("classify", "tag"):
        raise UserError(f"{path}: a {cfg.task} run; this needs a classify or tag run")
    kind = task_module(cfg)
    if data is not None:
        examples, name = kind.read_file(cfg, data), str(data)
    else:
        splits = kind.read_data(cfg)
        if split not in splits:
            raise UserError(f"{path}: the run has no {split} data; pass --data FILE")
        examples, name = splits[split], str(getattr(cfg.data, split) or cfg.data.train)
    return kind.evaluate(
        model, tokenizers, examples, select_device(device), name, cfg.data.eval_batch_size
    )
