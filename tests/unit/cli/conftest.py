"""A meshgate CLI bound to a private state directory per test."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from meshgate.cli.main import app

ROOT = Path(__file__).resolve().parents[3]
WALKTHROUGH = ROOT / "examples" / "walkthrough"

Run = Callable[..., Result]


@pytest.fixture
def mg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Run]:
    """``mg("get", "se")`` runs the CLI in-process against ``tmp_path/home``."""
    monkeypatch.setenv("MESHGATE_HOME", str(tmp_path / "home"))
    runner = CliRunner()

    def run(*args: str, input: str | None = None) -> Result:
        return runner.invoke(app, list(args), input=input, catch_exceptions=False)

    yield run


@pytest.fixture
def walkthrough(mg: Run) -> Run:
    """A state directory holding every resource of the seed's walkthrough."""
    for name in sorted(p.name for p in WALKTHROUGH.glob("*.yaml")):
        result = mg("apply", "-f", str(WALKTHROUGH / name))
        assert result.exit_code == 0, result.stderr
    return mg


class AsgiClient:
    """``meshgate.client.Client``'s ``call``, served in-process by the control plane's API
    app (no socket): the CLI's API backend and the server's handlers meet for real."""

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self.token = token

    def call(
        self, method: str, path: str, body: Any = None, *, timeout: float | None = None
    ) -> Any:
        from meshgate.client import ApiError

        status, data = asyncio.run(self._request(method, path, body))
        if status >= 400:
            raise ApiError(status, data if isinstance(data, dict) else {"error": data})
        return data

    async def _request(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        route, _, query = path.partition("?")
        payload = b"" if body is None else json.dumps(body).encode()
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": route,
            "raw_path": route.encode(),
            "root_path": "",
            "query_string": query.encode(),
            "headers": [
                (b"authorization", f"Bearer {self.token}".encode()),
                (b"content-type", b"application/json"),
            ],
            "server": ("test", 80),
            "client": ("test", 1),
        }
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": payload, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await self.app(scope, receive, send)
        status = next(m["status"] for m in sent if m["type"] == "http.response.start")
        raw = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        return status, json.loads(raw) if raw else {}


class FakeControlPlane:
    """What the API handlers use of a control plane: a real store and pod runtime records,
    without processes or namespaces."""

    def __init__(self, home: Path) -> None:
        from meshgate.runtime.pods import Runtime
        from meshgate.store import open_store

        self.home = home
        self.store = open_store(home)
        self.runtime = Runtime(home)
        self.kicks = 0

    def kick(self) -> None:
        self.kicks += 1

    def log_path(self, namespace: str, name: str, container: str, previous: bool = False) -> Path:
        return self.runtime.log_path(namespace, name, container, previous)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[FakeControlPlane, AsgiClient]]:
    """A control plane's API app over a store in ``tmp_path/api-home``, and a client for it."""
    from meshgate.server.api import build_app

    cp = FakeControlPlane(tmp_path / "api-home")
    try:
        yield cp, AsgiClient(build_app(cp, "secret"), "secret")  # type: ignore[arg-type]
    finally:
        cp.store.close()
