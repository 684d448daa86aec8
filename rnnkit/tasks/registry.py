"""The one list of tasks, and the config schema composed from their keys.

    from rnnkit.tasks import registry
    registry.register(my_task)           # a base.Task: a task defined outside rnnkit
    cfg = registry.load_config("configs/ptb-small.yaml", ["train.lr=0.5"])
    registry.get(cfg.task).trainer_side().build_model(cfg, vocabularies)

Every config section holds the keys of the shared machinery (``COMMON``: the batch size, the
recurrent stack, the trainer) and those of every registered task, each marked with the tasks
it applies to (``config.schema``).
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any

from rnnkit import config
from rnnkit.data.batch_order import BatchKeys
from rnnkit.errors import UserError
from rnnkit.models.keys import RecurrentKeys
from rnnkit.tasks import classify, lm, long_range, tag, translate
from rnnkit.tasks.base import Task
from rnnkit.training.keys import TrainKeys

COMMON: config.Groups = {"data": (BatchKeys,), "model": (RecurrentKeys,), "train": (TrainKeys,)}

TASKS: dict[str, Task] = {
    task.name: task
    for task in (lm.TASK, translate.TASK, *long_range.TASKS, classify.TASK, tag.TASK)
}


def register(task: Task) -> None:
    """Add a task (or replace the one of the same name): its config keys, run type, training,
    graphs and endpoints are then rnnkit's like any built-in task's."""
    TASKS[task.name] = task
    _schema.cache_clear()


def unregister(name: str) -> None:
    """Remove a task (what ``register`` added)."""
    TASKS.pop(name, None)
    _schema.cache_clear()


def get(name: str) -> Task:
    if name not in TASKS:
        raise UserError(f"task: one of {', '.join(TASKS)}, not {name!r}")
    return TASKS[name]


@functools.cache
def _schema(tasks: tuple[Task, ...]) -> type[config.Config]:
    return config.schema(COMMON, {task.name: task.keys for task in tasks})


def config_class() -> type[config.Config]:
    """The ``Config`` of the registered tasks (``config.schema``)."""
    return _schema(tuple(TASKS.values()))


def section(name: str) -> type:
    """A section's class (``data``, ``model``, ``train``, ``decode``) with every task's keys."""
    return config_class().__dataclass_fields__[name].type


def config_from_dict(tree: Any, source: str = "config") -> config.Config:
    return config.config_from_dict(config_class(), tree, source)


def load_config(path: str | Path | None, overrides: list[str] = ()) -> config.Config:
    """A YAML config (or the defaults when path is None) with overrides, checked."""
    return config.load_config(config_class(), path, overrides)


def config_keys(name: str) -> dict[str, list[str]]:
    """Each section's keys that apply to task ``name``."""
    return {
        section: [f.name for f in fields if name in f.metadata["tasks"]]
        for section, fields in (
            (s, dataclasses.fields(section_type))
            for s, section_type in ((s, section(s)) for s in config.SECTIONS)
        )
    }


def run_files() -> tuple[str, ...]:
    """Every task's run-directory files: what ``--overwrite`` may replace."""
    return tuple(dict.fromkeys(name for t in TASKS.values() for name in t.run_files))
