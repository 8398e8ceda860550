"""Egress discovery: which external destinations each workload reached through the
sidecar's passthrough, from the mesh-wide access log (``meshgate egress discover``).

Rules of this module:
- Sans-I/O: entries (the access-log API's JSON objects: the 24 keys, ``pod``, ``namespace``,
  ``reporter``, ``reason``) and pods (Kubernetes objects) in, rows and resources out.
- Only a sidecar's entries whose ``upstream_cluster`` is ``PassthroughCluster`` count: that
  is what ALLOW_ANY let out with no ServiceEntry; traffic a ServiceEntry already covers
  (``outbound|...`` clusters) keeps working under REGISTRY_ONLY and is not listed.
- One destination is (host, port, protocol): HTTP by the request's authority (without its
  port); TLS by the SNI (``requested_server_name``); anything else is TCP by the address
  the client dialed (``downstream_local_address``: the original destination, which is
  ``upstream_host`` too on the passthrough). The port is the original destination's.
- A workload is the pod's owner (a Deployment, from the pod's ownerReferences; else the
  pod itself), its namespace and its service account. Entries whose pod is gone keep the
  name the log gives (``workload_of``'s rule) and an unknown service account.
- ServiceEntries (``service_entries``): one per host, its ports named ``<proto>-<number>``
  with Istio's protocol names. A name gets ``resolution: DNS``; an IP address (raw TCP, or
  HTTP to an IP) gets the address in ``addresses`` with ``resolution: STATIC`` and the
  same address as its one endpoint, so the sidecar builds a ``<ip>_<port>`` listener that
  matches the destination the client dials (Istio: with no addresses, TCP is matched by
  port alone on ``0.0.0.0_<port>``; with NONE the cluster is ORIGINAL_DST, which works for
  sidecars but not through a gateway). Such an entry's host is a made-up name
  (``ip-A-B-C-D.discovered.external``): hosts must be names, and for TCP they only name
  the cluster.
- The ServiceEntry sits in the namespace of the workloads that used the host when they
  share one, else in the mesh's root namespace; ``exportTo`` stays unset (every namespace).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from meshgate.telemetry.entries import start_ms, workload_of

PASSTHROUGH = "PassthroughCluster"
PROTOCOLS = ("HTTP", "TLS", "TCP")
ROOT_NAMESPACE = "istio-system"
DISCOVERED_LABEL = "meshgate.io/discovered-by"
DISCOVERED_VALUE = "egress-discover"
IP_HOST_SUFFIX = ".discovered.external"

Obj = dict[str, Any]


@dataclass(frozen=True, order=True)
class Workload:
    namespace: str
    name: str
    kind: str = "Deployment"  # Deployment | Pod | ... (the pod's owner's kind)
    service_account: str = ""  # "" when the pod is gone
    labels: tuple[tuple[str, str], ...] = ()  # the pods' selector labels (owner's)

    @property
    def ref(self) -> str:
        return f"{self.kind.lower()}/{self.name}"


@dataclass(frozen=True, order=True)
class Destination:
    host: str  # a DNS name, or the IP address dialed (TCP, HTTP to an IP)
    port: int
    protocol: str  # HTTP | TLS | TCP

    @property
    def is_ip(self) -> bool:
        return is_ip(self.host)


@dataclass
class Row:
    """One workload's use of one destination."""

    workload: Workload
    destination: Destination
    count: int = 0
    last_ms: int = 0
    pods: set[str] = field(default_factory=set)

    def to_json(self) -> Obj:
        w, d = self.workload, self.destination
        return {
            "namespace": w.namespace,
            "workload": w.name,
            "workloadKind": w.kind,
            "serviceAccount": w.service_account or None,
            "host": d.host,
            "port": d.port,
            "protocol": d.protocol,
            "requests": self.count,
            "lastSeen": iso(self.last_ms),
            "pods": sorted(self.pods),
        }


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True


def iso(ms: int) -> str | None:
    if not ms:
        return None
    when = datetime.fromtimestamp(ms / 1000, UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S") + f".{ms % 1000:03d}Z"


def _split_hostport(text: str) -> tuple[str, int | None]:
    """``host:port``, ``[v6]:port``, ``host`` -> (host, port or None)."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
        return host, int(port) if port.isdigit() else None
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, int(port) if port.isdigit() else None
    return text, None


def destination_of(entry: Mapping[str, Any]) -> Destination | None:
    """The external destination of a sidecar's passthrough entry; None for any other."""
    if entry.get("reporter") != "sidecar" or entry.get("upstream_cluster") != PASSTHROUGH:
        return None
    dialed = str(entry.get("downstream_local_address") or entry.get("upstream_host") or "")
    address, port = _split_hostport(dialed) if dialed else ("", None)
    authority = str(entry.get("authority") or "")
    if authority:
        host, authority_port = _split_hostport(authority)
        port = port or authority_port or 80
        return Destination(host.lower().rstrip("."), port, "HTTP")
    sni = str(entry.get("requested_server_name") or "")
    if port is None:
        return None
    if sni:
        return Destination(sni.lower().rstrip("."), port, "TLS")
    if not address:
        return None
    return Destination(address, port, "TCP")


def _owner(pod: Obj) -> tuple[str, str] | None:
    for ref in (pod.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller", True) and ref.get("kind") and ref.get("name"):
            return str(ref["kind"]), str(ref["name"])
    return None


_HASH_LABELS = ("pod-template-hash", "controller-revision-hash", "statefulset.kubernetes.io/")


def workloads_of(
    pods: Iterable[Obj], owners: Iterable[Obj] = ()
) -> dict[tuple[str, str], Workload]:
    """(namespace, pod name) -> the pod's workload. ``owners`` (Deployments...) give the
    selector labels; without one, the pod's labels less the per-revision hashes."""
    selectors: dict[tuple[str, str, str], dict[str, str]] = {}
    for o in owners:
        meta = o.get("metadata") or {}
        match = ((o.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        selectors[(str(meta.get("namespace", "")), str(o.get("kind")), str(meta.get("name")))] = {
            str(k): str(v) for k, v in match.items()
        }
    out: dict[tuple[str, str], Workload] = {}
    for pod in pods:
        meta = pod.get("metadata") or {}
        ns, name = str(meta.get("namespace") or "default"), str(meta.get("name"))
        labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
        owner = _owner(pod)
        kind, owner_name = owner if owner else ("Pod", name)
        if kind == "ReplicaSet":
            kind, owner_name = "Deployment", workload_of(name, labels)
        selector = selectors.get((ns, kind, owner_name))
        if selector is None:
            selector = {k: v for k, v in labels.items() if not k.startswith(_HASH_LABELS)}
        spec = pod.get("spec") or {}
        sa = str(spec.get("serviceAccountName") or spec.get("serviceAccount") or "default")
        out[(ns, name)] = Workload(ns, owner_name, kind, sa, tuple(sorted(selector.items())))
    return out


@dataclass
class Discovery:
    rows: list[Row]
    sidecar_entries: int  # every sidecar entry seen, passthrough or not
    entries: int


def discover(
    entries: Iterable[Mapping[str, Any]],
    workloads: Mapping[tuple[str, str], Workload],
    namespace: str | None = None,
) -> Discovery:
    """Group the passthrough entries by workload and destination; each request once
    (the store already keeps one row per request)."""
    rows: dict[tuple[Workload, Destination], Row] = {}
    sidecar = total = 0
    for e in entries:
        total += 1
        if e.get("reporter") == "sidecar":
            sidecar += 1
        dest = destination_of(e)
        if dest is None:
            continue
        ns, pod = str(e.get("namespace") or ""), str(e.get("pod") or "")
        if namespace is not None and ns != namespace:
            continue
        w = workloads.get((ns, pod)) or _gone(ns, pod)
        row = rows.setdefault((w, dest), Row(w, dest))
        row.count += 1
        row.last_ms = max(row.last_ms, start_ms(e.get("start_time")))
        row.pods.add(pod)
    ordered = sorted(rows.values(), key=lambda r: (r.workload, r.destination))
    return Discovery(ordered, sidecar, total)


_POD_HASHES = re.compile(r"^(.+)-[0-9a-f]{6,10}-[0-9a-z]{5}$")


def _gone(namespace: str, pod: str) -> Workload:
    """A pod no longer in the mesh: a Deployment's pod name is NAME-<hash>-<suffix>."""
    m = _POD_HASHES.match(pod)
    return Workload(namespace, m.group(1), "Deployment") if m else Workload(namespace, pod, "Pod")


# -- resources ------------------------------------------------------------------------------


def ip_host(address: str) -> str:
    """The made-up host name of a ServiceEntry for an IP address."""
    return "ip-" + re.sub(r"[^0-9a-f]+", "-", address.lower()).strip("-") + IP_HOST_SUFFIX


def _dns_name(text: str, limit: int = 253) -> str:
    name = re.sub(r"[^a-z0-9.-]+", "-", text.lower()).strip("-.")
    return name[:limit].rstrip("-.")


def _namespace_for(rows: list[Row]) -> str:
    namespaces = {r.workload.namespace for r in rows}
    return namespaces.pop() if len(namespaces) == 1 else ROOT_NAMESPACE


def by_host(rows: Iterable[Row]) -> dict[str, list[Row]]:
    out: dict[str, list[Row]] = {}
    for r in rows:
        out.setdefault(r.destination.host, []).append(r)
    return dict(sorted(out.items()))


def _ports(rows: list[Row]) -> tuple[list[Obj], list[str]]:
    """One port per number; when a number was seen with two protocols, the first of
    HTTP, TLS, TCP wins and a warning says so."""
    seen: dict[int, set[str]] = {}
    for r in rows:
        seen.setdefault(r.destination.port, set()).add(r.destination.protocol)
    ports, warnings = [], []
    for number, protocols in sorted(seen.items()):
        proto = next(p for p in PROTOCOLS if p in protocols)
        if len(protocols) > 1:
            warnings.append(
                f"port {number} was seen as {', '.join(sorted(protocols))}: declared {proto}"
            )
        ports.append({"number": number, "name": f"{proto.lower()}-{number}", "protocol": proto})
    return ports, warnings


def _comment(rows: list[Row]) -> list[str]:
    lines = []
    for r in sorted(rows, key=lambda r: (r.workload, r.destination)):
        lines.append(
            f"{r.workload.namespace}/{r.workload.ref} -> {r.destination.protocol} "
            f"{r.destination.host}:{r.destination.port}: {r.count} request(s), "
            f"last {iso(r.last_ms) or '-'}"
        )
    return lines


@dataclass
class Emitted:
    """A resource to write, the comment lines to put above it, and warnings."""

    obj: Obj
    comment: list[str] = field(default_factory=list)


def service_entries(rows: Iterable[Row]) -> tuple[list[Emitted], list[str]]:
    out: list[Emitted] = []
    warnings: list[str] = []
    for host, host_rows in by_host(rows).items():
        ports, notes = _ports(host_rows)
        warnings.extend(f"{host}: {n}" for n in notes)
        ip = is_ip(host)
        name = ip_host(host) if ip else host
        spec: Obj = {"hosts": [name]}
        if ip:
            spec["addresses"] = [host.strip("[]")]
        spec["ports"] = ports
        spec["location"] = "MESH_EXTERNAL"
        if ip:
            spec["resolution"] = "STATIC"
            spec["endpoints"] = [{"address": host.strip("[]")}]
        else:
            spec["resolution"] = "DNS"
        obj: Obj = {
            "apiVersion": "networking.istio.io/v1",
            "kind": "ServiceEntry",
            "metadata": {
                "name": _dns_name(f"discovered-{name.removesuffix(IP_HOST_SUFFIX)}"),
                "namespace": _namespace_for(host_rows),
                "labels": {DISCOVERED_LABEL: DISCOVERED_VALUE},
            },
            "spec": spec,
        }
        out.append(Emitted(obj, _comment(host_rows)))
    return out, warnings
