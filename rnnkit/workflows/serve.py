"""The ``rnnkit serve`` process: load each run once, then uvicorn on 127.0.0.1 by default.

On SIGTERM (or Ctrl-C) uvicorn stops accepting connections and lets the requests in flight
finish, streams included, for up to the time limit plus a few seconds; after SIGTERM the
process then exits 0 (uvicorn re-raises the signal once drained, to the handler it found:
ours, which lets ``serve`` return).
"""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

from rnnkit.errors import UserError
from rnnkit.serve.limits import Limits

API_KEY_ENV = "RNNKIT_API_KEY"


def named_runs(specs: list[str]) -> dict[str, Path]:
    """``RUN`` or ``NAME=RUN`` -> {name: path}; a run's name is its folder's name by default."""
    runs: dict[str, Path] = {}
    for spec in specs:
        name, _, path = spec.rpartition("=") if "=" in spec else ("", "", spec)
        path_ = Path(path)
        name = name or path_.resolve().name
        if name in runs:
            raise UserError(f"serve: two runs named {name!r}; name them: NAME=RUN")
        runs[name] = path_
    return runs


def serve(
    specs: list[str],
    host: str = "127.0.0.1",
    port: int = 8000,
    limits: Limits | None = None,
    api_key: str | None = None,
    device: str = "cpu",
    precision: str = "fp32",
) -> None:
    import uvicorn
    from sse_starlette.sse import AppStatus

    import rnnkit
    from rnnkit.serve.app import create_app

    limits = limits or Limits()
    runs = {name: rnnkit.load(path, device, precision=precision)
            for name, path in named_runs(specs).items()}  # fmt: skip
    app = create_app(runs, limits, api_key or os.environ.get(API_KEY_ENV) or None)
    AppStatus.disable_automatic_graceful_drain()  # SIGTERM lets streams finish (time-limited)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for name, path in named_runs(specs).items():
        logging.getLogger("rnnkit.serve").info("serving %s (%s) from %s", name,
                                               runs[name].task, path)  # fmt: skip
    signal.signal(signal.SIGTERM, lambda *_: None)  # drained: return, and exit 0
    uvicorn.run(
        app,
        host=host,
        port=port,
        access_log=False,  # rnnkit.serve logs each request, with its batch size
        timeout_graceful_shutdown=int(limits.time_limit) + 5,
        log_level="info",
    )
