"""Two ASGI middlewares (plain ASGI, so that streamed answers pass through untouched):
``AccessLog``, one line per request, and ``BodyLimit``, the request body cap (413)."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

log = logging.getLogger("rnnkit.serve")

Scope = dict[str, Any]


async def send_error(send: Any, status: int, code: str, message: str) -> None:
    """An error in the envelope every error of the server has: ``{"error": {code, message}}``."""
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class AccessLog:
    """``POST /v1/translate 200 12.3 ms batch 4``: method, path, status, milliseconds from the
    request to the answer's last byte, and the batch the request rode in (``X-Batch-Size``)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, seen = time.perf_counter(), {"status": 500, "batch": "-"}

        async def logged(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                for name, value in message.get("headers", []):
                    if name.lower() == b"x-batch-size":
                        seen["batch"] = value.decode()
            await send(message)

        try:
            await self.app(scope, receive, logged)
        finally:
            ms = (time.perf_counter() - start) * 1000
            log.info(
                "%s %s %s %.1f ms batch %s",
                scope["method"], scope["path"], seen["status"], ms, seen["batch"],
            )  # fmt: skip


class BodyLimit:
    """Reads the request body (at most ``limit`` bytes) before the app does; a longer one, or a
    ``Content-Length`` that says so, is answered 413 without being read further."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = f"the request body is over {self.limit} bytes"
        for name, value in scope["headers"]:
            if name == b"content-length" and (not value.isdigit() or int(value) > self.limit):
                await send_error(send, 413, "payload_too_large", too_large)
                return
        chunks, size, message = [], 0, {"more_body": True}
        while message.get("more_body"):
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                await send_error(send, 413, "payload_too_large", too_large)
                return
        body, replayed = b"".join(chunks), False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for the disconnect

        await self.app(scope, replay, send)
