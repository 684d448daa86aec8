"""The Task interface: what a task says about itself, so that the config, ``rnnkit.load``,
training, the server and the export never switch on a task's name.

A ``Task`` is a description that imports no torch (an ONNX export decodes without it):

    name         the ``task:`` of a config
    keys         its config key groups per section (``tasks/<task>/keys.py``)
    run_type     the ``rnnkit.load`` object (``tasks/loaded.LoadedRun``), which also reads the
                 vocabularies a run keeps
    run_files    what a run directory holds besides the common files
    training     the torch side (``trainable.TaskTraining``): data, vocabularies, model,
                 training step, test scores; an object, or "module:attribute" imported when
                 first used
    graphs       "module:function" (or the function): a loaded run -> its ONNX ``GraphSpec``s
    endpoints    "module:attribute" (or the object): the ``serve.endpoints.Endpoint``s it adds
                 to ``rnnkit serve`` (the server imports them; the rest never does)
    diagnosable  one recurrent stack for ``rnnkit diagnose gradients``
    language_model  its runs are language models that transfer may start other tasks from
                 (``training/transfer.py``): a vocabulary ``.vocab``, an ``embedding`` and ``rnn``

The registry (``registry.py``) lists the tasks; ``registry.register(task)`` adds one.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any


def resolve(reference: Any) -> Any:
    """A "module:attribute" string imported (once: modules are cached), or the object itself."""
    if not isinstance(reference, str):
        return reference
    module, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module), attribute)


@dataclasses.dataclass(frozen=True, eq=False)  # one Task is one task: hashed by identity
class Task:
    name: str
    keys: dict[str, tuple[type, ...]]
    run_type: type
    training: Any
    run_files: tuple[str, ...] = ()
    graphs: Any = None
    endpoints: Any = ()
    diagnosable: bool = False
    language_model: bool = False

    def trainer_side(self) -> Any:
        """The torch side (``trainable.TaskTraining``)."""
        return resolve(self.training)

    def graph_specs(self, run: Any) -> list[Any]:
        """The ONNX graphs of a loaded run (``export.graphs.GraphSpec``)."""
        return resolve(self.graphs)(run) if self.graphs is not None else []

    def endpoint_list(self) -> list[Any]:
        return list(resolve(self.endpoints))
