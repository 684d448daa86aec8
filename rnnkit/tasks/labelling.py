"""What classify and tag share: ``POST /v1/predict`` in ``rnnkit serve`` (classify: each
text's label and probabilities; tag: each token's tag)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from rnnkit.serve.batcher import Job
from rnnkit.serve.endpoints import Endpoint, as_dicts, joined, split
from rnnkit.serve.limits import Limits
from rnnkit.serve.schemas import Body, model_name, passages


class LabelOut(BaseModel):
    text: str
    label: str
    probabilities: dict[str, float]


class TaggedOut(BaseModel):
    tokens: list[str]
    tags: list[str]


class PredictResponse(BaseModel):
    model: str
    task: Literal["classify", "tag"]
    predictions: list[LabelOut] | list[TaggedOut]


def predict_request(limits: Limits, runs: dict[str, Any]) -> type[Body]:
    served = list(runs)
    Passages = passages(limits)

    class PredictRequest(Body):
        """``texts`` or ``sentences`` (the same: tag splits them at spaces)."""

        alternatives = ("texts", "sentences")
        model: model_name(served)
        texts: Passages = None
        sentences: Passages = None

        def inputs(self) -> list[str]:
            return self.texts if self.texts is not None else self.sentences

    return PredictRequest


def predict(run: Any, jobs: list[Job]) -> None:
    predictions = run.predict(joined(jobs))
    for job, mine in zip(jobs, split(predictions, jobs), strict=True):
        job.finish({"task": run.task, "predictions": as_dicts(mine)})


ENDPOINTS = (
    Endpoint(
        "predict",
        predict_request,
        PredictResponse,
        predict,
        "classify: each text's label and probabilities; tag: each token's tag.",
    ),
)
