"""What a task adds to ``rnnkit serve``: its ``Endpoint``s (``POST /v1/<name>``), and the
helpers every endpoint's runner shares.

An endpoint says how its request body is shaped for this server (``request(limits, runs)``:
the caps of ``Limits`` as bounds in the schema, ``model`` one of the served runs), its
response model, and how a batch of requests becomes one call to the run's ``rnnkit.load``
methods and back (``run(run, jobs)``). Every runner takes the jobs of one batch
(``batcher.Job``; their keys are equal, so they share the settings the call takes once), joins
their inputs in order, makes one call, and hands each job its own slice of the answer.
Settings that may differ per input (``max_new_tokens``, ``temperature``, ``top_k``, ``top_p``,
``seed``, ``attention``) are passed per input; since every row draws from its own seeded
generator, a request gets the same result batched as alone. Decoding ends at the earliest
deadline of the batch.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Hashable, Sequence
from typing import Any

from pydantic import BaseModel

from rnnkit.serve.batcher import Job


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """``POST /v1/<name>``: ``request(limits, runs)`` builds the body's class for the served
    runs of the tasks that list this endpoint; ``run(run, jobs)`` answers a batch;
    ``key(request)``: the settings a batch must share; ``summary``: the OpenAPI description;
    ``responses``: more OpenAPI responses (by status); ``streams``: may answer with SSE."""

    name: str
    request: Callable[..., type[BaseModel]]
    response: type[BaseModel]
    run: Callable[[Any, list[Job]], None]
    summary: str
    key: Callable[[Any], Hashable] = lambda request: ()
    responses: dict[int, Any] = dataclasses.field(default_factory=dict)
    streams: bool = False

    def batch_key(self, request: Any) -> Hashable:
        return (self.name, *self.key(request))


def time_left(jobs: Sequence[Job]) -> float:
    return max(min(j.deadline for j in jobs) - time.monotonic(), 1e-3)


def split(items: Sequence[Any], jobs: Sequence[Job]) -> list[list[Any]]:
    """``items`` (``rows_per_input`` per input) in the jobs' order, cut into one slice per job."""
    slices, start = [], 0
    for job in jobs:
        end = start + job.size
        slices.append(list(items[start:end]))
        start = end
    return slices


def joined(jobs: Sequence[Job], name: str | None = None) -> list[Any]:
    """Every job's inputs in order, or with ``name`` that setting once per input."""
    return [
        getattr(job.request, name) if name else text
        for job in jobs
        for text in job.request.inputs()
    ]


def as_dicts(items: Sequence[Any]) -> list[dict[str, Any]]:
    return [dataclasses.asdict(item) for item in items]
