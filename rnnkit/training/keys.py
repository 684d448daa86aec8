"""The ``train`` keys: what the trainer (``trainer.py``) and transfer (``transfer.py``) read.
``TrainKeys`` applies to every task; a task takes the other groups in its own key list."""

from __future__ import annotations

from dataclasses import dataclass

from rnnkit.config import COUNT, DROPOUT, NON_NEGATIVE, POSITIVE, key

# train.optimizer: SGD (momentum and nesterov are SGD with momentum) ... AdamW (trainer.OPTIMIZERS)
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "adadelta", "rmsprop", "adam", "adamw")
LR_SCHEDULES = ("none", "epoch_decay", "plateau")
PRECISIONS = ("fp32", "bf16", "fp16")  # fp16 on CUDA only
LOSS_AVERAGES = ("token", "sequence")  # what a step's loss is divided by


@dataclass
class TrainKeys:
    """Optimisation, schedule, precision and bookkeeping; the trainer reads only this."""

    epochs: int = key(10, **COUNT)
    max_steps: int | None = key(None, **COUNT)  # stop after this many optimizer steps
    optimizer: str = key("sgd", choices=OPTIMIZERS)
    lr: float = key(1.0, **POSITIVE)
    momentum: float = key(0.9, **DROPOUT)
    weight_decay: float = key(0.0, **NON_NEGATIVE)
    clip_norm: float | None = key(5.0, **POSITIVE)
    clip_value: float | None = key(None, **POSITIVE)
    lr_schedule: str = key("none", choices=LR_SCHEDULES)
    lr_decay: float = key(0.5, above=0, at_most=1)
    # epoch_decay: multiply by lr_decay after each epoch from this one on
    decay_start: int = key(4, **COUNT)
    plateau_patience: int = key(0, **NON_NEGATIVE)
    warmup_steps: int = key(0, **NON_NEGATIVE)
    # stop after this many epochs without a better valid loss
    early_stopping: int | None = key(None, **COUNT)
    # stop once the validation best_metric reaches this value
    target_score: float | None = key(None)
    # The loss a step minimises: "token", the mean over target tokens (pytorch/examples; PTB
    # there uses lr 20, clip 0.25), or "sequence", each sequence's summed loss averaged over the
    # batch (Zaremba et al. 2014's code; lr 1, clip 5). With bptt T the two differ by a factor T.
    loss_average: str = key("token", choices=LOSS_AVERAGES)
    precision: str = key("fp32", choices=PRECISIONS)
    device: str = key("auto")  # auto | cpu | cuda | cuda:N
    deterministic: bool = key(False)
    # optimizer steps between checkpoints; 0: at each epoch end
    checkpoint_every: int = key(0, **NON_NEGATIVE)
    log_every: int = key(100, **COUNT)
    progress: bool = key(True)
    tensorboard: bool = key(False)


@dataclass
class LabelSmoothingKeys:
    """Tasks whose loss is a cross-entropy over tokens or labels."""

    label_smoothing: float = key(0.0, **DROPOUT)


@dataclass
class FineTuningKeys:
    """A model transferred from an LM (``transfer.py``): the top encoder layer trains at lr / f,
    each lower one at a further / f (ULMFiT: 2.6); gradual unfreezing trains the head alone in
    epoch 1, then one more encoder layer, top down, each epoch."""

    discriminative_lr: float | None = key(None, at_least=1)
    gradual_unfreezing: bool = key(False)
