"""``rnnkit serve`` for translate runs: ``POST /v1/translate`` (the n best with scores, and
attention matrices if asked)."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from pydantic import BaseModel, Field

from rnnkit.serve.batcher import Job
from rnnkit.serve.endpoints import Endpoint, joined, split, time_left
from rnnkit.serve.limits import Limits
from rnnkit.serve.schemas import Body, Bool, Float, beam, model_name, text


class HypothesisOut(BaseModel):
    text: str
    score: float
    token_ids: list[int]


class AttentionOut(BaseModel):
    weights: list[list[float]] = Field(description="weights[i][j]: target token i on source j")
    source_tokens: list[str]
    target_tokens: list[str]


class TranslationOut(BaseModel):
    source: str
    text: str
    hypotheses: list[HypothesisOut]
    attention: AttentionOut | None


class TranslateResponse(BaseModel):
    model: str
    translations: list[TranslationOut]


def translate_request(limits: Limits, runs: dict[str, Any]) -> type[Body]:
    """A sentence of at most ``decode.max_source_length`` - 1 characters fits every served run
    (a token has at least one character)."""
    served = list(runs)
    sources = min(r.cfg.decode.max_source_length - 1 for r in runs.values())
    Source, Beam = text(limits, min(limits.input_chars, sources)), beam(limits)

    class TranslateRequest(Body):
        """The n best of each sentence (at most the beam), best first."""

        model: model_name(served)
        sentences: Annotated[list[Source], Field(min_length=1, max_length=limits.inputs)]
        beam: Beam | None = Field(None, description="default: the run's decode.beam_size")
        n_best: Beam = Field(1, description="at most the beam")
        attention: Bool = False
        length_penalty: Float(ge=0, le=10) | None = None

        def inputs(self) -> list[str]:
            return self.sentences

    return TranslateRequest


def translate(run: Any, jobs: list[Job]) -> None:
    first = jobs[0].request
    beam = run.beam(first.beam)
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


ENDPOINTS = (
    Endpoint(
        "translate",
        translate_request,
        TranslateResponse,
        translate,
        "Translate sentences: the n best with scores, and attention matrices if asked.",
        key=lambda r: (r.beam, r.n_best, r.length_penalty),
    ),
)
