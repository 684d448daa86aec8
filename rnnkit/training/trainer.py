"""The training loop, for any task: it knows a model, a loss over numbered batches, and a
validation score, nothing of language models or translation.

Per step: learning rate (schedule x warmup) -> loss under autocast -> backward (scaled for
fp16) -> clip by norm and/or value (the norm is logged every step) -> optimizer step. Per epoch:
validate, decay the learning rate (by schedule or on plateau), keep the best weights in
``RUN/model.safetensors``, stop early if asked. Checkpoints (every ``checkpoint_every`` steps
and at each epoch end) hold everything to continue bitwise-exactly: model, optimizer, the
position (epoch, batch, step), best score, RNG states of every rank and the task's own state
(a language model's carried hidden state). A NaN or inf loss stops the run before it touches
the last good checkpoint.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from tqdm import tqdm

from rnnkit.allocator import retain_freed_memory
from rnnkit.config import TrainConfig
from rnnkit.errors import TrainingDiverged, UserError
from rnnkit.nn.device import autocast, effective_precision
from rnnkit.runs.rundir import TENSORBOARD_DIR, RunDir
from rnnkit.training.distributed import Distributed, gather_digests, wrap_model


class TrainingTask(Protocol):
    """What the trainer needs of a task (``tasks/lm.py`` is one)."""

    model: nn.Module
    best_metric: str  # the validation metric that chooses the best weights ("loss", "bleu")
    higher_is_better: bool

    def num_batches(self) -> int:
        """Training batches per epoch, for this rank."""

    def start_epoch(self, epoch: int) -> None:
        """Called before batch 0 of each epoch (a language model resets its carried state)."""

    def batch_loss(self, model: nn.Module, epoch: int, k: int) -> tuple[Tensor, int, int]:
        """Batch k of an epoch: the summed loss over its target tokens, their number, and the
        number of sequences (rows) in the batch."""

    def validate(self, model: nn.Module) -> dict[str, float]:
        """Validation metrics, ``best_metric`` among them."""

    def state_dict(self) -> dict[str, Any]:
        """Whatever the task carries between batches, for an exact resume."""

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class StatelessTask:
    """For a task that carries nothing from one batch to the next (all but the stream-mode
    language model): nothing to reset at an epoch's start, an empty state in checkpoints."""

    def start_epoch(self, epoch: int) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


# train.optimizer (keys.OPTIMIZERS) -> the torch.optim optimizer (momentum and nesterov are SGD
# with momentum)
OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "sgd": lambda params, cfg, **kw: torch.optim.SGD(params, **kw),
    "momentum": lambda params, cfg, **kw: torch.optim.SGD(params, momentum=cfg.momentum, **kw),
    "nesterov": lambda params, cfg, **kw: torch.optim.SGD(
        params, momentum=cfg.momentum, nesterov=True, **kw
    ),
    "adagrad": lambda params, cfg, **kw: torch.optim.Adagrad(params, **kw),
    "adadelta": lambda params, cfg, **kw: torch.optim.Adadelta(params, **kw),
    "rmsprop": lambda params, cfg, **kw: torch.optim.RMSprop(params, **kw),
    "adam": lambda params, cfg, **kw: torch.optim.Adam(params, fused=fusable(params), **kw),
    "adamw": lambda params, cfg, **kw: torch.optim.AdamW(params, fused=fusable(params), **kw),
}


def fusable(groups: list[dict[str, Any]]) -> bool | None:
    """Whether torch's fused Adam kernel can update these parameter groups' tensors: it updates
    them all in one kernel, where the default loops over them one by one; a 10.6M-parameter
    seq2seq step ran 5% faster with it on 2 CPU cores (benchmarks/RESULTS.md). None leaves
    torch's default."""
    tensors = [p for group in groups for p in group["params"]]
    supported = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in tensors)
    return True if tensors and supported else None


def make_optimizer(cfg: TrainConfig, groups: list[dict[str, Any]]) -> torch.optim.Optimizer:
    """``train.optimizer`` -> its torch.optim optimizer over parameter groups (dicts with
    "params"), with lr and weight decay."""
    return OPTIMIZERS[cfg.optimizer](groups, cfg, lr=cfg.lr, weight_decay=cfg.weight_decay)


def learning_rate(cfg: TrainConfig, epoch: int, step: int, plateau_scale: float) -> float:
    """``lr * schedule(epoch) * plateau_scale * warmup(step)``.

    epoch_decay (Zaremba et al. 2014): x lr_decay after each epoch from ``decay_start`` on, so
    epochs 1..decay_start run at lr (epochs counted from 1). Warmup: linear from lr/warmup_steps.
    """
    rate = cfg.lr * plateau_scale
    if cfg.lr_schedule == "epoch_decay":
        rate *= cfg.lr_decay ** max(0, epoch + 1 - cfg.decay_start)
    if cfg.warmup_steps and step < cfg.warmup_steps:
        rate *= (step + 1) / cfg.warmup_steps
    return rate


def rng_state(device: torch.device) -> dict[str, Any]:
    state = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


class Trainer:
    def __init__(
        self,
        task: TrainingTask,
        cfg: TrainConfig,
        run: RunDir | None,
        env: Distributed,
        device: torch.device,
        groups: list[dict[str, Any]] | None = None,
    ) -> None:
        """``groups``: the optimizer's parameter groups, each with its ``lr_scale`` and the
        epoch from which it trains (``unfreeze_epoch``; ``transfer.parameter_groups``); by
        default one group of every trainable parameter."""
        retain_freed_memory()
        self.task, self.cfg, self.run, self.env, self.device = task, cfg, run, env, device
        self.precision = effective_precision(cfg.precision, device)
        if groups is None:
            trainable = [p for p in task.model.parameters() if p.requires_grad]
            groups = [{"params": trainable, "lr_scale": 1.0, "unfreeze_epoch": 0}]
        self.gradual = any(g["unfreeze_epoch"] > 0 for g in groups)
        if self.gradual and env.enabled:
            raise UserError(
                "train.gradual_unfreezing runs in one process (DistributedDataParallel needs "
                "every parameter's gradient in every step); run it without torchrun"
            )
        self.model = wrap_model(task.model, env, device)
        self.params = [p for g in groups for p in g["params"]]
        self.optimizer = make_optimizer(cfg, groups)
        self.scaler = torch.amp.GradScaler(device.type, enabled=cfg.precision == "fp16")
        self.epoch, self.batch, self.step = 0, 0, 0
        self.best, self.bad_epochs, self.plateau_scale = math.inf, 0, 1.0
        self.epoch_loss, self.epoch_tokens = 0.0, 0
        # Records are written with each checkpoint, and a checkpoint counts the records written
        # up to it: a resumed run drops any written after it, so no step is logged twice.
        self.pending: list[dict[str, Any]] = []
        self.metrics_written = 0
        self.writer = self._tensorboard() if cfg.tensorboard and run else None

    def _tensorboard(self):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise UserError(
                "train.tensorboard: needs the tensorboard package (pip install tensorboard)"
            ) from None
        return SummaryWriter(str(self.run.file(TENSORBOARD_DIR)))

    # -- checkpoints ------------------------------------------------------------------------
    def trainer_state(self) -> dict[str, Any]:
        mine = {"rng": rng_state(self.device), "task": self.task.state_dict()}
        ranks = [mine] * self.env.world_size
        if self.env.enabled:
            dist.all_gather_object(ranks, mine)
        return {
            "position": {"epoch": self.epoch, "batch": self.batch, "step": self.step},
            "best": self.best,
            "bad_epochs": self.bad_epochs,
            "plateau_scale": self.plateau_scale,
            "epoch_loss": self.epoch_loss,
            "epoch_tokens": self.epoch_tokens,
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "world_size": self.env.world_size,
            "ranks": ranks,
            "metrics_written": self.metrics_written,
        }

    def checkpoint(self) -> None:
        self.flush_metrics()
        state = self.trainer_state()  # a collective under DDP: every rank takes part
        if self.run:
            self.run.save_checkpoint(self.step, self.task.model.state_dict(), state)

    def resume(self, model_state: dict[str, Tensor], state: dict[str, Any]) -> None:
        if state["world_size"] != self.env.world_size:
            raise UserError(
                f"checkpoint was written by {state['world_size']} process(es); "
                f"resume with the same number (now {self.env.world_size})"
            )
        self.task.model.load_state_dict(model_state)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        position = state["position"]
        self.epoch, self.batch, self.step = position["epoch"], position["batch"], position["step"]
        self.best, self.bad_epochs = state["best"], state["bad_epochs"]
        self.plateau_scale = state["plateau_scale"]
        self.epoch_loss, self.epoch_tokens = state["epoch_loss"], state["epoch_tokens"]
        mine = state["ranks"][self.env.rank]
        self.task.load_state_dict(mine["task"])
        set_rng_state(mine["rng"], self.device)
        self.metrics_written = state["metrics_written"]
        if self.run:
            self.run.keep_metrics(self.metrics_written)

    # -- metrics ----------------------------------------------------------------------------
    def log(self, record: dict[str, Any]) -> None:
        self.pending.append(record)
        if self.writer:
            for key, value in record.items():
                if key not in ("kind", "step", "epoch") and isinstance(value, (int, float)):
                    self.writer.add_scalar(f"{record['kind']}/{key}", value, self.step)

    def flush_metrics(self) -> None:
        if self.run:
            for record in self.pending:
                self.run.append_metrics(record)
        self.metrics_written += len(self.pending)
        self.pending = []

    # -- the loop ---------------------------------------------------------------------------
    def train_step(self, k: int) -> tuple[float, int, float]:
        lr = learning_rate(self.cfg, self.epoch, self.step, self.plateau_scale)
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        with autocast(self.precision, self.device):
            loss_sum, tokens, sequences = self.task.batch_loss(self.model, self.epoch, k)
        loss = loss_sum / (tokens if self.cfg.loss_average == "token" else sequences)
        value = loss_sum.item() / tokens
        if not math.isfinite(value):
            raise TrainingDiverged(
                f"step {self.step + 1}: the loss is {value}; stopped. The last good "
                "checkpoint is kept; try a smaller train.lr or train.clip_norm"
            )
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        if self.cfg.clip_value is not None:
            nn.utils.clip_grad_value_(self.params, self.cfg.clip_value)
        norm = nn.utils.clip_grad_norm_(self.params, self.cfg.clip_norm or math.inf).item()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        return value * tokens, tokens, norm

    def run_epoch(self) -> float:
        """Train from ``self.batch`` to the end of the epoch; returns the seconds it took."""
        total = self.task.num_batches()
        if self.batch == 0:
            self.task.start_epoch(self.epoch)
        if self.gradual:  # gradual unfreezing: the groups whose epoch has come train
            for group in self.optimizer.param_groups:
                for p in group["params"]:
                    p.requires_grad_(self.epoch >= group["unfreeze_epoch"])
        start, tokens_before = time.perf_counter(), self.epoch_tokens
        bar = tqdm(
            total=total,
            initial=self.batch,
            desc=f"epoch {self.epoch + 1}/{self.cfg.epochs}",
            disable=None if (self.cfg.progress and self.env.is_main) else True,
            leave=False,
        )
        for k in range(self.batch, total):
            loss_sum, tokens, norm = self.train_step(k)
            self.step, self.batch = self.step + 1, k + 1
            self.epoch_loss += loss_sum
            self.epoch_tokens += tokens
            self.log(
                {
                    "kind": "step",
                    "step": self.step,
                    "loss": loss_sum / tokens,
                    "grad_norm": norm,
                    "lr": self.optimizer.param_groups[0]["lr"],
                }
            )
            bar.update(1)
            if self.step % self.cfg.log_every == 0:
                bar.set_postfix(loss=f"{loss_sum / tokens:.3f}", norm=f"{norm:.2f}")
            if self.cfg.checkpoint_every and self.step % self.cfg.checkpoint_every == 0:
                self.checkpoint()
            if self.cfg.max_steps and self.step >= self.cfg.max_steps:
                break
        bar.close()
        seconds = time.perf_counter() - start
        self.tokens_per_second = (
            (self.epoch_tokens - tokens_before) * self.env.world_size / max(seconds, 1e-9)
        )
        return seconds

    def end_epoch(self, seconds: float) -> bool:
        """Validate, keep the best weights, decay the rate; False when training should stop
        (early stopping, or ``target_score`` reached)."""
        metrics = self.task.validate(self.task.model)
        value = metrics[self.task.best_metric]
        score = -value if self.task.higher_is_better else value  # self.best: lower is better
        if score < self.best:
            self.best, self.bad_epochs = score, 0
            if self.run:
                self.run.save_model(self.task.model.state_dict())
        else:
            self.bad_epochs += 1
            if self.cfg.lr_schedule == "plateau" and self.bad_epochs > self.cfg.plateau_patience:
                self.plateau_scale *= self.cfg.lr_decay
        train_loss = self.epoch_loss / max(self.epoch_tokens, 1)
        record = {
            "kind": "epoch",
            "epoch": self.epoch + 1,
            "step": self.step,
            "train_loss": train_loss,
            "train_ppl": math.exp(min(train_loss, 50)),
            **{f"valid_{k}": v for k, v in metrics.items()},
            "lr": self.optimizer.param_groups[0]["lr"],
            "seconds": seconds,
            "tokens_per_s": self.tokens_per_second,
        }
        self.log(record)
        if self.env.is_main:
            tqdm.write(
                " | ".join(
                    f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                    for k, v in record.items()
                    if k != "kind"
                )
            )
        self.epoch, self.batch, self.epoch_loss, self.epoch_tokens = self.epoch + 1, 0, 0.0, 0
        self.checkpoint()
        patience = self.cfg.early_stopping
        target = self.cfg.target_score
        reached = target is not None and (
            value >= target if self.task.higher_is_better else value <= target
        )
        return not (reached or (patience is not None and self.bad_epochs >= patience))

    def fit(self) -> dict[str, Any]:
        """Train to the end (epochs, max_steps or early stopping); returns a summary."""
        start = time.perf_counter()
        while self.epoch < self.cfg.epochs:
            seconds = self.run_epoch()
            go_on = self.end_epoch(seconds)
            if not go_on or (self.cfg.max_steps and self.step >= self.cfg.max_steps):
                break
        digests = gather_digests(self.task.model, self.env)
        best = -self.best if self.task.higher_is_better else self.best
        summary = {
            "kind": "summary",
            "step": self.step,
            "epochs": self.epoch,
            f"best_valid_{self.task.best_metric}": best,
            "seconds": time.perf_counter() - start,
            "world_size": self.env.world_size,
            "weights_digests": digests,
        }
        self.log(summary)
        self.flush_metrics()
        if self.writer:
            self.writer.close()
        return summary
