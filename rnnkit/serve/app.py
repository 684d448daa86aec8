"""The FastAPI application of ``rnnkit serve``: ``create_app({name: run}, limits, api_key)``.

Endpoints (typed in ``schemas`` and the tasks' ``endpoints``, documented at ``/docs``, which
works offline):

    GET  /health          always open, even with an API key
    GET  /v1/models       every served run: name, task, cell, sizes, parameters, vocabularies
    POST /v1/<endpoint>   each endpoint a served run's task adds (``base.Task.endpoints``):
                          lm: /v1/generate (SSE with "stream": true), /v1/score;
                          translate: /v1/translate; classify and tag: /v1/predict
    GET  /                the web page (static files of the package, using only /v1)

Every error is ``{"error": {"code", "message"}}``. Requests go through each run's ``Batcher``
and the call its endpoint makes to the run's ``rnnkit.load`` methods (``Endpoint.run``).
"""

import asyncio
import contextlib
import dataclasses
import json
import secrets
import time
from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from sse_starlette import EventSourceResponse
from starlette.exceptions import HTTPException
from swagger_ui_bundle import swagger_ui_path

from rnnkit.errors import UserError
from rnnkit.serve import schemas
from rnnkit.serve.batcher import Batcher, Busy, Job
from rnnkit.serve.endpoints import Endpoint
from rnnkit.serve.limits import Limits
from rnnkit.serve.middleware import AccessLog, BodyLimit

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


STATIC = resources.files("rnnkit.serve") / "static"
bearer = HTTPBearer(auto_error=False)
router = APIRouter()  # the routes every server has; the tasks' endpoints join them per server


@dataclasses.dataclass
class Served:
    """What a server serves: the runs, each endpoint with the runs it answers for, the caps,
    the API key, and (once started) each run's batcher."""

    runs: dict[str, Any]
    endpoints: dict[str, tuple[Endpoint, list[str]]]
    limits: Limits
    api_key: str | None
    batchers: dict[str, Batcher] = dataclasses.field(default_factory=dict)


def served(request: Request) -> Served:
    return request.app.state.served


def authorized(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    """With an API key, everything under /v1 needs ``Authorization: Bearer <key>``."""
    key = served(request).api_key
    if key is None:
        return
    given = credentials.credentials if credentials else ""
    if not secrets.compare_digest(given.encode(), key.encode()):
        raise ApiError(
            401, "unauthorized", "an API key is needed: Authorization: Bearer <key>",
            {"WWW-Authenticate": "Bearer"},
        )  # fmt: skip


async def api_error(request: Request, e: ApiError):
    return error_response(e.status, e.code, str(e), e.headers)


async def invalid(request: Request, e: RequestValidationError):
    return error_response(422, "validation_error", validation_message(e))


async def http_error(request: Request, e: HTTPException):
    code = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}.get(
        e.status_code, "http_error"
    )
    return error_response(e.status_code, code, str(e.detail), getattr(e, "headers", None))


async def defect(request: Request, e: Exception):
    return error_response(500, "internal_error", f"{type(e).__name__}: {e}")


def busy(e: Busy, limits: Limits) -> ApiError:
    retry = str(max(1, round(limits.time_limit / 4)))
    return ApiError(429, "too_many_requests", str(e), {"Retry-After": retry})


async def submit(state: Served, endpoint: Endpoint, body: Any) -> Job:
    """Queue a request on its run's batcher (the schema lets ``model`` out only when one run
    answers for the endpoint)."""
    name = body.model or state.endpoints[endpoint.name][1][0]
    job = Job(
        endpoint.batch_key(body),
        body,
        len(body.inputs()) * body.rows_per_input(),
        time.monotonic() + state.limits.decode_share,
        asyncio.get_running_loop(),
        events=asyncio.Queue() if getattr(body, "stream", False) else None,
    )
    job.request.model = name
    try:
        state.batchers[name].submit(job)
    except Busy as e:
        raise busy(e, state.limits) from None
    return job


async def answer(state: Served, job: Job) -> JSONResponse:
    try:
        body = await job.result
    except Busy as e:
        raise busy(e, state.limits) from None
    except UserError as e:
        raise ApiError(400, "bad_input", str(e)) from None
    body = {"model": job.request.model, **body}
    return JSONResponse(body, headers={"X-Batch-Size": str(job.batch_size)})


async def events(job: Job):
    """A stream's Server-Sent Events, until the job ends or its client goes."""
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


async def handle(state: Served, endpoint: Endpoint, body: Any):
    """One request to a task's endpoint: batched with others, answered as JSON, or as
    Server-Sent Events where the endpoint streams and the request asks for it."""
    job = await submit(state, endpoint, body)
    if job.events is None:
        return await answer(state, job)
    await job.started.wait()
    if job.result.done() and job.result.exception():
        return await answer(state, job)  # failed before it started: the error
    return EventSourceResponse(events(job), headers={"X-Batch-Size": str(job.batch_size)}, ping=0)


def route(endpoint: Endpoint, body_type: type) -> Any:
    """``handle`` typed with this server's request body, named and documented as the endpoint
    (FastAPI reads the body's schema, the summary and the description from it)."""

    async def endpoint_route(request: Request, body: body_type):  # type: ignore[valid-type]
        return await handle(served(request), endpoint, body)

    endpoint_route.__name__ = endpoint_route.__qualname__ = endpoint.name
    endpoint_route.__doc__ = endpoint.summary
    return endpoint_route


@router.get("/health", response_model=schemas.Health)
async def health(request: Request) -> dict[str, Any]:
    return {"status": "ok", "models": len(served(request).runs)}


async def models(request: Request) -> dict[str, Any]:
    state = served(request)
    listed = [{"name": n, **run.describe()} for n, run in state.runs.items()]
    return {"models": listed, "limits": dataclasses.asdict(state.limits)}


@router.get("/docs", include_in_schema=False)
async def docs():
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="rnnkit serve",
        swagger_js_url="/docs-assets/swagger-ui-bundle.js",
        swagger_css_url="/docs-assets/swagger-ui.css",
        swagger_favicon_url="/docs-assets/favicon-32x32.png",
    )


@router.get("/", include_in_schema=False)
async def page():
    return FileResponse(str(STATIC / "index.html"))


def endpoints_of(runs: dict[str, Any]) -> dict[str, tuple[Endpoint, list[str]]]:
    """Each endpoint the served runs' tasks add, with the runs it answers for, in the order
    the runs name them."""
    found: dict[str, tuple[Endpoint, list[str]]] = {}
    for name, run in runs.items():
        for endpoint in run.spec.endpoint_list():
            found.setdefault(endpoint.name, (endpoint, []))[1].append(name)
    return found


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI):
    state: Served = app.state.served
    for name, run in state.runs.items():
        runners = {
            e.name: (lambda jobs, e=e, run=run: e.run(run, jobs)) for e in run.spec.endpoint_list()
        }
        state.batchers[name] = Batcher(runners, state.limits)
        state.batchers[name].start()
    yield
    for batcher in state.batchers.values():
        await batcher.stop()


def create_app(runs: dict[str, Any], limits: Limits | None = None, api_key: str | None = None):
    """The server of ``runs`` ({name: ``rnnkit.load`` result}) under ``limits``; with
    ``api_key``, everything under /v1 needs ``Authorization: Bearer <api_key>``."""
    limits = limits or Limits()
    state = Served(runs, endpoints_of(runs), limits, api_key)
    app = FastAPI(
        title="rnnkit serve",
        description="Trained rnnkit runs over HTTP. Every error: `{error: {code, message}}`.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.served = state
    for kind, handler in ((ApiError, api_error), (RequestValidationError, invalid),
                          (HTTPException, http_error), (Exception, defect)):  # fmt: skip
        app.add_exception_handler(kind, handler)
    secured = [Depends(authorized)] if api_key is not None else []
    app.include_router(router)
    app.add_api_route("/v1/models", models, response_model=schemas.ModelList,
                      dependencies=secured, responses={401: ERRORS[401]})  # fmt: skip
    for endpoint, names in state.endpoints.values():
        body_type = endpoint.request(limits, {n: runs[n] for n in names})
        app.add_api_route(
            f"/v1/{endpoint.name}",
            route(endpoint, body_type),
            methods=["POST"],
            response_model=endpoint.response,
            dependencies=secured,
            responses={**endpoint.responses, **ERRORS},
        )
    app.mount("/docs-assets", StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    app.add_middleware(BodyLimit, limit=limits.body_bytes)
    app.add_middleware(AccessLog)
    return app
