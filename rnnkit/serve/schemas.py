"""The typed requests and responses of ``rnnkit serve`` (pydantic) that every endpoint shares:
errors, health, the model list, and the request body base (``Body``) with its field types.
Each task's endpoints (``tasks/<task>/endpoints.py``) define their own bodies with the
parameter names of ``rnnkit.load``'s methods; a body is built per server, since each cap of
``Limits`` is a bound in its schema and ``model`` may only name a run served for it."""

from collections.abc import Sequence
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

from rnnkit.serve.limits import Limits

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


# -- requests, shaped by the limits and the served models ------------------------------------
def alternatives_schema(schema: dict[str, Any], model: type[BaseModel]) -> None:
    """A body's ``alternatives`` in its schema: exactly one of them is required."""
    if model.alternatives:
        schema["oneOf"] = [{"required": [n]} for n in model.alternatives]


class Body(Closed):
    """A request; ``alternatives``: fields of which it gives exactly one (prompt or prompts),
    checked here and said in the schema."""

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


def model_name(served: Sequence[str]) -> Any:
    """The ``model`` field: one of the runs served for an endpoint; optional if only one."""
    served = tuple(served)
    if len(served) == 1:
        return Annotated[Literal[served] | None, Field(None, description="the only run")]
    return Annotated[Literal[served], Field(description="the run to use")]


def texts(limits: Limits) -> Any:
    """A list of inputs, each at most ``input_chars`` long."""
    return Annotated[list[text(limits)], Field(min_length=1, max_length=limits.inputs)]


def text(limits: Limits, chars: int | None = None) -> Any:
    return Annotated[str, StringConstraints(max_length=chars or limits.input_chars)]


def passages(limits: Limits) -> Any:
    """Inputs that hold at least one token: a character that is not a space."""
    worded = Annotated[str, StringConstraints(max_length=limits.input_chars, pattern=NOT_A_SPACE)]
    return Annotated[list[worded], Field(min_length=1, max_length=limits.inputs)]


def beam(limits: Limits) -> Any:
    return Int(ge=1, le=limits.beam)
