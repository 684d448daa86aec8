"""``rnnkit serve`` for lm runs: ``POST /v1/generate`` (sampling or beam search; ``"stream":
true`` answers with Server-Sent Events) and ``POST /v1/score`` (loss and perplexity)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from rnnkit.serve.batcher import Job
from rnnkit.serve.endpoints import Endpoint, as_dicts, joined, split, time_left
from rnnkit.serve.limits import Limits
from rnnkit.serve.schemas import (
    SEED_MAX,
    Body,
    Bool,
    Float,
    Int,
    beam,
    model_name,
    passages,
    text,
    texts,
)
from rnnkit.tasks.lm.run import FINISH_REASONS

SSE_EVENT = {  # one event of the stream
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {"enum": ["token", "done", "error"]},
        "data": {"type": "string", "contentMediaType": "application/json"},
    },
}
STREAM_DOC = (
    'With "stream": true: Server-Sent Events, one `token` event per step, '
    '`data: {"index", "text"}`, then one `done` event per row, '
    '`data: {"index", "finish_reason", "text", "completion", "tokens"}`.'
)


class GenerationOut(BaseModel):
    prompt: str
    text: str = Field(description="the prompt and its completion")
    completion: str
    token_ids: list[int]
    finish_reason: Literal[tuple(FINISH_REASONS)]  # type: ignore[valid-type]
    prompt_index: int
    sample_index: int
    score: float | None = Field(description="beam search: length-normalised log-probability")


class GenerateResponse(BaseModel):
    model: str
    generations: list[GenerationOut]


class TextScoreOut(BaseModel):
    text: str
    loss: float = Field(description="mean negative log-likelihood per token, nats")
    ppl: float
    tokens: int


class ScoreResponse(BaseModel):
    model: str
    scores: list[TextScoreOut]


def generate_request(limits: Limits, runs: dict[str, Any]) -> type[Body]:
    served = list(runs)
    Text, Texts, Beam = text(limits), texts(limits), beam(limits)

    class GenerateRequest(Body):
        """``prompt`` or ``prompts``. With ``beam`` > 1: beam search, the
        min(num_samples, beam) best beams of each prompt (a stream then sends each row's
        text in one ``token`` event, then ``done``)."""

        alternatives = ("prompt", "prompts")
        model: model_name(served)
        prompt: Text = None
        prompts: Texts = None
        max_new_tokens: Int(ge=1, le=limits.max_new_tokens) = min(100, limits.max_new_tokens)
        temperature: Float(ge=0, le=100, description="0: greedy") = 1.0
        top_k: Int(ge=0, le=1_000_000, description="0: off") = 0
        top_p: Float(gt=0, le=1, description="1: off") = 1.0
        seed: Int(ge=0, le=SEED_MAX) | None = None
        num_samples: Int(ge=1, le=limits.num_samples) = 1
        beam: Beam = 1
        stop_at_eos: Bool = False
        stream: Bool = Field(False, description="answer with Server-Sent Events")

        def inputs(self) -> list[str]:
            return [self.prompt] if self.prompt is not None else list(self.prompts)

        def rows_per_input(self) -> int:
            return min(self.num_samples, self.beam) if self.beam > 1 else self.num_samples

    return GenerateRequest


def score_request(limits: Limits, runs: dict[str, Any]) -> type[Body]:
    served = list(runs)
    Passages = passages(limits)

    class ScoreRequest(Body):
        model: model_name(served)
        texts: Passages

        def inputs(self) -> list[str]:
            return self.texts

    return ScoreRequest


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


ENDPOINTS = (
    Endpoint(
        "generate",
        generate_request,
        GenerateResponse,
        generate,
        "Continue prompts: sampling (temperature, top-k, top-p, seed) or beam search.",
        key=lambda r: (r.stream, r.beam, r.num_samples, r.stop_at_eos),
        responses={200: {"content": {"text/event-stream": {"schema": SSE_EVENT}},
                         "description": STREAM_DOC}},
        streams=True,
    ),
    Endpoint(
        "score",
        score_request,
        ScoreResponse,
        score,
        "Loss (nats per token) and perplexity of each text.",
    ),
)  # fmt: skip
