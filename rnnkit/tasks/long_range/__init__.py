"""``task: adding`` and ``task: copy``: the long-range toy problems (Hochreiter & Schmidhuber
1997) that show why gated cells train where a vanilla RNN does not.

- ``keys.py``: their config keys; ``data.py``: the generated sequences;
- ``model.py``: ``LongRangeModel``; ``training.py``: the loss and scores of each;
- ``run.py``: ``rnnkit.load``'s ``LongRangeRun`` (evaluate).
"""

from rnnkit.tasks.base import Task
from rnnkit.tasks.long_range.keys import ADDING_KEYS, COPY_KEYS
from rnnkit.tasks.long_range.run import LongRangeRun

TASKS = (
    Task(
        name="adding",
        keys=ADDING_KEYS,
        run_type=LongRangeRun,
        training="rnnkit.tasks.long_range.training:ADDING",
        diagnosable=True,
    ),
    Task(
        name="copy",
        keys=COPY_KEYS,
        run_type=LongRangeRun,
        training="rnnkit.tasks.long_range.training:COPY",
        diagnosable=True,
    ),
)
