"""The telemetry endpoints of the control plane's HTTP API (token-guarded by the caller).

Rules of this module:
- ``GET /v1/accesslog``: the mesh-wide access log, filtered by the query parameters
  ``namespace``, ``gateway`` (a gateway's name: its pods' entries), ``pod``, ``host``,
  ``status`` (``5xx``, ``403``), ``since`` (seconds), ``after`` (a row id: what a follower
  has not seen yet) and ``tail``; answers ``{"entries": [...], "last": ROW_ID}``.
- A malformed parameter is a 400 with the reason, never a partial answer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from meshgate.telemetry.store import Query, status_range

Querier = Callable[[Query], list[tuple[int, dict[str, Any]]]]


def parse_query(params: Any, now: float) -> Query:
    def opt(name: str) -> str | None:
        value = params.get(name)
        return str(value) if value not in (None, "") else None

    status = opt("status")
    if status is not None:
        status_range(status)  # raises ValueError with the reason
    since = opt("since")
    tail = opt("tail")
    gateway = opt("gateway")
    return Query(
        namespace=opt("namespace"),
        workload=gateway,
        reporter="gateway" if gateway else None,
        pod=opt("pod"),
        host=opt("host"),
        status=status,
        since_ms=None if since is None else int((now - float(since)) * 1000),
        after_id=int(opt("after") or 0),
        tail=None if tail is None else int(tail),
    )


def access_log_handler(querier: Querier) -> Callable[[Request], Any]:
    async def handler(request: Request) -> JSONResponse:
        try:
            q = parse_query(request.query_params, time.time())
        except ValueError as exc:
            return JSONResponse({"error": str(exc), "reason": "BadRequest"}, status_code=400)
        rows = await asyncio.to_thread(querier, q)
        last = max([i for i, _ in rows], default=q.after_id)
        return JSONResponse({"entries": [e for _, e in rows], "last": last})

    return handler
