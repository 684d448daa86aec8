"""The typed requests and responses of ``rnnkit serve`` (pydantic), with the parameter names of
``rnnkit.load``'s methods. Requests are built per server (``request_models``): each cap of
``Limits`` is a bound in the schema, and ``model`` may only name a run served for that task."""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from .limits import Limits

SEED_MAX = 2**63 - 1


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


# -- responses -------------------------------------------------------------------------------
class ErrorDetail(BaseModel):
    code: str = Field(description="e.g. validation_error, not_found, too_many_requests")
    message: str


class ErrorBody(BaseModel):
    """Every error: ``{"error": {"code", "message"}}``."""

    error: ErrorDetail


class Health(BaseModel):
    status: Literal["ok"]
    models: int


class ModelInfo(BaseModel):
    name: str
    task: str
    cell: str
    num_layers: int
    hidden_size: int
    embedding_size: int
    parameters: int
    vocabulary_sizes: dict[str, int]


class ModelList(BaseModel):
    models: list[ModelInfo]


class GenerationOut(BaseModel):
    prompt: str
    text: str = Field(description="the prompt and its completion")
    completion: str
    token_ids: list[int]
    finish_reason: Literal["length", "eos", "time", "stop"]
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


# -- requests, shaped by the limits and the served models ------------------------------------
def request_models(limits: Limits, names: dict[str, list[str]]) -> dict[str, type[BaseModel]]:
    """The request body of each endpoint whose task has a served run: ``{"generate": ...}``.
    ``names``: the served runs' names per task."""
    Text = Annotated[str, StringConstraints(max_length=limits.input_chars)]
    Texts = Annotated[list[Text], Field(min_length=1, max_length=limits.inputs)]
    Beam = Annotated[int, Field(ge=1, le=limits.beam)]

    def model_name(*tasks: str) -> Any:
        served = tuple(n for t in tasks for n in names.get(t, []))
        return Literal[served] | None  # type: ignore[valid-type]

    class Body(Strict):
        model: Any = None

        def inputs(self) -> list[str]:
            raise NotImplementedError

    models: dict[str, type[BaseModel]] = {}
    if names.get("lm"):

        class GenerateRequest(Body):
            model: model_name("lm") = Field(None, description="may be left out with one lm run")
            prompt: Text | None = None
            prompts: Texts | None = None
            max_new_tokens: Annotated[int, Field(ge=1, le=limits.max_new_tokens)] = min(
                100, limits.max_new_tokens
            )
            temperature: Annotated[float, Field(ge=0, le=100, description="0: greedy")] = 1.0
            top_k: Annotated[int, Field(ge=0, le=1_000_000, description="0: off")] = 0
            top_p: Annotated[float, Field(gt=0, le=1, description="1: off")] = 1.0
            seed: Annotated[int, Field(ge=0, le=SEED_MAX)] | None = None
            num_samples: Annotated[int, Field(ge=1, le=limits.num_samples)] = 1
            beam: Beam = 1
            stop_at_eos: bool = False
            stream: bool = Field(False, description="answer with Server-Sent Events")

            @model_validator(mode="after")
            def one_kind_of_prompt(self):
                if (self.prompt is None) == (self.prompts is None):
                    raise ValueError("give prompt or prompts, not both and not neither")
                if len(self.inputs()) * self.num_samples > limits.inputs:
                    raise ValueError(f"prompts x num_samples: at most {limits.inputs}")
                if self.beam > 1 and (self.stream or self.num_samples > self.beam):
                    raise ValueError("beam search: no stream, and num_samples <= beam")
                return self

            def inputs(self) -> list[str]:
                return [self.prompt] if self.prompt is not None else list(self.prompts)

        class ScoreRequest(Body):
            model: model_name("lm") = None
            texts: Texts

            def inputs(self) -> list[str]:
                return self.texts

        models["generate"], models["score"] = GenerateRequest, ScoreRequest
    if names.get("translate"):

        class TranslateRequest(Body):
            model: model_name("translate") = None
            sentences: Texts
            beam: Beam | None = Field(None, description="default: the run's decode.beam_size")
            n_best: Beam = 1
            attention: bool = False
            length_penalty: Annotated[float, Field(ge=0, le=10)] | None = None

            @model_validator(mode="after")
            def n_best_within_beam(self):
                if self.beam is not None and self.n_best > self.beam:
                    raise ValueError("n_best: at most the beam")
                return self

            def inputs(self) -> list[str]:
                return self.sentences

        models["translate"] = TranslateRequest
    if names.get("classify") or names.get("tag"):

        class PredictRequest(Body):
            model: model_name("classify", "tag") = None
            texts: Texts | None = Field(None, description="classify (or tag: split at spaces)")
            sentences: Texts | None = Field(None, description="tag (or classify)")

            @model_validator(mode="after")
            def one_kind_of_input(self):
                if (self.texts is None) == (self.sentences is None):
                    raise ValueError("give texts or sentences, not both and not neither")
                return self

            def inputs(self) -> list[str]:
                return self.texts if self.texts is not None else self.sentences

        models["predict"] = PredictRequest
    return models
