"""The control plane's side of ``trace`` and ``egress dry-run``: which configs, which pods.

Rules:
- ``trace`` reads each proxy's configuration as the xDS server recorded its ACK (what that
  Envoy runs), never a fresh translation; a proxy that has ACKed nothing yet is an error
  that says so. Names resolve as the pod's DNS answers them (the world's names and the
  mesh's own zone, with the pod's search domains).
- ``dry_run`` asks the same question of a mesh that does not exist yet: the snapshot with
  the outbound traffic policy changed is translated (translate is pure) for the source pods
  and the gateways, and each recent request of the mesh-wide access log is traced through
  both the current translation and the changed one; those the change would refuse are
  reported with the trace's reason, grouped by source workload, host, port and protocol.
  With resources given (``-f``) the changed snapshot is the store's resources with those
  applied on top (same key replaces), built as the reconciler builds its own; controllers
  do not run, so an ASMEgressTrafficPolicy among them is refused with a reason.
- Only sidecars' outbound entries are traced (a gateway's entry continues a sidecar's
  request, whose trace walks the gateway). A record whose pod is gone is traced from a
  running replica of its Deployment; with none left it is counted under ``skipped``.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from meshgate.api.meta import Resource, ResourceKey
from meshgate.model.hosts import DOMAIN_SUFFIX
from meshgate.model.proxy import PROXY_TYPE_ANNOTATION, Proxy, node_id
from meshgate.model.services import PodInfo
from meshgate.model.snapshot import Snapshot
from meshgate.telemetry.entries import workload_of
from meshgate.telemetry.store import Query
from meshgate.trace.config import ProxyView
from meshgate.trace.result import Origin, Request, Source
from meshgate.trace.target import parse_target
from meshgate.trace.walk import Mesh, Walker
from meshgate.translate import translate

REFUSING = {"blocked", "reset", "denied", "no-route", "refused", "no-cluster", "no-endpoint"}
MODES = ("ALLOW_ANY", "REGISTRY_ONLY")
# A Deployment's pod: NAME-<template hash>-<suffix> (telemetry.discover reads gone pods so)
_POD_HASHES = re.compile(r"^(.+)-[0-9a-f]{6,10}-[0-9a-z]{5}$")


class TraceError(ValueError):
    """A request the trace cannot answer (unknown pod, proxy not connected, bad target)."""


def find_pod(snap: Snapshot, namespace: str, name: str) -> PodInfo:
    pod = snap.pods.get((namespace, name))
    if pod is not None:
        return pod
    # deploy/NAME or a pod-name prefix (the generated suffix left out), if it is unique
    base = name.split("/", 1)[1] if name.startswith(("deploy/", "deployment/")) else name
    hits = [p for (ns, n), p in snap.pods.items() if ns == namespace and n.startswith(base + "-")]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        raise TraceError(f'pods "{name}" not found in namespace {namespace}')
    raise TraceError(f"{name} names {len(hits)} pods in {namespace}: give one pod's full name")


def proxy_of(pod: PodInfo) -> Proxy:
    router = pod.annotations.get(PROXY_TYPE_ANNOTATION) == "router"
    return Proxy(
        kind="router" if router else "sidecar",
        ip=pod.ip,
        pod=pod.name,
        namespace=pod.namespace,
        labels=dict(pod.labels),
        service_account=pod.service_account,
    )


def resolve(zone: Mapping[str, list[str]], name: str, namespace: str) -> list[str]:
    """The pod's DNS answer for ``name``: as given, then with the pod's search domains."""
    candidates = [name]
    if "." not in name.rstrip(".") or name.count(".") == 1:
        candidates += [
            f"{name}.{namespace}.svc.{DOMAIN_SUFFIX}",
            f"{name}.svc.{DOMAIN_SUFFIX}",
            f"{name}.{DOMAIN_SUFFIX}",
        ]
    for cand in candidates:
        values = zone.get(cand.lower().rstrip("."))
        for _ in range(4):  # CNAME chains (ExternalName)
            if values and len(values) == 1 and values[0].endswith("."):
                values = zone.get(values[0].lower().rstrip("."))
        if values:
            return list(values)
    return []


def mode_origin(snap: Snapshot, proxy: Proxy) -> tuple[str, Origin]:
    sidecar = snap.sidecar_for(proxy)
    mode = snap.outbound_mode(proxy)
    if sidecar is not None and mode != snap.mesh.outbound_mode:
        meta = sidecar.get("metadata", {}) if isinstance(sidecar, dict) else sidecar.metadata
        ns = meta.get("namespace", "") if isinstance(meta, dict) else meta.namespace
        name = meta.get("name", "") if isinstance(meta, dict) else meta.name
        return mode, Origin("Sidecar", ns, name, "outboundTrafficPolicy")
    return mode, Origin("MeshConfig", "", "default", "outboundTrafficPolicy")


def host_origin(snap: Snapshot) -> Callable[[str], Origin | None]:
    def lookup(host: str) -> Origin | None:
        services = snap.services_by_host.get(host, ())
        if not services:
            return None
        s = services[0]
        return Origin(s.kind, s.namespace, s.name, f"host {host}")

    return lookup


Views = Callable[[PodInfo], ProxyView | None]


def build_mesh(
    snap: Snapshot,
    views: Views,
    source: PodInfo,
    gateway_only: bool,
    zone: Mapping[str, list[str]] | None = None,
) -> Mesh:
    by_ip = {p.ip: p for p in snap.pods.values() if p.ip}

    def proxy_at(ip: str) -> tuple[str, ProxyView, bool] | None:
        pod = by_ip.get(ip)
        if pod is None:
            return None
        view = views(pod)
        if view is None or view.empty:
            return None
        return pod.key, view, proxy_of(pod).is_router

    mode, origin = mode_origin(snap, proxy_of(source))
    return Mesh(
        proxy_at=proxy_at,
        host_origin=host_origin(snap),
        mode_origin=origin,
        mode=mode,
        gateway_only=gateway_only,
        ssrf_guard=snap.mesh.gateway_ssrf_guard,
        resolve=lambda name: resolve(zone or {}, name, source.namespace),
    )


def run_trace(
    snap: Snapshot,
    views: Views,
    zone: Mapping[str, list[str]],
    source: PodInfo,
    request: Request,
    gateway_only: bool,
) -> dict[str, Any]:
    view = views(source)
    if view is None or view.empty:
        raise TraceError(
            f"the proxy of pod {source.key} has acknowledged no configuration yet "
            "(see `meshgate proxy-status`)"
        )
    if request.ip is None:
        ips = resolve(zone, request.host, source.namespace)
        if not ips and not _is_ip(request.host):
            src = Source(source.namespace, source.name, source.ip, source.service_account)
            out = {
                "verdict": "unresolved",
                "status": "no-answer",
                "reason": f"the mesh's DNS has no address for {request.host}: the client fails "
                "before any proxy sees it (curl: Could not resolve host)",
                "fix": f"check the name, or register {request.host} (a ServiceEntry with "
                "addresses, or a world/uplink name)",
                "hops": [],
                "source": {"namespace": src.namespace, "pod": src.pod, "ip": src.ip},
            }
            return out
        request = dataclasses.replace(request, ip=ips[0] if ips else request.host)
    mesh = build_mesh(snap, views, source, gateway_only, zone)
    src = Source(
        source.namespace, source.name, source.ip, source.service_account, snap.mesh.trust_domain
    )
    result = Walker(mesh, request, src).run(view, source.key)
    return result.to_json()


def _is_ip(value: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


class TraceService:
    """Glue over the running control plane (its snapshot, xDS server, DNS zone, log store)."""

    def __init__(
        self,
        snapshot: Callable[[], Snapshot],
        acked: Callable[[str], Mapping[str, Any] | None],
        zone: Callable[[], Mapping[str, list[str]]],
        objects: Callable[[str], list[dict[str, Any]]],
        access_log: Callable[[Query], list[tuple[int, dict[str, Any]]]],
        resources: Callable[[], list[Resource]] = list,
    ) -> None:
        self._snapshot = snapshot
        self._acked = acked
        self._zone = zone
        self._objects = objects
        self._access_log = access_log
        self._resources = resources  # the store's resources decoded (for ``dry_run -f``)

    def gateway_only(self) -> bool:
        for obj in self._objects("MeshConfig"):
            spec = obj.get("spec") or {}
            if spec.get("egressEnforcement") == "GATEWAY_ONLY":
                return True
        return False

    def acked_view(self, pod: PodInfo) -> ProxyView | None:
        proxy = proxy_of(pod)
        nid = node_id(proxy.kind, pod.ip, pod.name, pod.namespace)
        found = self._acked(nid)
        return None if found is None else ProxyView.from_packed(nid, found)

    def trace(
        self, namespace: str, pod: str, target: str, method: str, headers: list[list[str]]
    ) -> dict[str, Any]:
        snap = self._snapshot()
        source = find_pod(snap, namespace, pod)
        request = parse_target(target, method, tuple((str(k), str(v)) for k, v in headers))
        return run_trace(snap, self.acked_view, self._zone(), source, request, self.gateway_only())

    def dry_run(
        self,
        mode: str | None,
        since_seconds: float,
        namespace: str | None,
        objects: Sequence[Mapping[str, Any]] = (),
        limit: int = 2000,
    ) -> dict[str, Any]:
        """Which recent requests ``mode`` and/or ``objects`` (resources applied on top of
        the store's: same key replaces) would refuse. ``mode`` None keeps the changed
        snapshot's own mode (the MeshConfig among ``objects``, else the current one)."""
        if mode is not None and mode not in MODES:
            raise TraceError(f"--mode {mode}: must be one of {', '.join(MODES)}")
        if mode is None and not objects:
            raise TraceError("nothing to try: give --mode, or -f with the changed resources")
        snap = self._snapshot()
        changed = changed_snapshot(self._resources, objects) if objects else snap
        if mode is not None:
            mesh = dataclasses.replace(changed.mesh, outbound_mode=mode)
            changed = dataclasses.replace(changed, mesh=mesh, _memo={})
        cache: dict[tuple[int, str], ProxyView] = {}

        def views_of(s: Snapshot) -> Views:
            def view(pod: PodInfo) -> ProxyView | None:
                key = (id(s), pod.key)
                if key not in cache:
                    proxy = proxy_of(pod)
                    cache[key] = ProxyView.from_config(proxy.node_id, translate(s, proxy))
                return cache[key]

            return view

        since_ms = int((time.time() - since_seconds) * 1000)
        # Sidecars only: a gateway's entry continues a sidecar's request, whose trace walks
        # through the gateway already (counting both would count the request twice).
        query = Query(namespace=namespace, reporter="sidecar", since_ms=since_ms, tail=limit)
        rows = self._access_log(query)
        zone, gw_only = self._zone(), self.gateway_only()
        groups: dict[tuple[str, ...], dict[str, Any]] = {}
        gone: dict[tuple[str, str], int] = {}
        seen = 0
        for _, entry in rows:
            found = _recorded_request(entry)
            if found is None:
                continue
            request, ns, pod_name = found
            source = snap.pods.get((ns, pod_name)) or _sibling(snap, ns, pod_name)
            if source is None:
                gone[(ns, pod_name)] = gone.get((ns, pod_name), 0) + 1
                continue
            seen += 1
            workload = workload_of(source.name, dict(source.labels))
            key = (
                ns,
                workload,
                request.protocol,
                request.host,
                str(request.port),
                request.method,
                request.path,
            )
            if key in groups:
                groups[key]["count"] += 1
                continue
            now = run_trace(snap, views_of(snap), zone, source, request, gw_only)
            then = run_trace(changed, views_of(changed), zone, source, request, gw_only)
            groups[key] = {
                "namespace": ns,
                "workload": workload,
                "pod": source.name,
                "protocol": request.protocol,
                "host": request.host,
                "port": request.port,
                "method": request.method if request.protocol == "http" else None,
                "path": request.path if request.protocol == "http" else None,
                "count": 1,
                "recorded": entry.get("response_code"),
                "now": {"verdict": now["verdict"], "status": now["status"]},
                "after": then,
                "refused": then["verdict"] in REFUSING and now["verdict"] not in REFUSING,
            }
        refused = [g for g in groups.values() if g["refused"]]
        kept = [g for g in groups.values() if not g["refused"]]
        return {
            "mode": changed.mesh.outbound_mode,
            "resources": [_key_text(o) for o in objects],
            "requests": seen,
            # The store had more records in the window than were looked at (the newest).
            "limited": len(rows) >= limit,
            "refused": refused,
            "unchanged": kept,
            # Requests of pods that are gone, with no pod of their workload left to stand in.
            "skipped": [
                {"namespace": ns, "pod": pod, "count": n} for (ns, pod), n in sorted(gone.items())
            ],
        }


def changed_snapshot(
    resources: Callable[[], list[Resource]], objects: Sequence[Mapping[str, Any]]
) -> Snapshot:
    """The store's resources with ``objects`` applied on top (same key replaces), built as
    the reconciler builds its snapshot. Bad objects raise TraceError naming each problem;
    controllers do not run (an ASMEgressTrafficPolicy is not compiled)."""
    from meshgate.api.decode import decode_object

    extra: dict[ResourceKey, Resource] = {}
    problems: list[str] = []
    for obj in objects:
        if not isinstance(obj, Mapping):
            problems.append(f"{obj!r}: not an object (a mapping with apiVersion and kind)")
            continue
        if obj.get("kind") == "ASMEgressTrafficPolicy":
            problems.append(
                f"{_key_text(obj)}: an ASMEgressTrafficPolicy is compiled by a controller, "
                "which a dry run does not run; give the resources it makes (`meshgate get "
                "se,gw,vs,dr,sidecar,authorizationpolicy -A -o yaml` after applying it)"
            )
            continue
        res, probs = decode_object(dict(obj))
        if res is None:  # each problem names the object, its field and the reason
            problems += [str(p) for p in probs] or [f"{_key_text(obj)}: cannot be decoded"]
            continue
        extra[res.key] = res
    if problems:
        raise TraceError("cannot use the given resources: " + "; ".join(problems))
    merged = [r for r in resources() if r.key not in extra] + list(extra.values())
    return Snapshot.build(merged)


def _key_text(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), Mapping) else {}
    assert isinstance(meta, Mapping)
    ns = meta.get("namespace")
    return f"{obj.get('kind')} {ns + '/' if ns else ''}{meta.get('name')}"


def _sibling(snap: Snapshot, namespace: str, pod: str) -> PodInfo | None:
    """A running pod of the same Deployment as ``pod``, gone (its name NAME-<hash>-<suffix>):
    the replica that now makes the requests the gone one made. None for a bare pod."""
    m = _POD_HASHES.match(pod)
    if m is None:
        return None
    for (ns, _), p in sorted(snap.pods.items()):
        if ns == namespace and workload_of(p.name, dict(p.labels)) == m.group(1):
            return p
    return None


def _recorded_request(entry: Mapping[str, Any]) -> tuple[Request, str, str] | None:
    """The client request an outbound sidecar entry records, with its source pod."""
    cluster = str(entry.get("upstream_cluster") or "")
    if cluster.startswith("inbound") or cluster == "InboundPassthroughCluster":
        return None
    local = str(entry.get("downstream_local_address") or "")
    ip, _, port = local.rpartition(":")
    if not port.isdigit():
        return None
    ns, pod = str(entry.get("namespace") or ""), str(entry.get("pod") or "")
    method = entry.get("method")
    sni = entry.get("requested_server_name")
    if method:
        authority = str(entry.get("authority") or ip)
        host = authority.rsplit(":", 1)[0] if authority.count(":") == 1 else authority
        path = str(entry.get("path") or "/")
        headers = (("host", authority),) if authority != host else ()
        return Request("http", host, int(port), path, str(method), headers, ip), ns, pod
    if sni:
        return Request("tls", str(sni), int(port), ip=ip), ns, pod
    return Request("tcp", ip, int(port), ip=ip), ns, pod


def for_control_plane(cp: Any) -> TraceService:
    """A TraceService over the running control plane (``server.app.ControlPlane``)."""
    return TraceService(
        snapshot=lambda: cp.reconciler.snapshot,
        acked=cp.xds.acked_resources,
        zone=cp._zone_for,  # the zone the node's DNS serves (world + mesh layers)
        objects=lambda kind: [o.object for o in cp.store.list(kind=kind)],
        access_log=cp.access_log,
        resources=lambda: _decoded(o.object for o in cp.store.list()),
    )


def _decoded(objects: Iterable[dict[str, Any]]) -> list[Resource]:
    """Stored objects as the reconciler decodes them for its snapshot (undecodable skipped,
    as it skips them)."""
    from meshgate.api.decode import decode_object

    out = []
    for obj in objects:
        res, _ = decode_object(obj)
        if res is not None:
            out.append(res)
    return out
