"""The FastAPI application of ``rnnkit serve``: ``create_app({name: run}, limits, api_key)``.

Endpoints (typed in ``schemas``, documented at ``/docs``, which works offline):

    GET  /health          always open, even with an API key
    GET  /v1/models       every served run: name, task, cell, sizes, parameters, vocabularies
    POST /v1/generate     lm: sampling or beam search; "stream": true answers with SSE events
    POST /v1/score        lm: loss and perplexity of texts
    POST /v1/translate    translate: n-best with scores, attention matrices if asked
    POST /v1/predict      classify: labels with probabilities; tag: tokens with tags
    GET  /                the web page (static files of the package, using only /v1)

Every error is ``{"error": {"code", "message"}}``. Requests go through each run's ``Batcher``
and the call it makes to the run's ``rnnkit.load`` methods (``runners``).
"""

import asyncio
import contextlib
import dataclasses
import json
import secrets
import time
from importlib import resources
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from sse_starlette import EventSourceResponse
from starlette.exceptions import HTTPException
from swagger_ui_bundle import swagger_ui_path

from ..errors import UserError
from . import schemas
from .batcher import Batcher, Busy, Job
from .limits import Limits
from .middleware import AccessLog, BodyLimit
from .runners import RUNNERS, batch_key

ENDPOINT_TASKS = {
    "generate": ("lm",),
    "score": ("lm",),
    "translate": ("translate",),
    "predict": ("classify", "tag"),
}
ERRORS = {
    code: {"model": schemas.ErrorBody, "description": text}
    for code, text in {
        400: "the model could not take an input (one line says why)",
        401: "a missing or wrong API key",
        404: "no such endpoint",
        413: "the request body is too large",
        422: "a request that does not fit the schema or a limit",
        429: "the queue is full or the wait too long: retry after Retry-After seconds",
    }.items()
}
STREAM_DOC = (
    'With "stream": true: Server-Sent Events, one `token` event per step, '
    '`data: {"index", "text"}`, then one `done` event per row, '
    '`data: {"index", "finish_reason", "text", "completion", "tokens"}`.'
)


SSE_EVENT = {  # one event of the stream
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {"enum": ["token", "done", "error"]},
        "data": {"type": "string", "contentMediaType": "application/json"},
    },
}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.headers = status, code, headers


def error_response(status: int, code: str, message: str, headers: dict | None = None):
    body = {"error": {"code": code, "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


def validation_message(error: RequestValidationError) -> str:
    """The first problem, one line: where in the request, and what."""
    first = error.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
    return f"{where}: {first.get('msg', 'invalid')}"


def create_app(runs: dict[str, Any], limits: Limits | None = None, api_key: str | None = None):
    """The server of ``runs`` ({name: ``rnnkit.load`` result}) under ``limits``; with
    ``api_key``, everything under /v1 needs ``Authorization: Bearer <api_key>``."""
    limits = limits or Limits()
    names: dict[str, list[str]] = {}
    for name, run in runs.items():
        names.setdefault(run.task, []).append(name)
    sources = [r.cfg.decode.max_source_length - 1 for r in runs.values() if r.task == "translate"]
    requests = schemas.request_models(limits, names, min(sources, default=None))
    batchers: dict[str, Batcher] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        for name, run in runs.items():
            runners = {e: (lambda jobs, f=f, run=run: f(run, jobs)) for e, f in RUNNERS.items()}
            batchers[name] = Batcher(runners, limits)
            batchers[name].start()
        yield
        for batcher in batchers.values():
            await batcher.stop()

    app = FastAPI(
        title="rnnkit serve",
        description="Trained rnnkit runs over HTTP. Every error: `{error: {code, message}}`.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    bearer = HTTPBearer(auto_error=False)

    def authorized(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        given = credentials.credentials if credentials else ""
        if not secrets.compare_digest(given.encode(), api_key.encode()):
            raise ApiError(
                401, "unauthorized", "an API key is needed: Authorization: Bearer <key>",
                {"WWW-Authenticate": "Bearer"},
            )  # fmt: skip

    @app.exception_handler(ApiError)
    async def api_error(request: Request, e: ApiError):
        return error_response(e.status, e.code, str(e), e.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError):
        return error_response(422, "validation_error", validation_message(e))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, e: HTTPException):
        code = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}.get(
            e.status_code, "http_error"
        )
        return error_response(e.status_code, code, str(e.detail), getattr(e, "headers", None))

    @app.exception_handler(Exception)
    async def defect(request: Request, e: Exception):
        return error_response(500, "internal_error", f"{type(e).__name__}: {e}")

    async def submit(endpoint: str, request: Any) -> Job:
        served = [n for t in ENDPOINT_TASKS[endpoint] for n in names.get(t, [])]
        name = request.model or served[0]  # the schema lets it out only when there is one
        job = Job(
            batch_key(endpoint, request),
            request,
            len(request.inputs()) * request.rows_per_input(),
            time.monotonic() + limits.decode_share,
            asyncio.get_running_loop(),
            events=asyncio.Queue() if getattr(request, "stream", False) else None,
        )
        job.request.model = name
        try:
            batchers[name].submit(job)
        except Busy as e:
            raise busy(e) from None
        return job

    def busy(e: Busy) -> ApiError:
        retry = str(max(1, round(limits.time_limit / 4)))
        return ApiError(429, "too_many_requests", str(e), {"Retry-After": retry})

    async def answer(job: Job) -> JSONResponse:
        try:
            body = await job.result
        except Busy as e:
            raise busy(e) from None
        except UserError as e:
            raise ApiError(400, "bad_input", str(e)) from None
        body = {"model": job.request.model, **body}
        return JSONResponse(body, headers={"X-Batch-Size": str(job.batch_size)})

    secured = [Depends(authorized)] if api_key is not None else []

    @app.get("/health", response_model=schemas.Health)
    async def health() -> dict[str, Any]:
        return {"status": "ok", "models": len(runs)}

    @app.get("/v1/models", response_model=schemas.ModelList, dependencies=secured,
             responses={401: ERRORS[401]})  # fmt: skip
    async def models() -> dict[str, Any]:
        listed = [{"name": n, **run.describe()} for n, run in runs.items()]
        return {"models": listed, "limits": dataclasses.asdict(limits)}

    if "generate" in requests:
        Generate = requests["generate"]

        @app.post(
            "/v1/generate",
            response_model=schemas.GenerateResponse,
            dependencies=secured,
            responses={
                200: {"content": {"text/event-stream": {"schema": SSE_EVENT}},
                      "description": STREAM_DOC},
                **ERRORS,
            },
        )  # fmt: skip
        async def generate(request: Generate):  # type: ignore[valid-type]
            """Continue prompts: sampling (temperature, top-k, top-p, seed) or beam search."""
            job = await submit("generate", request)
            if job.events is None:
                return await answer(job)
            await job.started.wait()
            if job.result.done() and job.result.exception():
                return await answer(job)  # failed before it started: the error
            return EventSourceResponse(
                events(job), headers={"X-Batch-Size": str(job.batch_size)}, ping=0
            )

        async def events(job: Job):
            try:
                while (item := await job.events.get()) is not None:
                    event, data = item
                    if event == "error":
                        message = {"code": "bad_input", "message": str(data)}
                        yield {"event": "error", "data": json.dumps({"error": message})}
                        return
                    yield {"event": event, "data": json.dumps(data)}
            finally:
                job.gone = True  # nothing more is read: a client gone stops its rows

        @app.post("/v1/score", response_model=schemas.ScoreResponse, dependencies=secured,
                  responses=ERRORS)  # fmt: skip
        async def score(request: requests["score"]):  # type: ignore[valid-type]
            """Loss (nats per token) and perplexity of each text."""
            return await answer(await submit("score", request))

    if "translate" in requests:

        @app.post("/v1/translate", response_model=schemas.TranslateResponse,
                  dependencies=secured, responses=ERRORS)  # fmt: skip
        async def translate(request: requests["translate"]):  # type: ignore[valid-type]
            """Translate sentences: the n best with scores, and attention matrices if asked."""
            return await answer(await submit("translate", request))

    if "predict" in requests:

        @app.post("/v1/predict", response_model=schemas.PredictResponse, dependencies=secured,
                  responses=ERRORS)  # fmt: skip
        async def predict(request: requests["predict"]):  # type: ignore[valid-type]
            """classify: each text's label and probabilities; tag: each token's tag."""
            return await answer(await submit("predict", request))

    app.mount("/docs-assets", StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")
    static = resources.files("rnnkit.serve") / "static"
    app.mount("/static", StaticFiles(directory=str(static)), name="static")

    @app.get("/docs", include_in_schema=False)
    async def docs():
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="rnnkit serve",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon-32x32.png",
        )

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(str(static / "index.html"))

    app.add_middleware(BodyLimit, limit=limits.body_bytes)
    app.add_middleware(AccessLog)
    return app
