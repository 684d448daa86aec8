"""How a batch of requests becomes one call to the run's ``rnnkit.load`` methods, and back.

Every runner takes the jobs of one batch (``batcher.Job``; their keys are equal, so they share
the settings the call takes once), joins their inputs in order, makes one call, and hands
each job its own slice of the answer. Settings that may differ per input (``max_new_tokens``,
``temperature``, ``top_k``, ``top_p``, ``seed``, ``attention``) are passed per input; since
every row draws from its own seeded generator, a request gets the same result batched as
alone. Decoding ends at the earliest deadline of the batch.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Hashable, Sequence
from typing import Any

from .batcher import Job


def batch_key(endpoint: str, request: Any) -> Hashable:
    """The settings a batch must share: the endpoint and what its call takes once."""
    if endpoint == "generate":
        return (endpoint, request.stream, request.beam, request.num_samples, request.stop_at_eos)
    if endpoint == "translate":
        return (endpoint, request.beam, request.n_best, request.length_penalty)
    return (endpoint,)


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


def generate(run: Any, jobs: list[Job]) -> None:
    first = jobs[0].request
    settings = {
        name: joined(jobs, name) for name in ("max_new_tokens", "temperature", "top_k", "top_p")
    }
    options = dict(
        settings,
        seed=joined(jobs, "seed"),
        num_samples=first.num_samples,
        stop_at_eos=first.stop_at_eos,
        time_limit=time_left(jobs),
    )
    if first.stream and first.beam == 1:
        stream(run, jobs, options)
        return
    generations = run.generate(joined(jobs), beam=first.beam, **options)
    for job, mine in zip(jobs, split(generations, jobs), strict=True):
        offset = mine[0].prompt_index if mine else 0
        for g in mine:
            g.prompt_index -= offset
        if job.events is None:
            job.finish({"generations": as_dicts(mine)})
            continue
        for index, g in enumerate(mine):  # a beam's text is known only at the end
            job.emit("token", {"index": index, "text": g.completion})
            job.emit("done", {"index": index, "finish_reason": g.finish_reason, "text": g.text,
                              "completion": g.completion, "tokens": len(g.token_ids)})  # fmt: skip
        job.finish({})


class GoneRows:
    """The rows whose client disconnected: ``generate_stream``'s ``stop``."""

    def __init__(self, owners: list[Job]) -> None:
        self.owners = owners

    def __contains__(self, row: object) -> bool:
        return isinstance(row, int) and self.owners[row].gone


def stream(run: Any, jobs: list[Job], options: dict[str, Any]) -> None:
    """Sampling, each step's tokens sent to their requests as ``token`` events; each row ends
    with a ``done`` event (its finish reason, whole text, completion and token count)."""
    prompts, k = joined(jobs), options["num_samples"]
    owners = [job for job in jobs for _ in job.request.inputs() for _ in range(k)]
    first_row = {id(job): owners.index(job) for job in jobs}
    counts, texts = [0] * len(owners), [""] * len(owners)
    steps = run.generate_stream(prompts, stop=GoneRows(owners), **options)
    for step in steps:
        for r, token in enumerate(step.token_ids):
            if token is None:
                continue
            job, index = owners[r], r - first_row[id(owners[r])]
            reason = step.finish_reasons[r]
            if reason != "eos":
                counts[r] += 1
                texts[r] += step.texts[r]
                job.emit("token", {"index": index, "text": step.texts[r]})
            if reason:
                text = run.join(prompts[r // k], texts[r])
                job.emit(
                    "done", {"index": index, "finish_reason": reason, "text": text,
                             "completion": texts[r], "tokens": counts[r]}
                )  # fmt: skip
    for job in jobs:
        job.finish({})


def score(run: Any, jobs: list[Job]) -> None:
    for job, mine in zip(jobs, split(run.score(joined(jobs)), jobs), strict=True):
        job.finish({"scores": as_dicts(mine)})


def translate(run: Any, jobs: list[Job]) -> None:
    first = jobs[0].request
    beam = first.beam or run.cfg.decode.beam_size
    translations = run.translate(
        joined(jobs),
        beam=beam,
        n_best=min(first.n_best, beam),
        attention=joined(jobs, "attention"),
        length_penalty=first.length_penalty,
        time_limit=time_left(jobs),
    )
    for job, mine in zip(jobs, split(translations, jobs), strict=True):
        job.finish({"translations": [dict(dataclasses.asdict(t), text=t.text) for t in mine]})


def predict(run: Any, jobs: list[Job]) -> None:
    predictions = run.predict(joined(jobs))
    for job, mine in zip(jobs, split(predictions, jobs), strict=True):
        job.finish({"task": run.task, "predictions": as_dicts(mine)})


RUNNERS = {"generate": generate, "score": score, "translate": translate, "predict": predict}
