"""A small client for the control plane's HTTP API over its Unix socket.

Rules: standard library only (every CLI call is a new process, so start-up time counts);
every request carries the bearer token from the 0600 token file; a control plane that
is not running is reported as ``NotRunning`` with the command that starts it, never as a
socket traceback.
- A control plane that runs but does not answer in time (busy pushing to many proxies,
  say) is ``Unresponsive``, with a message that says so. Reads (GET, idempotent) are
  tried again first, each time with twice the time; writes are not (one may have been
  applied), and their message says to check. ``MESHGATE_API_TIMEOUT`` (seconds) sets the
  first read's time (the health check's is 2 s).
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

from meshgate.home import api_socket, token_file


class NotRunning(Exception):
    def __init__(self, home: Path) -> None:
        super().__init__(
            f"no control plane is running for {home} (start one with `meshgate up`; "
            "`meshgate up --world demo` adds the simulated internet)"
        )


class Unresponsive(TimeoutError):
    """The control plane's socket is there but no answer came in time."""

    def __init__(self, home: Path, method: str, waited: float, attempts: int) -> None:
        self.waited = waited
        tries = f" ({attempts} tries)" if attempts > 1 else ""
        advice = (
            "try again in a moment"
            if method == "GET"
            else "the change may or may not have been made: check with `meshgate get`"
        )
        super().__init__(
            f"the control plane for {home} did not answer within {waited:g} s{tries}: "
            f"it is running but busy or stuck; {advice} (`meshgate status` shows what it "
            "runs; MESHGATE_API_TIMEOUT=SECONDS waits longer)"
        )


RETRIES = 2  # reads: tries after the first, each with twice the time
HEALTH_TIMEOUT = 2.0
READ_TIMEOUT = 15.0


def _env_timeout(default: float) -> float:
    raw = os.environ.get("MESHGATE_API_TIMEOUT", "")
    try:
        value = float(raw)
    except ValueError:
        return default
    return value if value > 0 else default


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
    def __init__(self, home: Path, timeout: float = 60.0, *, retries: int = RETRIES) -> None:
        self.home = home
        self.timeout = timeout  # writes
        self.read_timeout = _env_timeout(READ_TIMEOUT)
        self.health_timeout = _env_timeout(HEALTH_TIMEOUT)
        self.retries = retries

    def available(self) -> bool:
        """Whether a control plane answers; False if none runs. One that runs but does
        not answer even after the retries raises ``Unresponsive``: falling back to the
        store behind a live control plane's back would be wrong."""
        try:
            self.call("GET", "/v1/health", timeout=self.health_timeout)
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
        if method != "GET":
            limit = timeout or self.timeout
            try:
                return self._call_once(method, path, body, limit)
            except TimeoutError:
                raise Unresponsive(self.home, method, limit, 1) from None
        limit = timeout or self.read_timeout
        waited = 0.0
        for attempt in range(self.retries + 1):
            try:
                return self._call_once(method, path, body, limit)
            except (TimeoutError, ConnectionResetError, http.client.RemoteDisconnected):
                waited += limit
                if attempt == self.retries:
                    break
                limit *= 2
                print(
                    f"meshgate: the control plane is busy (no answer yet); trying again "
                    f"for {limit:g} s ({attempt + 2}/{self.retries + 1})",
                    file=sys.stderr,
                )
        raise Unresponsive(self.home, method, waited, self.retries + 1)

    def _call_once(self, method: str, path: str, body: Any, timeout: float) -> Any:
        sock_path = api_socket(self.home)
        try:
            token = token_file(self.home).read_text().strip()
        except OSError:
            raise NotRunning(self.home) from None
        conn = _UnixConnection(str(sock_path), timeout)
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
