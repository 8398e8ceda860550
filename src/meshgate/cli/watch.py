"""``get -w``: after the listing, one row per change of a listed kind, as kubectl's watch.

Rules:
- Changes come from the store's event log: over the control plane's API a long poll
  (``GET /v1/events?since=REV&timeout=S``, answered as soon as the store moves); on the
  local store, ``events_since`` polled every 0.25 s. The first revision is taken before
  the listing is read, so no change between the two is missed (one may show twice).
- An event is shown when its kind is one asked for, its namespace in scope, its name one
  named (if any) and its labels match ``-l``. A deletion shows the object's last state.
- A table row is printed without headers; ``-o name`` prints names, ``-o yaml`` each
  object after ``---``, ``-o json`` each object.
- Events the store no longer keeps (compacted) make the watch list everything again
  and go on from there, as kubectl's re-list after "resource version too old".
- It runs until interrupted, or until ``--request-timeout`` has passed (exit 0).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from meshgate.api.registry import KindInfo
    from meshgate.cli.fetch import Fetched

Obj = dict[str, Any]
POLL = 0.25
LONG_POLL = 10.0


def start_revision() -> int:
    from meshgate.cli.context import backend_errors, get_backend

    with backend_errors():
        return get_backend().revision()


def _next_events(since: int, wait: float) -> tuple[int, list[Obj]] | None:
    """(new revision, events after ``since``) or None when they were compacted away."""
    from meshgate.cli.api_backend import ApiBackend
    from meshgate.cli.backend import LocalBackend
    from meshgate.cli.context import backend_errors, get_backend
    from meshgate.client import ApiError
    from meshgate.store.base import Compacted

    backend = get_backend()
    with backend_errors():
        if isinstance(backend, ApiBackend):
            path = f"/v1/events?since={since}&timeout={wait:g}"
            try:
                body = backend.client.call("GET", path, timeout=wait + 30)
            except ApiError as exc:
                if exc.status == 410:
                    return None
                raise
            return int(body["revision"]), list(body.get("events") or [])
        assert isinstance(backend, LocalBackend)
        if not backend.exists:
            time.sleep(wait)
            return since, []
        deadline = time.monotonic() + wait
        while True:
            try:
                found = backend.store.events_since(since)
            except Compacted:
                return None
            if found or time.monotonic() >= deadline:
                revision = max([since, *(e.revision for e in found)])
                return revision, [
                    {"revision": e.revision, "type": e.type, "key": list(e.key), "object": e.object}
                    for e in found
                ]
            time.sleep(POLL)


def follow(
    fetched: Fetched,
    since: int,
    selector: str | None,
    show: Callable[[KindInfo, Obj], None],
    timeout: float | None,
) -> None:
    """Print each matching change from ``since`` on, until ``timeout`` (None: forever)."""
    from meshgate.cli.selector import parse_selector

    wanted = parse_selector(selector)
    kinds = {(t.kind.group, t.kind.kind): t for t in fetched.targets}
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        left = LONG_POLL if deadline is None else deadline - time.monotonic()
        if left <= 0:
            return
        got = _next_events(since, min(left, LONG_POLL))
        if got is None:  # compacted: list again, go on from now
            since = start_revision()
            from meshgate.cli.fetch import fetch

            for info, items in fetch(_args(fetched), fetched.namespace, selector).found:
                for obj in items:
                    show(info, obj)
            continue
        since, events = got
        for event in events:
            group, kind, namespace, name = event["key"]
            target = kinds.get((group, kind))
            if target is None:
                continue
            if target.kind.namespaced and fetched.namespace not in (None, namespace):
                continue
            if target.names and name not in target.names:
                continue
            obj = event["object"]
            if not wanted.matches((obj.get("metadata") or {}).get("labels")):
                continue
            show(target.kind, obj)


def _args(fetched: Fetched) -> list[str]:
    return [
        f"{t.kind.plural}.{t.kind.group}/{n}" if t.kind.group else f"{t.kind.plural}/{n}"
        for t in fetched.targets
        for n in t.names
    ] or [",".join(f"{t.kind.plural}.{t.kind.group}".rstrip(".") for t in fetched.targets)]
