"""The console's listener, started by the control plane on the first login request.

Rules of this module:
- The listener binds loopback only (``MESHGATE_CONSOLE_ADDR``, default ``127.0.0.1:0``, an
  ephemeral port, as several meshes share a machine); an address that is not loopback is
  refused: the console changes the mesh, so it is never offered to the network.
- It starts on the first ``POST /v1/console`` (the API's token guards that call), so a
  mesh nobody looks at opens no port; it stops with the control plane.
- ``POST /v1/console`` answers ``{"url": LOGIN_LINK, "base": URL}``; each call mints a new
  one-time code (``auth.py``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from meshgate.console.auth import LOGIN_PATH, Sessions

DEFAULT_ADDR = "127.0.0.1:0"
ENV_ADDR = "MESHGATE_CONSOLE_ADDR"


def parse_addr(text: str) -> tuple[str, int]:
    host, sep, port = text.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{ENV_ADDR} {text!r}: want HOST:PORT, e.g. 127.0.0.1:15080")
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(
            f"{ENV_ADDR} {text!r}: the console listens on a loopback address only "
            "(127.0.0.1 or ::1); reach it from elsewhere through an SSH tunnel"
        )
    return host, int(port)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


class ConsoleServer:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.sessions = Sessions()
        self.base: str | None = None
        self._listener: Any = None
        self._lock = asyncio.Lock()

    async def login_url(self) -> tuple[str, str]:
        async with self._lock:
            if self._listener is None:
                self._start()
        assert self.base is not None
        return f"{self.base}{LOGIN_PATH}?code={self.sessions.mint_code()}", self.base

    def _start(self) -> None:
        from meshgate.console.app import build_app
        from meshgate.telemetry.http import MetricsListener

        host, port = parse_addr(os.environ.get(ENV_ADDR, DEFAULT_ADDR))
        sock = _bind(host, port)
        bound_host, bound_port = sock.getsockname()[:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        self.base = f"http://{shown}:{bound_port}"
        # The metrics listener's machinery serves any app on a socket bound beforehand,
        # on the control plane's loop, leaving its signals alone.
        self._listener = MetricsListener(build_app(self.home, self.sessions), sock)
        self._listener.start()

    async def stop(self) -> None:
        if self._listener is not None:
            await self._listener.stop()
            self._listener = None


def login_handler(console: Callable[[], ConsoleServer]) -> Callable[[Request], Any]:
    """``POST /v1/console`` on the API (its token guards it): a one-time login link."""

    async def handler(request: Request) -> JSONResponse:
        try:
            url, base = await console().login_url()
        except (OSError, ValueError) as exc:
            return JSONResponse({"error": f"console: {exc}"}, status_code=400)
        return JSONResponse({"url": url, "base": base})

    return handler
