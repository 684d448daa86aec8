"""Tasks: how each kind of data meets a model, the trainer and ``rnnkit.load``.

``TASKS`` is the one registry: ``config.task`` names an entry, and nothing else switches on
the name. ``base.py`` holds the interface every entry implements.
"""

from __future__ import annotations

from .base import Task
from .classify import Classification
from .lm import LanguageModelling
from .long_range import Adding, Copy
from .tag import Tagging
from .translate import Translation

TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        LanguageModelling(),
        Translation(),
        Adding(),
        Copy(),
        Classification(),
        Tagging(),
    )
}
