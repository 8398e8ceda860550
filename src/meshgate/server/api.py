"""The control plane's HTTP API (JSON over a Unix socket, bearer token).

Rules:
- Every request needs ``Authorization: Bearer <token>``; the token lives in a 0600 file
  in the state directory, so only the mesh's owner can drive it.
- ``apply`` re-validates what it receives (the server never trusts the CLI's checks) and
  is all-or-nothing: any error refuses the whole request with every problem listed.
- Handlers are thin: they call the store and the control plane, nothing more.
"""

from __future__ import annotations

import asyncio
import hmac
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from meshgate.api.decode import Refused, decode_object
from meshgate.api.meta import ResourceKey
from meshgate.api.problems import Problem
from meshgate.api.yamlsource import LineIndex
from meshgate.console.server import login_handler as console_login
from meshgate.store.sqlite import StoreFull
from meshgate.telemetry.http import (
    access_log_handler,
    metrics_api_handler,
    rows_handler,
    top_handler,
)
from meshgate.validation import validate_resource
from meshgate.validation.partial import rule_problems

if TYPE_CHECKING:
    from meshgate.server.app import ControlPlane


def _problem(p: Problem) -> dict[str, Any]:
    return {
        "severity": p.severity.value,
        "message": p.message,
        "field": p.field,
        "resource": p.resource,
        "file": p.file,
        "line": p.line,
        "code": p.code,
        "text": str(p),
    }


def _stored(s: Any) -> dict[str, Any]:
    obj: dict[str, Any] = s.object
    return obj


def _version(s: Any) -> dict[str, Any]:
    """One history entry: the store revision of the write (a deletion has its own, while
    its object still carries the resourceVersion of the version it removed)."""
    return {
        "object": s.object,
        "revision": s.resource_version,
        "generation": s.generation,
        "deleted": s.deleted,
        "created": s.created,
    }


def _admit(cp: ControlPlane, objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from meshgate.server import workloads as wl
    from meshgate.server.admission import default_cluster_ips, default_owner_uids

    objects = default_owner_uids(
        objects, lambda group, kind: (s.object for s in cp.store.list(group=group, kind=kind))
    )
    # Istio's injector labels the pods it gives a sidecar (security.istio.io/tlsMode), and
    # leaves out those of a namespace whose istio-injection label says so (one applied in
    # the same call counts).
    injection = wl.namespace_injection(s.object for s in cp.store.list(kind="Namespace"))
    injection.update(wl.namespace_injection(objects))
    objects = [
        wl.inject_labels(o, injection.get((o.get("metadata") or {}).get("namespace") or "default"))
        if o.get("kind") == "Pod" and o.get("apiVersion") == "v1"
        else o
        for o in objects
    ]
    if not any(o.get("kind") == "Service" for o in objects):
        return objects
    return default_cluster_ips(objects, (s.object for s in cp.store.list(kind="Service")))


def build_app(cp: ControlPlane, token: str) -> Starlette:
    def authorized(request: Request) -> bool:
        header = request.headers.get("authorization", "")
        return hmac.compare_digest(header, f"Bearer {token}")

    def guard(handler: Any) -> Any:
        async def wrapped(request: Request) -> JSONResponse:
            if not authorized(request):
                return JSONResponse({"error": "unauthorized"}, status_code=401)
            try:
                result: JSONResponse = await handler(request)
                return result
            except KeyError as exc:
                # kubectl's shape: "Error from server (NotFound): pod default/x not found"
                what = exc.args[0] if exc.args else "not found"
                return JSONResponse({"error": str(what), "reason": "NotFound"}, status_code=404)
            except ValueError as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
            except StoreFull as exc:
                return JSONResponse(
                    {"error": str(exc), "reason": "InsufficientStorage"}, status_code=507
                )

        return wrapped

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True, "revision": cp.store.revision(), "home": str(cp.home)})

    async def apply(request: Request) -> JSONResponse:
        body = await request.json()
        objects = body.get("objects") or []
        dry_run = bool(body.get("dryRun"))
        problems: list[Problem] = []
        wire: list[dict[str, Any]] = []
        for obj in objects:
            res, probs = decode_object(obj)
            problems.extend(probs)
            if res is None and isinstance(obj, dict):
                # Every problem at once: the rules on what could be read of it, too.
                problems.extend(rule_problems(Refused(obj, "", LineIndex(), None, probs)))
            if res is not None:
                problems.extend(validate_resource(res))
                wire.append(res.to_wire())
        errors = [p for p in problems if p.is_error]
        if errors:
            return JSONResponse({"problems": [_problem(p) for p in problems]}, status_code=422)
        wire = await asyncio.to_thread(_admit, cp, wire)
        changes = await asyncio.to_thread(cp.store.apply, wire, dry_run=dry_run)
        if not dry_run:
            cp.kick()
        return JSONResponse(
            {
                "changes": [
                    {"key": list(c.key), "action": c.action, "object": c.object} for c in changes
                ],
                "problems": [_problem(p) for p in problems],
            }
        )

    async def objects(request: Request) -> JSONResponse:
        q = request.query_params
        items = await asyncio.to_thread(
            cp.store.list,
            group=q.get("group"),
            kind=q.get("kind"),
            namespace=q.get("namespace"),
        )
        name = q.get("name")
        result = [_stored(s) for s in items if not name or s.key.name == name]
        return JSONResponse({"items": result, "revision": cp.store.revision()})

    async def delete(request: Request) -> JSONResponse:
        body = await request.json()
        keys = [ResourceKey(*k) for k in body.get("keys") or []]
        dry_run = bool(body.get("dryRun"))
        # missingOk: skip absent keys in the same transaction (no lookup round trip per key).
        missing_ok = bool(body.get("missingOk"))
        changes = await asyncio.to_thread(
            cp.store.delete, keys, dry_run=dry_run, missing_ok=missing_ok
        )
        if not dry_run:
            cp.kick()
        return JSONResponse(
            {"changes": [{"key": list(c.key), "action": c.action} for c in changes]}
        )

    async def history(request: Request) -> JSONResponse:
        q = request.query_params
        key = ResourceKey(q["group"], q["kind"], q.get("namespace", ""), q["name"])
        items = await asyncio.to_thread(cp.store.history, key)
        return JSONResponse({"items": [_version(s) for s in items]})

    async def events(request: Request) -> JSONResponse:
        # A long poll for `get -w`: answers at once when the store has moved past `since`,
        # else when it does (checked every 0.2 s: one indexed read) or after `timeout`
        # (at most 30 s). A revision whose events were compacted away is 410 Expired:
        # the client lists again.
        from meshgate.store.base import Compacted

        q = request.query_params
        since = int(q.get("since", "0"))
        deadline = asyncio.get_running_loop().time() + min(float(q.get("timeout", "0")), 30.0)
        while cp.store.revision() <= since and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.2)
        try:
            found = await asyncio.to_thread(cp.store.events_since, since)
        except Compacted as exc:
            return JSONResponse({"error": str(exc), "reason": "Expired"}, status_code=410)
        return JSONResponse(
            {
                "revision": max([since, *(e.revision for e in found)]),
                "events": [
                    {"revision": e.revision, "type": e.type, "key": list(e.key), "object": e.object}
                    for e in found
                ],
            }
        )

    async def proxy_status(request: Request) -> JSONResponse:
        pod = request.query_params.get("pod") or None
        proxies = cp.proxy_statuses(pod)
        if pod is None:  # with replicas, every replica's (see server.membership)
            proxies = await cp.members.mesh_proxies(proxies)
        return JSONResponse({"proxies": proxies})

    async def pod_exec(request: Request) -> JSONResponse:
        from meshgate.runtime.pods import ContainerNotFound, ContainerNotRunning

        body = await request.json()
        try:
            argv = cp.exec_argv(
                body["namespace"],
                body["name"],
                list(body.get("command") or []),
                body.get("container") or None,
                # Only TERM (for -t) may come from the caller's environment.
                {"TERM": str(body["term"])} if body.get("term") else None,
            )
        except (ContainerNotFound, ContainerNotRunning) as exc:
            # As for logs: kubectl says "error: container X is not valid for pod Y".
            return JSONResponse({"error": str(exc), "reason": "BadRequest"}, status_code=400)
        return JSONResponse({"argv": argv})

    async def pod_log(request: Request) -> JSONResponse:
        from meshgate.runtime.pods import ContainerNotFound

        q = request.query_params
        try:
            path = cp.log_path(
                q["namespace"],
                q["name"],
                q.get("container") or "",
                previous=q.get("previous") in ("1", "true"),
            )
        except ContainerNotFound as exc:
            # kubectl checks the container itself and says "error: ...": a bad request.
            return JSONResponse({"error": str(exc), "reason": "BadRequest"}, status_code=400)
        return JSONResponse({"path": str(path)})

    async def proxy_admin(request: Request) -> JSONResponse:
        from meshgate.runtime.pods import PodError, PodNotFound

        q = request.query_params
        try:
            body = await asyncio.to_thread(
                cp.proxy_admin, q["namespace"], q["name"], q.get("path", "/config_dump")
            )
        except PodNotFound as exc:
            raise KeyError(str(exc)) from None
        except PodError as exc:
            raise ValueError(str(exc)) from None
        return JSONResponse({"body": body})

    async def trace(request: Request) -> JSONResponse:
        from meshgate.trace.service import for_control_plane

        # On the event loop: the ACKed configs are the xDS sessions' state (a quick walk).
        b = await request.json()
        result = for_control_plane(cp).trace(
            str(b.get("namespace") or "default"),
            str(b["pod"]),
            str(b["target"]),
            str(b.get("method") or "GET"),
            list(b.get("headers") or []),
        )
        return JSONResponse(result)

    async def egress_dry_run(request: Request) -> JSONResponse:
        from meshgate.trace.service import for_control_plane

        b = await request.json()
        service = for_control_plane(cp)
        result = await asyncio.to_thread(
            service.dry_run,
            str(b["mode"]) if b.get("mode") else None,
            float(b.get("sinceSeconds") or 3600),
            b.get("namespace") or None,
            list(b.get("objects") or []),
        )
        return JSONResponse(result)

    async def status(request: Request) -> JSONResponse:
        return JSONResponse(cp.status())

    async def ca_status(request: Request) -> JSONResponse:
        return JSONResponse(cp.ca_status())

    async def ca_rotate(request: Request) -> JSONResponse:
        from meshgate.security.ca import RotationError

        body = await request.json() if await request.body() else {}
        try:
            result = await cp.ca_rotate(
                float(body.get("activateAfter", 5)),
                None if body.get("overlap") is None else float(body["overlap"]),
            )
        except RotationError as exc:
            return JSONResponse({"error": str(exc), "reason": "Conflict"}, status_code=409)
        return JSONResponse(result)

    async def tokens(request: Request) -> JSONResponse:
        """Bootstrap tokens for joining nodes (``meshgate token``): GET lists, POST
        creates (ttlSeconds, description) or deletes ({"delete": ID})."""
        from meshgate.server.joinapi import JoinError

        svc = cp.node_service
        body = await request.json() if request.method == "POST" and await request.body() else {}
        try:
            if request.method == "GET":
                result = await asyncio.to_thread(svc.list_tokens)
            elif body.get("delete"):
                result = await asyncio.to_thread(svc.delete_token, str(body["delete"]))
            else:
                ttl = float(body.get("ttlSeconds", 86400))
                result = await asyncio.to_thread(
                    svc.create_token, ttl, str(body.get("description") or "")
                )
        except JoinError as exc:
            return JSONResponse({"error": str(exc)}, status_code=exc.status)
        return JSONResponse({**result, **cp.join_info()})

    async def shutdown(request: Request) -> JSONResponse:
        body = await request.json() if await request.body() else {}
        cp.request_shutdown(teardown=bool(body.get("teardown", True)))
        return JSONResponse({"ok": True})

    routes = [
        Route("/v1/health", guard(health), methods=["GET"]),
        Route("/v1/apply", guard(apply), methods=["POST"]),
        Route("/v1/objects", guard(objects), methods=["GET"]),
        Route("/v1/delete", guard(delete), methods=["POST"]),
        Route("/v1/history", guard(history), methods=["GET"]),
        Route("/v1/events", guard(events), methods=["GET"]),
        Route("/v1/proxy-status", guard(proxy_status), methods=["GET"]),
        Route("/v1/exec", guard(pod_exec), methods=["POST"]),
        Route("/v1/log", guard(pod_log), methods=["GET"]),
        Route(
            "/v1/accesslog",
            guard(
                access_log_handler(lambda q: cp.access_log(q), lambda: cp.accesslog_reader.notes())
            ),
            methods=["GET"],
        ),
        Route(
            "/v1/accesslog/rows",
            guard(rows_handler(lambda after, n: cp.accesslog_reader.local_rows(after, n))),
            methods=["GET"],
        ),
        Route(
            "/v1/top",
            guard(
                top_handler(
                    lambda q, now: cp.accesslog_reader.top(q, now),
                    lambda: cp.accesslog_reader.notes(),
                )
            ),
            methods=["GET"],
        ),
        Route(
            "/v1/metrics",
            guard(
                metrics_api_handler(
                    lambda: cp.metrics.exposition(),
                    lambda: cp.metrics_listener.url if cp.metrics_listener else None,
                    lambda: cp.accesslog_reader.notes(),
                )
            ),
            methods=["GET"],
        ),
        Route("/v1/proxy-admin", guard(proxy_admin), methods=["GET"]),
        Route("/v1/status", guard(status), methods=["GET"]),
        Route("/v1/trace", guard(trace), methods=["POST"]),
        Route("/v1/egress/dry-run", guard(egress_dry_run), methods=["POST"]),
        Route("/v1/console", guard(console_login(lambda: cp.console)), methods=["POST"]),
        Route("/v1/ca", guard(ca_status), methods=["GET"]),
        Route("/v1/ca/rotate", guard(ca_rotate), methods=["POST"]),
        Route("/v1/tokens", guard(tokens), methods=["GET", "POST"]),
        Route("/v1/shutdown", guard(shutdown), methods=["POST"]),
    ]
    return Starlette(routes=routes)
