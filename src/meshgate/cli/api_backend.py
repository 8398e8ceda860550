"""``ApiBackend``: the ``Backend`` contract over the control plane's HTTP API.

Rules of this module:
- Standard library and ``meshgate.client`` only; every call is one HTTP request over the
  API's Unix socket, objects travel as the same wire dicts the store keeps.
- The server re-validates ``apply`` and refuses it whole with its problems (HTTP 422);
  they come back as ``InputError`` so the CLI prints them like its own.
- ``delete`` is one request whatever the number of keys: ``missingOk`` has the server
  skip keys that do not exist (the ``Backend`` contract) inside its one transaction.
- Label selectors are applied here, on the listed objects, as ``LocalBackend`` does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from meshgate.api.meta import ResourceKey
from meshgate.cli.backend import ChangeResult, HistoryEntry

if TYPE_CHECKING:
    from meshgate.api.registry import KindInfo
    from meshgate.client import Client

Obj = dict[str, Any]


def _query(path: str, **params: str | None) -> str:
    given = {k: v for k, v in params.items() if v is not None}
    return f"{path}?{urlencode(given)}" if given else path


def _key_params(key: ResourceKey) -> dict[str, str | None]:
    return {"group": key.group, "kind": key.kind, "namespace": key.namespace, "name": key.name}


def _problems(body: dict[str, Any]) -> list[Any]:
    from meshgate.api.problems import Problem, Severity

    return [
        Problem(
            Severity(p.get("severity", "Error")),
            str(p.get("message", "")),
            field=str(p.get("field") or ""),
            resource=str(p.get("resource") or ""),
            file=str(p.get("file") or ""),
            line=p.get("line"),
            code=str(p.get("code") or ""),
        )
        for p in body.get("problems") or []
    ]


class ApiBackend:
    def __init__(self, client: Client) -> None:
        self.client = client

    def apply(self, objects: list[Obj], dry_run: bool) -> list[ChangeResult]:
        from meshgate.api.problems import InputError
        from meshgate.client import ApiError

        try:
            body = self.client.call("POST", "/v1/apply", {"objects": objects, "dryRun": dry_run})
        except ApiError as exc:
            if exc.status == 422 and exc.body.get("problems"):
                raise InputError(_problems(exc.body)) from None
            raise
        return [
            ChangeResult(ResourceKey(*c["key"]), c["action"], c.get("object"))
            for c in body.get("changes") or []
        ]

    def get(
        self, kind: KindInfo, namespace: str | None, name: str | None, selector: str | None
    ) -> list[Obj]:
        from meshgate.cli.backend import sort_objects
        from meshgate.cli.selector import parse_selector

        wanted = parse_selector(selector)
        ns = namespace if kind.namespaced else ""
        path = _query("/v1/objects", group=kind.group, kind=kind.kind, namespace=ns, name=name)
        items: list[Obj] = self.client.call("GET", path).get("items") or []
        return sort_objects(
            [o for o in items if wanted.matches((o.get("metadata") or {}).get("labels"))]
        )

    def delete(self, keys: list[ResourceKey], dry_run: bool) -> list[ChangeResult]:
        if not keys:
            return []
        body = self.client.call(
            "POST",
            "/v1/delete",
            {"keys": [list(k) for k in keys], "dryRun": dry_run, "missingOk": True},
        )
        return [
            ChangeResult(ResourceKey(*c["key"]), c["action"], c.get("object"))
            for c in body.get("changes") or []
        ]

    def history(self, key: ResourceKey) -> list[HistoryEntry]:
        items = self.client.call("GET", _query("/v1/history", **_key_params(key))).get("items")
        return [_entry(item) for item in items or []]

    def revision(self) -> int:
        return int(self.client.call("GET", "/v1/health").get("revision", 0))


def _entry(item: Obj) -> HistoryEntry:
    """A history item: ``{object, revision, generation, deleted}``, or a bare object."""
    obj: Obj = item["object"] if "object" in item and "kind" not in item else item
    meta = obj.get("metadata") or {}
    return HistoryEntry(
        revision=int(item.get("revision") or meta.get("resourceVersion") or 0),
        generation=int(item.get("generation") or meta.get("generation") or 0),
        deleted=bool(item.get("deleted", False)),
        object=obj,
        created=item.get("created"),
    )
