"""``rnnkit train``'s Python API: config -> data and vocabularies -> model -> trainer -> run
directory, each step the task's (``registry.get(cfg.task).trainer_side()``). Using a trained
run is ``rnnkit.load`` (``load.py``).

    import rnnkit
    summary = rnnkit.train(rnnkit.load_config("configs/ptb-small.yaml", ["train.epochs=1"]))
    run = rnnkit.load("runs/ptb-small")
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rnnkit.atomic import writing
from rnnkit.config import Config, override_config, run_config
from rnnkit.errors import UserError
from rnnkit.nn.device import select_device
from rnnkit.runs.lock import RunLock
from rnnkit.runs.rundir import RunDir
from rnnkit.tasks import registry
from rnnkit.training.distributed import (
    Distributed,
    barrier,
    setup_distributed,
    teardown_distributed,
)
from rnnkit.training.trainer import Trainer
from rnnkit.training.transfer import LanguageModelSource, parameter_groups, transfer_from_lms
from rnnkit.workflows.load import open_run


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        # cuBLAS needs this workspace setting for deterministic results (CUDA docs).
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)


def open_language_model(key: str, path: str) -> LanguageModelSource:
    """What transfer reads of the LM run at ``path`` (named by config ``key``): a run of a task
    whose runs are language models (``base.Task.language_model``), read through the registry."""
    if not Path(path).is_dir():
        raise UserError(f"{key}: {path} is not a run directory")
    run, cfg = open_run(path)
    spec = registry.get(cfg.task)
    if not spec.language_model:
        raise UserError(f"{key}: {path} is a {cfg.task} run, not a language model (task: lm)")
    vocabulary = spec.run_type.load_vocabularies(run.path).vocab
    return LanguageModelSource(run.path, cfg, vocabulary, run.load_model_state())


def train(
    cfg: Config | None,
    *,
    resume: str | Path | None = None,
    overwrite: bool = False,
    overrides: list[str] = (),
) -> dict[str, Any]:
    """Train a fresh run in ``cfg.run_dir``, or continue the run at ``resume`` exactly where
    its newest intact checkpoint left it (its own config, with ``overrides`` applied).

    The process (rank 0 under torchrun) holds the run directory's lock (``runs/lock.py``)
    from before it writes or deletes anything there until it returns: another writer of the
    same run is refused with a UserError naming this process."""
    run = None
    if resume is not None:
        run, stored = open_run(resume)
        cfg = override_config(stored, overrides)
    kind = (
        "cuda"
        if cfg.train.device.startswith("cuda")
        or (cfg.train.device == "auto" and torch.cuda.is_available())
        else "cpu"
    )
    env = setup_distributed(kind)
    lock = RunLock(run.path if run is not None else cfg.run_dir)
    try:
        summary = _train(cfg, env, run, overwrite, lock)
        barrier(env)  # no rank tears the group down while another still talks in it
        return summary
    finally:
        lock.release()  # a no-op on the ranks that never took it
        teardown_distributed(env)


def _train(
    cfg: Config, env: Distributed, run: RunDir | None, overwrite: bool, lock: RunLock
) -> dict[str, Any]:
    resuming = run is not None
    if env.is_main and resuming:
        lock.acquire()  # before anything else: is another process writing this run?
    elif env.is_main:
        lock.check_free()  # the same question, before check_new; RunDir.create takes it
    quiet = None if env.is_main else lambda line: None  # a damaged checkpoint is told once
    checkpoint = run.load_checkpoint(warn=quiet) if resuming else None
    if resuming and checkpoint is None:
        raise UserError(f"{run.path}: no checkpoint to resume from")
    if not resuming:
        RunDir.check_new(cfg.run_dir, overwrite=overwrite)
    device = select_device(cfg.train.device, env.local_rank)
    spec = registry.get(cfg.task)
    kind = spec.trainer_side()
    data = kind.read_data(cfg)
    if resuming:
        vocabularies = spec.run_type.load_vocabularies(run.path)
    else:  # deterministic: every rank builds the same
        vocabularies = kind.build_vocabularies(cfg, data)
    seed_everything(cfg.seed, cfg.train.deterministic)
    model = kind.build_model(cfg, vocabularies)
    targets = kind.transfer_targets(cfg, model, vocabularies)
    if not resuming:  # a resumed run has its own weights
        report = print if env.is_main else lambda line: None
        transfer_from_lms(cfg, targets, open_language_model, report)
    groups = parameter_groups(model, targets, cfg)
    task = kind.training_task(cfg, vocabularies, model, data, device, env)
    # Only now, with the config, the data and the model checked, is anything written.
    if not resuming and env.is_main:
        run = RunDir.create(
            cfg.run_dir, overwrite=overwrite, task_files=registry.run_files(), lock=lock
        )
        run.save_config(run_config(cfg))
        with writing(run.path):
            kind.save_vocabularies(vocabularies, run.path)
    trainer = Trainer(task, cfg.train, run if env.is_main else None, env, device, groups)
    if checkpoint is not None:
        trainer.resume(*checkpoint)
    summary = trainer.fit()
    if "test" in data and run is not None and env.is_main:
        task.model.load_state_dict(run.load_model_state())  # the best weights
        test = kind.test_metrics(task, data)
        run.append_metrics({"kind": "test", **{f"test_{k}": v for k, v in test.items()}})
        summary["test"] = test
    return summary
