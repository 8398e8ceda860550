"""The console's Starlette app: the session guard around the pages, templates, static files.

Rules of this module:
- Every route is behind ``auth.RequireSession`` (the guard wraps the whole app, static
  files included); nothing here checks credentials itself.
- Templates are Jinja2 with autoescaping on; the only markup passed through unescaped is
  SVG made by ``svg.py``, which escapes what it embeds.
- Handlers call the control plane's API through ``backend.Backend`` in a thread
  (``call``): the client blocks, and the API they call is served on this same loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from meshgate.console.auth import RequireSession, Sessions
from meshgate.console.backend import Backend, Refused
from meshgate.console.kinds import PAGES

T = TypeVar("T")
MAX_FORM = 1 << 20  # bytes: YAML for many objects fits; more is refused

NAV = (
    ("/mesh", "Mesh settings"),
    *((f"/r/{p.slug}", p.title) for p in PAGES),
    ("/workloads", "Workloads"),
    ("/traffic", "Egress traffic"),
    ("/traffic/tail", "Live access log"),
    ("/traffic/graph", "Traffic graph"),
)


class Console:
    """What every handler needs: the API backend and the template environment."""

    def __init__(self, home: Path) -> None:
        self.backend = Backend(home)
        self.env = Environment(
            loader=PackageLoader("meshgate.console", "templates"),
            autoescape=select_autoescape(["html"]),
            trim_blocks=True,
            lstrip_blocks=True,
        )

    async def form(self, request: Request) -> dict[str, str]:
        """An urlencoded form (the console's only kind: no uploads), first value of each
        field; a body over ``MAX_FORM`` bytes is refused rather than read."""
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM:
                raise Refused(f"form larger than {MAX_FORM} bytes")
        fields = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
        return {k: v[0] for k, v in fields.items()}

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.to_thread(fn, *args, **kwargs)

    def render(
        self, request: Request, template: str, status_code: int = 200, **context: Any
    ) -> HTMLResponse:
        page = self.env.get_template(template).render(
            nav=NAV, path=request.url.path, notice=request.query_params.get("applied"), **context
        )
        return HTMLResponse(page, status_code=status_code)


def build_app(home: Path, sessions: Sessions) -> Any:
    from meshgate.console import pages_config, pages_observe

    console = Console(home)

    async def index(request: Request) -> Response:
        return RedirectResponse("/mesh", status_code=303)

    def handled(handler: Callable[[Console, Request], Any]) -> Callable[[Request], Any]:
        async def wrapped(request: Request) -> Response:
            try:
                result: Response = await handler(console, request)
                return result
            except Refused as exc:
                return console.render(request, "error.html", status_code=400, message=str(exc))

        return wrapped

    routes: list[Any] = [Route("/", index)]
    for path, handler, methods in (*pages_config.ROUTES, *pages_observe.ROUTES):
        routes.append(Route(path, handled(handler), methods=methods))
    static = Path(__file__).parent / "static"
    routes.append(Mount("/static", app=StaticFiles(directory=static), name="static"))
    return RequireSession(Starlette(routes=routes), sessions)
