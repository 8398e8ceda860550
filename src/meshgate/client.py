"""A small client for the control plane's HTTP API over its Unix socket.

Rules: standard library only (every CLI call is a new process, so start-up time counts);
every request carries the bearer token from the 0600 token file; a control plane that
is not running is reported as ``NotRunning`` with the command that starts it, never as a
socket traceback.
"""

from __future__ import annotations

import http.client
import json
import socket
from pathlib import Path
from typing import Any

from meshgate.home import api_socket, token_file


class NotRunning(Exception):
    def __init__(self, home: Path) -> None:
        super().__init__(
            f"no control plane is running for {home} (start one with `meshgate up`; "
            "`meshgate up --world demo` adds the simulated internet)"
        )


class ApiError(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.body = body
        super().__init__(str(body.get("error") or body))


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class Client:
    def __init__(self, home: Path, timeout: float = 60.0) -> None:
        self.home = home
        self.timeout = timeout

    def available(self) -> bool:
        try:
            self.call("GET", "/v1/health", timeout=2.0)
        except (NotRunning, ApiError):
            return False
        return True

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        timeout: float | None = None,
    ) -> Any:
        sock_path = api_socket(self.home)
        try:
            token = token_file(self.home).read_text().strip()
        except OSError:
            raise NotRunning(self.home) from None
        conn = _UnixConnection(str(sock_path), timeout or self.timeout)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        payload = None if body is None else json.dumps(body)
        try:
            conn.request(method, path, body=payload, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
        except (FileNotFoundError, ConnectionRefusedError):
            raise NotRunning(self.home) from None
        finally:
            conn.close()
        data = json.loads(raw) if raw else {}
        if resp.status >= 400:
            raise ApiError(resp.status, data if isinstance(data, dict) else {"error": data})
        return data
