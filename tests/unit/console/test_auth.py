"""The console's gate: one-time login codes, HttpOnly session cookies, 401 otherwise."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.responses import PlainTextResponse

from meshgate.console.auth import CODE_TTL, COOKIE, SESSION_TTL, RequireSession, Sessions


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _ok(scope: Any, receive: Any, send: Any) -> None:
    await PlainTextResponse("page")(scope, receive, send)


def request(
    app: Any,
    path: str,
    *,
    method: str = "GET",
    query: str = "",
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "query_string": query.encode(),
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
    }
    asyncio.run(app(scope, receive, send))
    start = sent[0]
    got = {k.decode(): v.decode() for k, v in start["headers"]}
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], got, body


def _login(app: Any, sessions: Sessions) -> str:
    status, headers, _ = request(app, "/login", query=f"code={sessions.mint_code()}")
    assert status == 303 and headers["location"] == "/"
    cookie = headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    return cookie.split(";", 1)[0]


def test_a_code_logs_in_once() -> None:
    sessions = Sessions(clock=Clock())
    app = RequireSession(_ok, sessions)
    code = sessions.mint_code()
    status, headers, _ = request(app, "/login", query=f"code={code}")
    assert status == 303
    assert headers["set-cookie"].startswith(f"{COOKIE}=")
    status, _, body = request(app, "/login", query=f"code={code}")
    assert status == 401 and b"used up or expired" in body


def test_codes_and_sessions_expire() -> None:
    clock = Clock()
    sessions = Sessions(clock=clock)
    app = RequireSession(_ok, sessions)
    code = sessions.mint_code()
    clock.now += CODE_TTL + 1
    assert request(app, "/login", query=f"code={code}")[0] == 401
    cookie = _login(app, sessions)
    assert request(app, "/mesh", headers={"cookie": cookie})[0] == 200
    clock.now += SESSION_TTL + 1
    assert request(app, "/mesh", headers={"cookie": cookie})[0] == 401


def test_without_a_session_everything_is_401() -> None:
    sessions = Sessions(clock=Clock())
    app = RequireSession(_ok, sessions)
    for path in ("/", "/mesh", "/static/console.css", "/api/tail"):
        status, _, body = request(app, path)
        assert status == 401 and b"meshgate console" in body
    assert request(app, "/mesh", headers={"cookie": f"{COOKIE}=guessed"})[0] == 401
    assert request(app, "/login")[0] == 401  # no code at all
    assert request(app, "/login", query="code=made-up")[0] == 401


def test_writes_from_another_origin_are_refused() -> None:
    sessions = Sessions(clock=Clock())
    app = RequireSession(_ok, sessions)
    cookie = _login(app, sessions)
    same = {"cookie": cookie, "host": "127.0.0.1:8080", "origin": "http://127.0.0.1:8080"}
    assert request(app, "/mesh/policy", method="POST", headers=same)[0] == 200
    cross = {**same, "origin": "http://evil.example"}
    assert request(app, "/mesh/policy", method="POST", headers=cross)[0] == 403
    # A read from anywhere is harmless (SameSite keeps the cookie home anyway).
    assert request(app, "/mesh", headers=cross)[0] == 200
