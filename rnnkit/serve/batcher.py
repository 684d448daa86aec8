"""Batching across requests: concurrent requests for one model ride in one model batch.

Each served run has a ``Batcher``: a bounded queue of ``Job``s and one worker thread. The
event loop collects a batch: the oldest waiting job, then every waiting job with the same
``key`` (the settings a batch must share, e.g. the beam size) until ``max_batch`` inputs or
``max_wait_ms`` pass. The batch runs on the worker thread, so the event loop goes on answering
(``/health`` included) while it decodes; the runner finishes every job of the batch from
there (``Job.finish``, ``Job.fail``, and ``Job.emit`` for a stream's events).

A job still waiting when its deadline is near is failed with ``Busy`` (429), and so is a job
that finds the queue full: the server never starts work it cannot finish in time.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from rnnkit.errors import UserError


class Busy(Exception):
    """The server cannot take the request now: answered 429 with ``Retry-After``."""


@dataclass(eq=False)
class Job:
    """One request waiting for, or riding in, a batch."""

    key: Hashable  # jobs with equal keys may share a batch
    request: Any  # the validated request body
    size: int  # the inputs (rows) it adds to a batch
    deadline: float  # time.monotonic() by which decoding must end
    loop: asyncio.AbstractEventLoop
    result: asyncio.Future = field(init=False)
    started: asyncio.Event = field(default_factory=asyncio.Event)
    events: asyncio.Queue | None = None  # a stream's (event, data) pairs, then None
    batch_size: int = 0  # the inputs of the batch it rode in
    gone: bool = False  # set by a streaming response whose client disconnected

    def __post_init__(self) -> None:
        self.result = self.loop.create_future()

    def _call(self, fn: Callable, *args: Any) -> None:
        self.loop.call_soon_threadsafe(fn, *args)

    def finish(self, value: Any) -> None:
        self._call(lambda: self.result.done() or self.result.set_result(value))
        if self.events is not None:
            self._call(self.events.put_nowait, None)

    def fail(self, error: BaseException) -> None:
        self._call(lambda: self.result.done() or self.result.set_exception(error))
        self._call(self.started.set)
        if self.events is not None:
            self._call(self.events.put_nowait, ("error", error))

    def emit(self, event: str, data: dict[str, Any]) -> None:
        self._call(self.events.put_nowait, (event, data))


Runner = Callable[[list[Job]], None]  # runs a batch on the worker thread, finishing each job


class Batcher:
    """The queue and worker of one served run. ``runners[endpoint]`` runs a batch of jobs whose
    key starts with that endpoint's name."""

    def __init__(self, runners: dict[str, Runner], limits: Any) -> None:
        self.runners, self.limits = runners, limits
        self.waiting: collections.deque[Job] = collections.deque()
        self.arrived = asyncio.Event()
        self.worker = ThreadPoolExecutor(1, thread_name_prefix="rnnkit-model")
        self.task: asyncio.Task | None = None

    def submit(self, job: Job) -> None:
        if len(self.waiting) >= self.limits.queue_size:
            raise Busy(f"the queue is full ({self.limits.queue_size} requests waiting)")
        self.waiting.append(job)
        self.arrived.set()

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._serve())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
        self.worker.shutdown(wait=True)

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            if batch:
                await loop.run_in_executor(self.worker, self._run, batch)

    async def _collect(self) -> list[Job]:
        """The next batch: the oldest job and the jobs that can join it within the wait."""
        while not self.waiting:
            self.arrived.clear()
            await self.arrived.wait()
        first = self.waiting.popleft()
        batch, size = [first], first.size
        until = time.monotonic() + self.limits.max_wait_ms / 1000
        while size < self.limits.max_batch:
            joining = [j for j in self.waiting if j.key == first.key]
            for job in joining:
                if size + job.size <= self.limits.max_batch:
                    self.waiting.remove(job)
                    batch.append(job)
                    size += job.size
            left = until - time.monotonic()
            if left <= 0 or size >= self.limits.max_batch:
                break
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), left)
            except asyncio.TimeoutError:
                pass
        return self._admit(batch)

    def _admit(self, batch: list[Job]) -> list[Job]:
        """The jobs that still have time to run; the others are failed with ``Busy``."""
        now, ready = time.monotonic(), []
        for job in batch:
            if job.deadline - now < 0.25 * self.limits.decode_share or job.gone:
                job.fail(Busy("waited too long in the queue"))
            else:
                ready.append(job)
        size = sum(j.size for j in ready)
        for job in ready:
            job.batch_size = size
            job.started.set()
        return ready

    def _run(self, batch: list[Job]) -> None:
        """Run a batch; a batch that one bad request spoils runs again job by job, so that
        only that request gets the error."""
        runner = self.runners[batch[0].key[0]]
        try:
            runner(batch)
        except UserError as e:
            if len(batch) == 1:
                batch[0].fail(e)
                return
            for job in batch:
                job.batch_size = job.size
                self._run([job])
        except Exception as e:  # a defect: the job gets a 500, the server goes on
            for job in batch:
                job.fail(e)
