"""Pages that change configuration: mesh settings, one page per kind, the gateway form.

Rules of this module:
- A write is always: check the YAML here (``yamledit.check``, the CLI's checks, each
  problem at its line), then ``/v1/apply`` with every object at once (the server checks
  again, all-or-nothing). With any error nothing is sent, the page comes back with the
  text as typed and a 422.
- A successful write redirects (303) to the kind's list, naming what changed, so a reload
  never applies twice.
- Cluster-scoped objects use ``_`` for their namespace in URLs.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from meshgate.api.problems import Problem, Severity
from meshgate.console.app import Console
from meshgate.console.backend import POLICIES, Change, Refused
from meshgate.console.kinds import BY_SLUG, KindPage
from meshgate.console.yamledit import (
    GATEWAY_PROTOCOLS,
    SOURCE,
    annotate,
    check,
    editable,
    egress_gateway,
    parse_ports,
)


def _done(where: str, changes: list[Change]) -> Response:
    text = ", ".join(f"{c.kind}/{c.name} {c.action}" for c in changes) or "nothing changed"
    return RedirectResponse(f"{where}?{urlencode({'applied': text})}", status_code=303)


def _page(request: Request) -> KindPage:
    page = BY_SLUG.get(request.path_params["slug"])
    if page is None:
        raise Refused(f"no console page {request.path_params['slug']!r}")
    return page


async def mesh(c: Console, request: Request) -> Response:
    policy, access_log = await c.call(c.backend.mesh_settings)
    revision = await c.call(c.backend.revision)
    return c.render(
        request,
        "mesh.html",
        policy=policy,
        policies=POLICIES,
        access_log=access_log,
        revision=revision,
    )


async def set_policy(c: Console, request: Request) -> Response:
    form = await c.form(request)
    changes = await c.call(c.backend.set_mesh, form.get("mode", ""), "access_log" in form)
    return _done("/mesh", changes)


async def listing(c: Console, request: Request) -> Response:
    page = _page(request)
    items = await c.call(c.backend.objects, page.group, page.kind)
    rows = [
        {
            "namespace": o["metadata"].get("namespace", ""),
            "name": o["metadata"]["name"],
            "created": o["metadata"].get("creationTimestamp", ""),
            "cells": [fn(o) for _, fn in page.columns],
        }
        for o in items
    ]
    return c.render(request, "list.html", page=page, rows=rows)


def _editor(
    c: Console,
    request: Request,
    page: KindPage,
    text: str,
    namespace: str,
    problems: list[Problem],
    *,
    editing: str | None = None,
    status_code: int = 200,
) -> Response:
    view = annotate(text, problems) if problems else None
    return c.render(
        request,
        "edit.html",
        status_code=status_code,
        page=page,
        text=text,
        namespace=namespace,
        view=view,
        errors=sum(1 for p in problems if p.is_error),
        editing=editing,
        source=SOURCE,
    )


async def new(c: Console, request: Request) -> Response:
    page = _page(request)
    names = list(page.templates)
    chosen = request.query_params.get("template") or (names[0] if names else "")
    text = page.templates.get(chosen, "")
    return _editor(c, request, page, text, page.default_namespace, [])


async def edit(c: Console, request: Request) -> Response:
    page = _page(request)
    ns, name = request.path_params["ns"], request.path_params["name"]
    obj = await c.call(c.backend.get, page.group, page.kind, "" if ns == "_" else ns, name)
    if obj is None:
        raise Refused(f"{page.kind} {ns}/{name} not found")
    return _editor(c, request, page, editable(obj), ns, [], editing=f"{ns}/{name}")


def _server_problems(problems: list[dict[str, Any]], message: str) -> list[Problem]:
    out = [
        Problem(
            Severity(p.get("severity") or "Error"),
            str(p.get("message") or ""),
            field=str(p.get("field") or ""),
            resource=str(p.get("resource") or ""),
            file=SOURCE,
            line=p.get("line"),
        )
        for p in problems
    ]
    return out or [Problem(Severity.ERROR, message, file=SOURCE)]


async def apply(c: Console, request: Request) -> Response:
    page = _page(request)
    form = await c.form(request)
    text = str(form.get("yaml", "")).replace("\r\n", "\n")
    namespace = str(form.get("namespace", "")).strip() or page.default_namespace
    editing = str(form.get("editing") or "") or None
    checked = check(text, namespace, page.kind)
    if checked.errors:
        return _editor(
            c, request, page, text, namespace, checked.problems, editing=editing, status_code=422
        )
    try:
        changes = await c.call(c.backend.apply, checked.objects)
    except Refused as exc:
        # The server found what the local checks could not (admission, store limits).
        problems = _server_problems(exc.problems, str(exc))
        return _editor(
            c, request, page, text, namespace, problems, editing=editing, status_code=422
        )
    return _done(f"/r/{page.slug}", changes)


async def delete(c: Console, request: Request) -> Response:
    page = _page(request)
    ns, name = request.path_params["ns"], request.path_params["name"]
    changes = await c.call(c.backend.delete, page.group, page.kind, "" if ns == "_" else ns, name)
    return _done(f"/r/{page.slug}", changes)


async def gateway_form(c: Console, request: Request) -> Response:
    return c.render(
        request,
        "gateway_form.html",
        form={"name": "istio-egressgateway", "namespace": "istio-system", "replicas": "1",
              "ports": "80 HTTP"},
        protocols=GATEWAY_PROTOCOLS,
        reasons=[],
    )  # fmt: skip


async def gateway_create(c: Console, request: Request) -> Response:
    raw = await c.form(request)
    form = {k: str(raw.get(k, "")).strip() for k in ("name", "namespace", "replicas", "ports")}
    ports, reasons = parse_ports(form["ports"])
    if not form["replicas"].isdigit():
        reasons.append(f"replicas {form['replicas']!r}: want a whole number, 0 or more")
    if reasons:
        return c.render(
            request,
            "gateway_form.html",
            status_code=422,
            form=form,
            protocols=GATEWAY_PROTOCOLS,
            reasons=reasons,
        )
    page = BY_SLUG["egressgateways"]
    text = egress_gateway(
        form["name"], form["namespace"] or page.default_namespace, int(form["replicas"]), ports
    )
    checked = check(text, form["namespace"], page.kind)
    if checked.errors:
        # Name rules and the like: shown on the YAML the form made, at their lines.
        return _editor(c, request, page, text, form["namespace"], checked.problems,
                       status_code=422)  # fmt: skip
    try:
        changes = await c.call(c.backend.apply, checked.objects)
    except Refused as exc:
        problems = _server_problems(exc.problems, str(exc))
        return _editor(c, request, page, text, form["namespace"], problems, status_code=422)
    return _done(f"/r/{page.slug}", changes)


def edit_url(slug: str, namespace: str, name: str) -> str:
    return f"/r/{slug}/{quote(namespace or '_')}/{quote(name)}"


ROUTES: list[tuple[str, Any, list[str]]] = [
    ("/mesh", mesh, ["GET"]),
    ("/mesh/policy", set_policy, ["POST"]),
    ("/r/egressgateways/form", gateway_form, ["GET"]),
    ("/r/egressgateways/form", gateway_create, ["POST"]),
    ("/r/{slug}", listing, ["GET"]),
    ("/r/{slug}/new", new, ["GET"]),
    ("/r/{slug}/apply", apply, ["POST"]),
    ("/r/{slug}/{ns}/{name}/edit", edit, ["GET"]),
    ("/r/{slug}/{ns}/{name}/delete", delete, ["POST"]),
]
