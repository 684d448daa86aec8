"""The run configuration's schema machinery: one YAML file, every key overridable on the command
line. This module knows no task and no key beyond the root ones; the keys are declared where the
code that reads them lives, and the task registry (``tasks/registry.py``) composes them.

A *key group* is a small dataclass of keys (``key(default, choices=..., at_least=...)``) that
one piece of code reads: the trainer's ``train`` keys (``training/keys.py``), the recurrent
stack's ``model`` keys (``models/keys.py``), a tokenizer's ``data`` keys, a task's own keys
(``tasks/<task>/keys.py``). ``schema(common, tasks)`` composes the groups into one ``Config``
class, a tree of dataclasses (``data``, ``model``, ``train``, ``decode`` sections), each key
marked with the tasks whose groups hold it. ``config_from_dict(schema, tree, source)`` then
checks a whole tree before anything is built or written:

- every key exists (with a suggestion for a mistyped one) and has its type;
- a choice key holds one of the names the code that implements it knows;
- a number lies in its range (sizes and counts >= 1, probabilities in [0, 1), learning rates
  > 0, ...);
- a key that does not apply to the run's task is not set (a key left at its default is fine).

Each failure is a one-line ``UserError`` naming the file and the key::

    configs/ptb-small.yaml: unknown key 'train.lr_decya' (did you mean 'train.lr_decay'?)
    command line: key 'model.hidden_size' must be >= 1, got -3
    configs/ptb-small.yaml: key 'model.bridge' is for translate runs, not task 'lm'

``read_yaml`` is the one reader of YAML files (configs and run directories' ``config.yaml``).
A run directory stores ``run_config(cfg)``: the root keys, ``config_version`` and only the keys
that apply to the run's task.
"""

from __future__ import annotations

import dataclasses
import difflib
import operator
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import UserError
from .textio import read_text

# The format of a run directory's config.yaml; a newer one than this code knows is refused.
CONFIG_VERSION = 1

SECTIONS = ("data", "model", "train", "decode")

# The composed section types are built at run time (``schema``); these names are for annotations.
Section = Any
DataConfig = ModelConfig = TrainConfig = DecodeConfig = Section


def key(
    default: Any,
    *,
    choices: Iterable[str] | None = None,
    at_least: float | None = None,
    above: float | None = None,
    at_most: float | None = None,
    below: float | None = None,
) -> Any:
    """A config key: its default, the names it may take (``choices``), and the range a number
    must lie in (``at_least`` / ``at_most`` inclusive, ``above`` / ``below`` exclusive)."""
    bounds = {"at_least": at_least, "above": above, "at_most": at_most, "below": below}
    metadata = {"bounds": bounds, "choices": None if choices is None else tuple(choices)}
    return field(default=default, metadata=metadata)


COUNT = {"at_least": 1}  # sizes, counts and lengths
NON_NEGATIVE = {"at_least": 0}
POSITIVE = {"above": 0}
DROPOUT = {"at_least": 0, "below": 1}  # a probability that must leave something
PROBABILITY = {"at_least": 0, "at_most": 1}

Groups = dict[str, tuple[type, ...]]  # section -> key groups (dataclasses)


@dataclass
class Config:
    """The root of every config: the task, the run directory, the seed; ``schema`` adds the
    sections."""

    task: str = ""  # one of the registry's tasks (``schema`` sets the choices and default)
    run_dir: str = "runs/default"
    seed: int = key(1234, at_least=0)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _section(name: str, groups: list[type], tasks_of: dict[type, tuple[str, ...]]) -> type:
    """One section's dataclass: the fields of its groups, each marked with its groups' tasks."""
    fields, seen = [], {}
    for group in groups:
        hints = typing.get_type_hints(group)
        for f in dataclasses.fields(group):
            if f.name in seen:
                raise TypeError(f"config: key '{name}.{f.name}' declared by {seen[f.name]} "
                                f"and {group.__name__}")  # fmt: skip
            seen[f.name] = group.__name__
            metadata = dict(f.metadata, tasks=tasks_of[group])
            fields.append((f.name, hints[f.name], field(default=f.default, metadata=metadata)))
    return dataclasses.make_dataclass(f"{name.capitalize()}Config", fields)


def schema(common: Groups, tasks: dict[str, Groups]) -> type[Config]:
    """The ``Config`` class of these tasks: the root keys, and in each section the ``common``
    groups (every task's), then each task's own groups, in order. A group several tasks name is
    one group, its keys applying to each of them."""
    names = tuple(tasks)
    tasks_of: dict[type, tuple[str, ...]] = {}
    ordered: dict[str, list[type]] = {s: [] for s in SECTIONS}
    for section in SECTIONS:
        for group in common.get(section, ()):
            tasks_of[group] = names
            ordered[section].append(group)
        for task, groups in tasks.items():
            for group in groups.get(section, ()):
                if group not in tasks_of:
                    tasks_of[group] = ()
                    ordered[section].append(group)
                if task not in tasks_of[group]:
                    tasks_of[group] += (task,)
    root = [
        ("task", str, field(default=names[0], metadata={"choices": names, "tasks": names})),
        *[(f.name, f.type, field(default=f.default, metadata=dict(f.metadata, tasks=names)))
          for f in dataclasses.fields(Config) if f.name != "task"],
    ]  # fmt: skip
    for section in SECTIONS:
        kind = _section(section, ordered[section], tasks_of)
        root.append((section, kind, field(default_factory=kind)))
    return dataclasses.make_dataclass("Config", root, bases=(Config,))


def _check_type(value: Any, annotation: Any, where: str) -> Any:
    """Return value as the annotated type (int -> float allowed), or raise UserError."""
    options = (
        typing.get_args(annotation) if isinstance(annotation, types.UnionType) else (annotation,)
    )
    if value is None:
        if type(None) in options:
            return None
        raise UserError(f"{where}: must not be null")
    for option in options:
        if option is bool and isinstance(value, bool):
            return value
        if option is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if option is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if option is str and isinstance(value, str):
            return value
        if typing.get_origin(option) is list and isinstance(value, list):
            (item,) = typing.get_args(option)
            return [_check_type(v, item, f"{where}, item {i + 1}") for i, v in enumerate(value)]
    names = " or ".join("null" if o is type(None) else o.__name__ for o in options)
    raise UserError(f"{where}: expected {names}, got {value!r}")


# bound name -> (the test a value must pass, how the message writes it)
_BOUNDS = {
    "at_least": (operator.ge, ">="),
    "above": (operator.gt, ">"),
    "at_most": (operator.le, "<="),
    "below": (operator.lt, "<"),
}


def _check_range(value: Any, bounds: dict[str, float | None], where: str) -> None:
    """Raise UserError unless a number lies within all of its bounds (null passes, NaN fails)."""
    if value is None or isinstance(value, (bool, str)):
        return
    rules = [(name, bound) for name, bound in bounds.items() if bound is not None]
    if value != value or not all(_BOUNDS[name][0](value, bound) for name, bound in rules):
        wanted = " and ".join(f"{_BOUNDS[name][1]} {bound}" for name, bound in rules)
        raise UserError(f"{where} must be {wanted}, got {value!r}")


def _build(cls: type, values: Any, source: str, prefix: str = "") -> Any:
    if not isinstance(values, dict):
        where = prefix.rstrip(".") or "the file"
        raise UserError(f"{source}: '{where}' must be a mapping of keys")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for name_in_file, value in values.items():
        name = f"{prefix}{name_in_file}"
        if name_in_file not in fields:
            known = [f"{prefix}{k}" for k in fields]
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise UserError(f"{source}: unknown key '{name}'{hint}")
        where = f"{source}: key '{name}'"
        if dataclasses.is_dataclass(hints[name_in_file]):
            kwargs[name_in_file] = _build(hints[name_in_file], value or {}, source, f"{name}.")
            continue
        checked = _check_type(value, hints[name_in_file], where)
        choices = fields[name_in_file].metadata.get("choices")
        if choices is not None and checked is not None and checked not in choices:
            raise UserError(f"{where} must be one of {', '.join(choices)}, got {value!r}")
        _check_range(checked, fields[name_in_file].metadata.get("bounds", {}), where)
        kwargs[name_in_file] = checked
    return cls(**kwargs)


def _applies(f: dataclasses.Field, task: str) -> bool:
    return task in f.metadata.get("tasks", (task,))


def task_keys(cfg: Config) -> dict[str, dict[str, Any]]:
    """Every section's keys that apply to ``cfg.task``, with their values."""
    return {
        section: {
            f.name: getattr(getattr(cfg, section), f.name)
            for f in dataclasses.fields(getattr(cfg, section))
            if _applies(f, cfg.task)
        }
        for section in SECTIONS
    }


def _check_task_keys(cfg: Config, source: str) -> None:
    """A key set away from its default must apply to the run's task."""
    for section in SECTIONS:
        values, defaults = getattr(cfg, section), type(getattr(cfg, section))()
        for f in dataclasses.fields(values):
            if not _applies(f, cfg.task) and getattr(values, f.name) != getattr(defaults, f.name):
                raise UserError(
                    f"{source}: key '{section}.{f.name}' is for {', '.join(f.metadata['tasks'])} "
                    f"runs, not task {cfg.task!r}"
                )


def run_config(cfg: Config) -> dict[str, Any]:
    """What a run directory's config.yaml holds: the version, the root keys, and each section's
    keys that apply to the task."""
    root = {"config_version": CONFIG_VERSION, "task": cfg.task, "run_dir": cfg.run_dir}
    sections = {name: keys for name, keys in task_keys(cfg).items() if keys}
    return root | {"seed": cfg.seed} | sections


def _apply_override(tree: dict[str, Any], override: str) -> None:
    if "=" not in override:
        raise UserError(f"override {override!r}: expected section.key=value")
    name, text = override.split("=", 1)
    try:
        value = yaml.safe_load(text) if text else ""
    except yaml.YAMLError:
        value = text
    *parents, leaf = name.strip().split(".")
    node = tree
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise UserError(f"override {override!r}: '{part}' is not a section")
    node[leaf] = value


def config_from_dict(kind: type[Config], tree: Any, source: str = "config") -> Config:
    """The checked config (of the ``schema`` class ``kind``) of a YAML tree: a recipe, or a run
    directory's ``run_config``."""
    if not isinstance(tree, dict):
        raise UserError(f"{source}: the file must be a mapping of keys")
    tree = dict(tree)
    version = tree.pop("config_version", CONFIG_VERSION)
    if not isinstance(version, int) or isinstance(version, bool) or version > CONFIG_VERSION:
        raise UserError(
            f"{source}: config_version {version!r} is newer than this rnnkit reads "
            f"({CONFIG_VERSION}); upgrade rnnkit"
        )
    cfg = _build(kind, tree, source)
    _check_task_keys(cfg, source)
    return cfg


def override_config(cfg: Config, overrides: Iterable[str]) -> Config:
    """``cfg`` with ``section.key=value`` overrides applied (and checked)."""
    tree = cfg.to_dict()
    for override in overrides:
        _apply_override(tree, override)
    return config_from_dict(type(cfg), tree, "command line")


def read_yaml(path: str | Path, missing: str = "no such config file") -> Any:
    """A YAML file's tree; a missing, unreadable (``textio.read_text``) or invalid file is a
    one-line UserError naming the file (and the line of a syntax error)."""
    if not Path(path).exists():
        raise UserError(f"{path}: {missing}")
    text = read_text(path, allow_empty=True)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise UserError(f"{where}: invalid YAML ({getattr(e, 'problem', e)})") from None


def load_config(
    kind: type[Config], path: str | Path | None, overrides: Iterable[str] = ()
) -> Config:
    """Read a YAML config (or start from the defaults when path is None), apply overrides, and
    check the result against the ``schema`` class ``kind``."""
    tree: Any = {}
    source = "command line"
    if path is not None:
        source = str(path)
        tree = read_yaml(path) or {}
        if not isinstance(tree, dict):
            raise UserError(f"{path}: the file must be a mapping of keys")
    for override in overrides:
        _apply_override(tree, override)
    return config_from_dict(kind, tree, source)
