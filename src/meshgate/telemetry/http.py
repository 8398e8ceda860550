"""The telemetry endpoints of the control plane's HTTP API (token-guarded by the caller).

Rules of this module:
- ``GET /v1/accesslog``: the mesh-wide access log, filtered by the query parameters
  ``namespace``, ``gateway`` (a gateway's name: its pods' entries), ``pod``, ``host``,
  ``status`` (``5xx``, ``403``), ``since`` (seconds), ``after`` (a row id: what a follower
  has not seen yet) and ``tail``; answers ``{"entries": [...], "last": ROW_ID}``.
- ``GET /v1/top``: external hosts by request rate, error rate and p50/p99 latency over the
  last ``window`` seconds (default 60), filtered by ``namespace``, ``gateway`` and
  ``reporter`` (``gateway``, ``sidecar``); answers ``{"window": S, "hosts": [...]}``, busiest
  first (``top.py`` has the rules).
- ``GET /v1/accesslog/rows?after=ID&limit=N``: the rows this control plane received
  itself (not those pulled from other replicas), for the other replicas' pulls
  (``peers.py``); answers ``{"rows": [[id, workload, entry], ...], "last": ID}``.
- With replicas, ``/v1/accesslog``, ``/v1/top`` and ``/v1/metrics`` answer for the whole
  mesh from this replica's store (the others' rows are pulled into it); their answers add
  ``notes``, one line per replica whose entries are missing (it did not answer).
- A malformed parameter is a 400 with the reason, never a partial answer.
- ``GET /metrics`` (Prometheus text format) is served on a TCP listener of its own
  (``MESHGATE_METRICS_ADDR``, loopback with an ephemeral port by default), since Prometheus
  cannot scrape a Unix socket; it needs ``Authorization: Bearer`` the metrics token
  (``<state dir>/metrics-token``, 0600, kept across restarts), not the API's token, so a
  scraper can read metrics and do nothing else. ``GET /v1/metrics`` on the API gives the
  same scrape to ``meshgate metrics``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from meshgate.telemetry.metrics import CONTENT_TYPE
from meshgate.telemetry.store import Query, status_range
from meshgate.telemetry.top import HostRow, TopQuery, parse_params

Querier = Callable[[Query], list[tuple[int, dict[str, Any]]]]
TopQuerier = Callable[[TopQuery, float], list[HostRow]]
RowsQuerier = Callable[[int, int], tuple[list[Any], int]]
Notes = Callable[[], list[str]]
MAX_ROWS = 10_000


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


def access_log_handler(querier: Querier, notes: Notes = list) -> Callable[[Request], Any]:
    async def handler(request: Request) -> JSONResponse:
        try:
            q = parse_query(request.query_params, time.time())
        except ValueError as exc:
            return JSONResponse({"error": str(exc), "reason": "BadRequest"}, status_code=400)
        rows = await asyncio.to_thread(querier, q)
        last = max([i for i, _ in rows], default=q.after_id)
        return JSONResponse({"entries": [e for _, e in rows], "last": last, "notes": notes()})

    return handler


def rows_handler(querier: RowsQuerier) -> Callable[[Request], Any]:
    async def handler(request: Request) -> JSONResponse:
        try:
            after = int(request.query_params.get("after") or 0)
            limit = int(request.query_params.get("limit") or MAX_ROWS)
            if after < 0 or not 0 < limit <= MAX_ROWS:
                raise ValueError
        except ValueError:
            reason = f"after: a row id (>= 0); limit: 1 to {MAX_ROWS}"
            return JSONResponse({"error": reason, "reason": "BadRequest"}, status_code=400)
        rows, last = await asyncio.to_thread(querier, after, limit)
        return JSONResponse({"rows": rows, "last": last})

    return handler


def top_handler(querier: TopQuerier, notes: Notes = list) -> Callable[[Request], Any]:
    async def handler(request: Request) -> JSONResponse:
        try:
            q = parse_params(request.query_params)
        except ValueError as exc:
            return JSONResponse({"error": str(exc), "reason": "BadRequest"}, status_code=400)
        rows = await asyncio.to_thread(querier, q, time.time())
        hosts = [r.to_json() for r in rows]
        return JSONResponse({"window": q.window, "hosts": hosts, "notes": notes()})

    return handler


# -- /metrics ------------------------------------------------------------------------------
# Prometheus scrapes over TCP, which the API's Unix socket is not; so /metrics has a listener
# of its own, loopback by default, guarded by a token of its own (see metrics_token).

METRICS_TOKEN_FILE = "metrics-token"
DEFAULT_METRICS_ADDR = "127.0.0.1:0"  # an ephemeral port: several meshes share a machine


def metrics_token(state_dir: Path) -> str:
    """The scrape token: made once, kept across restarts (unlike the API token), so that a
    Prometheus ``authorization: {credentials_file: ...}`` keeps working."""
    path = state_dir / METRICS_TOKEN_FILE
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token)
    return token


def parse_addr(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) -> (host, port); ValueError otherwise."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"MESHGATE_METRICS_ADDR {text!r}: want HOST:PORT, e.g. 127.0.0.1:15014")
    return host.strip("[]"), int(port)


def metrics_app(exposition: Callable[[], bytes], token: str) -> Starlette:
    """``GET /metrics`` with ``Authorization: Bearer <metrics token>``; 401 without it."""

    async def scrape(request: Request) -> Response:
        header = request.headers.get("authorization", "")
        if not hmac.compare_digest(header, f"Bearer {token}"):
            return PlainTextResponse("unauthorized\n", status_code=401)
        # On the event loop: the collectors read the xDS server's state, which lives there.
        return Response(exposition(), media_type=CONTENT_TYPE)

    return Starlette(routes=[Route("/metrics", scrape, methods=["GET"])])


def bind(addr: str) -> socket.socket:
    host, port = parse_addr(addr)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/metrics"


def metrics_api_handler(
    exposition: Callable[[], bytes], url: Callable[[], str | None], notes: Notes = list
) -> Any:
    """``GET /v1/metrics`` on the API (its own token): one scrape, for ``meshgate metrics``."""

    async def handler(request: Request) -> JSONResponse:
        return JSONResponse({"url": url(), "text": exposition().decode(), "notes": notes()})

    return handler


class MetricsListener:
    """The /metrics TCP listener: uvicorn on a socket bound here (so the port is known at
    once, even an ephemeral one), on the control plane's event loop."""

    def __init__(self, app: Starlette, sock: socket.socket) -> None:
        import uvicorn

        class _Server(uvicorn.Server):
            # The control plane owns SIGTERM/SIGINT, as for the API server.
            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:
                yield

        self.url = url_of(sock)
        self._sock = sock
        self._server = _Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve(sockets=[self._sock]))

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
        self._sock.close()
