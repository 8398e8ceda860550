"""Who may use the console: a session cookie that only a one-time login link sets.

Rules of this module:
- ``meshgate console`` asks the token-guarded API for a login link; its code is random,
  single-use and short-lived (``CODE_TTL``), so a link seen later (shell history, a
  screenshot) logs nobody in.
- Redeeming a code sets the session cookie: random, ``HttpOnly`` (no script reads it),
  ``SameSite=Strict`` (no other site's page sends it); sessions live in memory and end
  with the control plane (whose API token changes on restart too) or after ``SESSION_TTL``.
- Every other request without a live session is answered 401 before any handler runs;
  a write (any method but GET/HEAD) whose ``Origin`` is not the console's own is a 403,
  a second guard against cross-site forms.
- Comparisons are constant-time; the clock is passed in, so the rules are testable.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

COOKIE = "meshgate_console"
CODE_TTL = 120.0  # seconds a login link works, once
SESSION_TTL = 12 * 3600.0
MAX_SESSIONS = 64  # the oldest is dropped beyond this: memory stays bounded
LOGIN_PATH = "/login"


@dataclass
class Sessions:
    clock: Callable[[], float] = time.monotonic
    _codes: dict[str, float] = field(default_factory=dict)  # code -> expiry
    _sessions: dict[str, float] = field(default_factory=dict)  # session id -> expiry

    def mint_code(self) -> str:
        now = self.clock()
        self._codes = {c: t for c, t in self._codes.items() if t > now}
        code = secrets.token_urlsafe(24)
        self._codes[code] = now + CODE_TTL
        return code

    def redeem(self, code: str) -> str | None:
        """A new session for a live code (which is used up), else None."""
        now = self.clock()
        found = next((c for c in self._codes if hmac.compare_digest(c, code)), None)
        if found is None:
            return None
        expiry = self._codes.pop(found)
        if expiry <= now:
            return None
        self._sessions = {s: t for s, t in self._sessions.items() if t > now}
        while len(self._sessions) >= MAX_SESSIONS:
            self._sessions.pop(next(iter(self._sessions)))
        session = secrets.token_urlsafe(32)
        self._sessions[session] = now + SESSION_TTL
        return session

    def valid(self, session: str) -> bool:
        now = self.clock()
        return any(hmac.compare_digest(s, session) and t > now for s, t in self._sessions.items())


def _cookie(scope: Scope) -> str:
    for name, value in scope.get("headers") or []:
        if name == b"cookie":
            for part in value.decode("latin-1").split(";"):
                key, _, val = part.strip().partition("=")
                if key == COOKIE:
                    return str(val)
    return ""


def _header(scope: Scope, wanted: bytes) -> str | None:
    for name, value in scope.get("headers") or []:
        if name == wanted:
            return str(value.decode("latin-1"))
    return None


class RequireSession:
    """ASGI middleware: ``/login?code=`` redeems a code; everything else needs a session."""

    def __init__(self, app: ASGIApp, sessions: Sessions) -> None:
        self.app = app
        self.sessions = sessions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        response = self._gate(scope)
        if response is None:
            await self.app(scope, receive, send)
        else:
            await response(scope, receive, send)

    def _gate(self, scope: Scope) -> Response | None:
        if scope["path"] == LOGIN_PATH:
            return self._login(scope)
        if not self.sessions.valid(_cookie(scope)):
            return PlainTextResponse(
                "401 unauthorized: open the link `meshgate console` prints to log in\n",
                status_code=401,
            )
        if scope["method"] not in ("GET", "HEAD"):
            origin = _header(scope, b"origin")
            host = _header(scope, b"host")
            if origin is not None and origin.split("://", 1)[-1] != host:
                return PlainTextResponse("403 cross-site request refused\n", status_code=403)
        return None

    def _login(self, scope: Scope) -> Response:
        from urllib.parse import parse_qs

        query: dict[str, Any] = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        code = (query.get("code") or [""])[0]
        session = self.sessions.redeem(code) if code else None
        if session is None:
            return PlainTextResponse(
                "401 unauthorized: this login link is used up or expired; run "
                "`meshgate console` for a new one\n",
                status_code=401,
            )
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            COOKIE, session, max_age=int(SESSION_TTL), httponly=True, samesite="strict"
        )
        return response
