"""The typed requests and responses of ``rnnkit serve`` (pydantic), with the parameter names of
``rnnkit.load``'s methods. Requests are built per server (``request_models``): each cap of
``Limits`` is a bound in the schema, and ``model`` may only name a run served for that task."""

from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    model_validator,
)

from ..api.lm import FINISH_REASONS
from .limits import Limits

SEED_MAX = 2**53  # the largest integer every JSON reader (JavaScript's included) keeps exact
# A character Python's str.split() does not split at (str.isspace), spelled out: JSON Schema's
# \S (ECMA-262) and Python's disagree on \x1c-\x1f, \x85 and others.
NOT_A_SPACE = (
    "[^\\t-\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"
)


def json_number(value: Any) -> Any:
    """Numbers are JSON numbers: not ``true``, not ``"4"`` (4.0 is the integer 4, as in JSON
    Schema)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("must be a number")
    return value


def Int(**bounds: Any) -> Any:
    """An integer field within ``bounds`` (``ge``, ``le``), written so that the schema says so."""
    return Annotated[int, Field(**bounds), BeforeValidator(json_number)]


def Float(**bounds: Any) -> Any:
    return Annotated[float, Field(**bounds), Strict()]


Bool = Annotated[bool, Strict()]


class Closed(BaseModel):
    """No unknown keys, no NaN or infinity, and no type coercion beyond JSON Schema's."""

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
    limits: dict[str, float] = Field(description="the server's caps (rnnkit serve --help)")


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
def alternatives_schema(schema: dict[str, Any], model: type[BaseModel]) -> None:
    """A body's ``alternatives`` in its schema: exactly one of them is required."""
    if model.alternatives:
        schema["oneOf"] = [{"required": [n]} for n in model.alternatives]


def request_models(
    limits: Limits, names: dict[str, list[str]], source_chars: int | None = None
) -> dict[str, type[BaseModel]]:
    """The request body of each endpoint whose task has a served run: ``{"generate": ...}``.
    ``names``: the served runs' names per task; ``source_chars``: the longest sentence every
    served translation run takes (a token has at least one character, so a sentence of at most
    ``decode.max_source_length`` - 1 characters always fits)."""
    Text = Annotated[str, StringConstraints(max_length=limits.input_chars)]
    Texts = Annotated[list[Text], Field(min_length=1, max_length=limits.inputs)]
    # What is scored or labelled holds at least one token: a character that is not a space.
    Worded = Annotated[str, StringConstraints(max_length=limits.input_chars, pattern=NOT_A_SPACE)]
    Passages = Annotated[list[Worded], Field(min_length=1, max_length=limits.inputs)]
    Beam = Int(ge=1, le=limits.beam)

    def model_name(*tasks: str) -> Any:
        """The ``model`` field: one of the runs served for these tasks; optional if only one."""
        served = tuple(n for t in tasks for n in names.get(t, []))
        if len(served) == 1:
            return Annotated[Literal[served] | None, Field(None, description="the only run")]
        return Annotated[Literal[served], Field(description="the run to use")]

    class Body(Closed):
        """A request; ``alternatives``: fields of which it gives exactly one (prompt or
        prompts), checked here and said in the schema."""

        model_config = ConfigDict(json_schema_extra=alternatives_schema)
        alternatives: ClassVar[tuple[str, ...]] = ()
        model: Any = None

        @model_validator(mode="after")
        def exactly_one_alternative(self):
            given = [n for n in self.alternatives if getattr(self, n) is not None]
            if self.alternatives and len(given) != 1:
                names = " or ".join(self.alternatives)
                raise ValueError(f"give {names}, not both and not neither")
            return self

        def inputs(self) -> list[str]:
            raise NotImplementedError

        def rows_per_input(self) -> int:
            return 1

    models: dict[str, type[BaseModel]] = {}
    if names.get("lm"):

        class GenerateRequest(Body):
            """``prompt`` or ``prompts``. With ``beam`` > 1: beam search, the
            min(num_samples, beam) best beams of each prompt (a stream then sends each row's
            text in one ``token`` event, then ``done``)."""

            alternatives = ("prompt", "prompts")
            model: model_name("lm")
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

        class ScoreRequest(Body):
            model: model_name("lm")
            texts: Passages

            def inputs(self) -> list[str]:
                return self.texts

        models["generate"], models["score"] = GenerateRequest, ScoreRequest
    if names.get("translate"):
        chars = min(limits.input_chars, source_chars or limits.input_chars)
        Source = Annotated[str, StringConstraints(max_length=chars)]

        class TranslateRequest(Body):
            """The n best of each sentence (at most the beam), best first."""

            model: model_name("translate")
            sentences: Annotated[list[Source], Field(min_length=1, max_length=limits.inputs)]
            beam: Beam | None = Field(None, description="default: the run's decode.beam_size")
            n_best: Beam = Field(1, description="at most the beam")
            attention: Bool = False
            length_penalty: Float(ge=0, le=10) | None = None

            def inputs(self) -> list[str]:
                return self.sentences

        models["translate"] = TranslateRequest
    if names.get("classify") or names.get("tag"):

        class PredictRequest(Body):
            """``texts`` or ``sentences`` (the same: tag splits them at spaces)."""

            alternatives = ("texts", "sentences")
            model: model_name("classify", "tag")
            texts: Passages = None
            sentences: Passages = None

            def inputs(self) -> list[str]:
                return self.texts if self.texts is not None else self.sentences

        models["predict"] = PredictRequest
    return models
