"""Helpers for the authorization tests: the seed mesh plus policies, RBAC filters as dicts."""

from __future__ import annotations

from typing import Any

from envoy.extensions.filters.http.rbac.v3 import rbac_pb2 as http_rbac_pb2
from envoy.extensions.filters.network.rbac.v3 import rbac_pb2 as network_rbac_pb2
from google.protobuf import json_format
from tests.golden.seedworld import decode, gateway_proxy, pod, sleep_proxy, step_resources

from meshgate.model.proxy import Proxy
from meshgate.model.snapshot import Snapshot
from meshgate.security import authz


def policy(name: str, namespace: str, spec: str, annotations: str = "") -> str:
    meta = f"name: {name}, namespace: {namespace}"
    if annotations:
        meta += f", annotations: {annotations}"
    return f"""---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{{meta}}}
spec: {spec}
"""


def seed_with(*docs: str, extra: list[Any] | None = None) -> Snapshot:
    """The seed walkthrough after step 4 (sleep, ServiceEntry, egress gateway) plus ``docs``;
    a MeshConfig among ``docs`` replaces the seed's."""
    added = decode("".join(docs), "policies.yaml") if "".join(docs).strip() else []
    seed = step_resources(4)
    if any(r.kind == "MeshConfig" for r in added):
        seed = [r for r in seed if r.kind != "MeshConfig"]
    return Snapshot.build(seed + list(extra or []) + added)


def gateway(snapshot: Snapshot) -> Proxy:
    return gateway_proxy(snapshot)


def sleep(snapshot: Snapshot) -> Proxy:
    return sleep_proxy(snapshot)


def other_pod(name: str, namespace: str, ip: str, labels: dict[str, str]) -> Any:
    return pod(name, namespace, ip, labels)


def as_dict(message: Any) -> dict[str, Any]:
    return json_format.MessageToDict(message)  # type: ignore[no-any-return]


def http_rbac(snapshot: Snapshot, proxy: Proxy) -> list[dict[str, Any]]:
    """The HTTP RBAC filters' configs, as JSON-style dicts, in chain order."""
    out = []
    for f in authz.http_filters(snapshot, proxy):
        assert f.name == "envoy.filters.http.rbac"
        msg = http_rbac_pb2.RBAC()
        assert f.typed_config.Unpack(msg)
        out.append(as_dict(msg))
    return out


def network_rbac(snapshot: Snapshot, proxy: Proxy) -> list[dict[str, Any]]:
    out = []
    for f in authz.network_filters(snapshot, proxy):
        assert f.name == "envoy.filters.network.rbac"
        msg = network_rbac_pb2.RBAC()
        assert f.typed_config.Unpack(msg)
        out.append(as_dict(msg))
    return out


def names(config: dict[str, Any], key: str = "rules") -> list[str]:
    return sorted(config.get(key, {}).get("policies", {}))
