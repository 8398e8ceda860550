"""The console's way to the control plane: its HTTP API, as the CLI uses it.

Rules of this module:
- Every call goes through ``meshgate.client.Client`` (the API's Unix socket and token):
  the console holds no store handle, so its writes are the CLI's writes (``/v1/apply``
  re-validates and applies all-or-nothing; ``/v1/delete`` records the deletion's
  revision) and its reads see what ``meshgate get`` sees.
- Calls block (the client is synchronous); the routes run them in a thread, never on
  the event loop that also serves the API they call.
- An API refusal becomes ``Refused`` with the server's problems, for the page to show.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from meshgate.client import ApiError, Client

MESH_CONFIG = ("meshgate.io", "MeshConfig", "", "default")
POLICIES = ("ALLOW_ANY", "REGISTRY_ONLY")
SIDECAR_LOG = "/dev/stdout"  # Istio's accessLogFile for "log to the proxy's output"


class Refused(Exception):
    def __init__(self, message: str, problems: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


@dataclass
class Change:
    kind: str
    namespace: str
    name: str
    action: str


@dataclass
class Backend:
    home: Path
    client: Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = Client(self.home)

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        try:
            return self.client.call(method, path, body)
        except ApiError as exc:
            problems = exc.body.get("problems") if isinstance(exc.body, dict) else None
            raise Refused(str(exc), list(problems or [])) from None

    # -- reads --------------------------------------------------------------------------

    def objects(self, group: str, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        params = {"group": group, "kind": kind}
        if namespace:
            params["namespace"] = namespace
        items: list[dict[str, Any]] = self._call("GET", f"/v1/objects?{urlencode(params)}")["items"]
        return sorted(
            items,
            key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]),
        )

    def get(self, group: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        params = {"group": group, "kind": kind, "name": name}
        if namespace:
            params["namespace"] = namespace
        items = self._call("GET", f"/v1/objects?{urlencode(params)}")["items"]
        return items[0] if items else None

    def mesh_settings(self) -> tuple[str, str]:
        """(outbound traffic policy, sidecars' accessLogFile or "")."""
        mesh = self.get(*MESH_CONFIG)
        spec = (mesh or {}).get("spec") or {}
        mode = (spec.get("outboundTrafficPolicy") or {}).get("mode") or "ALLOW_ANY"
        return str(mode), str(spec.get("accessLogFile") or "")

    def proxies(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/v1/proxy-status")["proxies"]
        return result

    def access_log(self, **params: Any) -> tuple[list[dict[str, Any]], int]:
        query = urlencode({k: v for k, v in params.items() if v is not None})
        data = self._call("GET", f"/v1/accesslog?{query}")
        return list(data["entries"]), int(data["last"])

    def top(self, window: float) -> list[dict[str, Any]]:
        hosts: list[dict[str, Any]] = self._call("GET", f"/v1/top?window={window:g}")["hosts"]
        return hosts

    def revision(self) -> int:
        return int(self._call("GET", "/v1/health")["revision"])

    # -- writes -------------------------------------------------------------------------

    def apply(self, objects: list[dict[str, Any]]) -> list[Change]:
        data = self._call("POST", "/v1/apply", {"objects": objects})
        return [Change(c["key"][1], c["key"][2], c["key"][3], c["action"]) for c in data["changes"]]

    def delete(self, group: str, kind: str, namespace: str, name: str) -> list[Change]:
        data = self._call("POST", "/v1/delete", {"keys": [[group, kind, namespace, name]]})
        return [Change(c["key"][1], c["key"][2], c["key"][3], c["action"]) for c in data["changes"]]

    def set_mesh(self, mode: str, access_log: bool) -> list[Change]:
        """The mesh's outbound traffic policy and the sidecars' access log, as applying
        ``2-registry-only.yaml`` with ``meshgate apply`` sets the first: the rest of the
        MeshConfig is kept as it is."""
        if mode not in POLICIES:
            raise Refused(f"outboundTrafficPolicy {mode!r}: want one of {', '.join(POLICIES)}")
        mesh = self.get(*MESH_CONFIG) or {
            "apiVersion": "meshgate.io/v1alpha1",
            "kind": "MeshConfig",
            "metadata": {"name": "default"},
        }
        spec = dict(mesh.get("spec") or {})
        spec["outboundTrafficPolicy"] = {**(spec.get("outboundTrafficPolicy") or {}), "mode": mode}
        if access_log:
            spec["accessLogFile"] = spec.get("accessLogFile") or SIDECAR_LOG
        else:
            spec.pop("accessLogFile", None)
        wire = {
            "apiVersion": mesh["apiVersion"],
            "kind": "MeshConfig",
            "metadata": {"name": mesh["metadata"]["name"]},
            "spec": spec,
        }
        return self.apply([wire])
