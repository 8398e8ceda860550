"""Pages that watch the mesh: workloads and their sidecars, egress traffic, the live tail,
the traffic graph.

Rules of this module:
- A workload's sidecar sync state is ``proxy-status``'s: per xDS type SYNCED (the last
  version sent was acknowledged), STALE or NACKED, and DISCONNECTED when its stream closed.
- The traffic page reads the mesh-wide access log of the last ``window`` seconds (default
  15 min, at most ``MAX_ENTRIES`` newest entries) once per view; the host table is
  ``/v1/top``'s, the same figures as ``meshgate top``.
- The live tail polls ``/api/tail?after=ID`` (JSON, newest entries after the row id it has
  seen), so it resumes where it was and never shows a row twice.
"""

from __future__ import annotations

import time
from typing import Any

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from meshgate.console import svg, traffic
from meshgate.console.app import Console
from meshgate.console.backend import Refused

DEFAULT_WINDOW = 900.0
MAX_ENTRIES = 20000
TAIL_START = 50  # entries the tail shows on opening
TAIL_BATCH = 500

_TYPES = {"Cluster": "CDS", "Listener": "LDS", "ClusterLoadAssignment": "EDS",
          "RouteConfiguration": "RDS", "Secret": "SDS"}  # fmt: skip


def _pod_key(proxy: dict[str, Any]) -> tuple[str, str]:
    meta = proxy.get("metadata") or {}
    if meta.get("POD_NAME"):
        return str(meta.get("NAMESPACE") or ""), str(meta["POD_NAME"])
    parts = str(proxy.get("nodeId", "")).split("~")
    name, _, ns = (parts[2] if len(parts) > 2 else "").partition(".")
    return ns, name


def sync_state(proxy: dict[str, Any] | None) -> dict[str, Any]:
    if proxy is None:
        return {"connected": None, "types": {}, "errors": [], "version": "-"}
    types: dict[str, str] = {}
    errors: list[str] = []
    version = "-"
    for url, t in (proxy.get("types") or {}).items():
        short = _TYPES.get(url.rsplit(".", 1)[-1], url.rsplit(".", 1)[-1])
        state = str(t.get("state") or "-")
        types[short] = state if proxy.get("connected") else "DISCONNECTED"
        if t.get("nackError"):
            errors.append(f"{short}: {t['nackError']}")
        if short == "LDS" and t.get("ackedVersion"):
            version = str(t["ackedVersion"])
    return {
        "connected": bool(proxy.get("connected")),
        "types": types,
        "errors": errors,
        "version": version,
    }


async def workloads(c: Console, request: Request) -> Response:
    pods = await c.call(c.backend.objects, "", "Pod")
    proxies = await c.call(c.backend.proxies)
    by_pod = {_pod_key(p): p for p in proxies}
    rows = []
    for pod in pods:
        meta, status = pod["metadata"], pod.get("status") or {}
        ns, name = meta.get("namespace", ""), meta["name"]
        containers = status.get("containerStatuses") or []
        ready = sum(1 for s in containers if s.get("ready"))
        proxy = by_pod.get((ns, name))
        rows.append(
            {
                "namespace": ns,
                "name": name,
                "workload": traffic.workload_of(name),
                "phase": status.get("phase") or "Pending",
                "ready": f"{ready}/{len(containers)}" if containers else "-",
                "ip": status.get("podIP") or "",
                "kind": "gateway" if (meta.get("labels") or {}).get("istio") else "sidecar",
                "sync": sync_state(proxy),
            }
        )
    return c.render(request, "workloads.html", rows=rows, types=("CDS", "LDS", "EDS", "RDS"))


def _window(request: Request) -> float:
    raw = request.query_params.get("window") or ""
    try:
        value = float(raw) if raw else DEFAULT_WINDOW
    except ValueError:
        raise Refused(f"window {raw!r}: want seconds, e.g. 900") from None
    if not 10 <= value <= 86400:
        raise Refused(f"window {raw!r}: want 10 to 86400 seconds")
    return value


async def _entries(c: Console, window: float) -> list[dict[str, Any]]:
    entries, _ = await c.call(c.backend.access_log, since=f"{window:g}", tail=MAX_ENTRIES)
    return entries


async def traffic_page(c: Console, request: Request) -> Response:
    window = _window(request)
    entries = await _entries(c, window)
    hosts = await c.call(c.backend.top, window)
    now_ms = int(time.time() * 1000)
    charts = []
    for hs in traffic.series(entries, now_ms, window)[:12]:
        lines = hs.by_reporter
        charts.append(
            {
                "host": hs.host,
                "requests": hs.requests,
                "errors": hs.errors,
                "svgs": [
                    Markup(svg.line_chart("requests", {k: [*v.requests] for k, v in lines.items()})),  # noqa: E501
                    Markup(svg.line_chart("errors", {k: [*v.errors] for k, v in lines.items()})),
                    Markup(svg.line_chart("p50 latency", {k: v.latency for k, v in lines.items()},
                                          " ms")),
                ],
            }
        )  # fmt: skip
    return c.render(
        request,
        "traffic.html",
        window=window,
        hosts=hosts,
        charts=charts,
        blocked=traffic.blocked(entries),
        bucket=window / 30,
    )


async def tail_page(c: Console, request: Request) -> Response:
    return c.render(request, "tail.html", start=TAIL_START)


async def tail_api(c: Console, request: Request) -> Response:
    q = request.query_params
    after = q.get("after") or ""
    params: dict[str, Any] = {"host": q.get("host") or None}
    if after.isdigit() and int(after) > 0:
        params.update(after=after, tail=TAIL_BATCH)
    else:
        params.update(tail=TAIL_START)
    entries, last = await c.call(c.backend.access_log, **params)
    return JSONResponse({"entries": entries, "last": last})


async def graph_page(c: Console, request: Request) -> Response:
    window = _window(request)
    entries = await _entries(c, window)
    configured = await c.call(c.backend.objects, "istio.alibabacloud.com", "IstioGateway")
    gateways = [f"{o['metadata'].get('namespace', '')}/{o['metadata']['name']}" for o in configured]
    g = traffic.graph(entries, gateways)
    return c.render(
        request, "graph.html", window=window, graph=Markup(svg.graph_svg(g)), edges=g.edges
    )


ROUTES: list[tuple[str, Any, list[str]]] = [
    ("/workloads", workloads, ["GET"]),
    ("/traffic", traffic_page, ["GET"]),
    ("/traffic/tail", tail_page, ["GET"]),
    ("/traffic/graph", graph_page, ["GET"]),
    ("/api/tail", tail_api, ["GET"]),
]
