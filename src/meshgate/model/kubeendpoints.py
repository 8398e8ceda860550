"""Kubernetes endpoints that are objects, not pods a selector picks: ``Endpoints`` (core/v1)
and ``EndpointSlice`` (discovery.k8s.io/v1), read as Kubernetes' controllers and Istio's
endpoint-slice controller read them.

Rules of this module:
- A slice belongs to the Service its ``kubernetes.io/service-name`` label names, in its own
  namespace; FQDN slices are ignored (Istio reads IPv4 and IPv6 slices only), and so are
  ports without a number.
- An ``Endpoints`` object counts for the Service of the same name only when that Service has
  no selector, as Kubernetes' mirroring controller copies it to a slice only then (and not
  with ``endpointslice.kubernetes.io/skip-mirror: "true"``). For a Service with a selector,
  meshgate computes the endpoints from pods (``model.services.pod_endpoints``), as the
  endpoints controller would, and ``computed_endpoints`` shows them as an Endpoints object.
- Only ready addresses count: an Endpoints' ``addresses`` (not ``notReadyAddresses``), a
  slice endpoint whose ``conditions.ready`` is unset or true. Istio sends no unhealthy
  endpoint to a proxy by default.
- A Service port takes the endpoint ports of the same name (unnamed matches unnamed), at the
  endpoint's port number: an endpoint port is already the port to dial.
- An address that is a pod's (by ``targetRef``, else by IP) carries the pod's labels, so
  subsets and auto mTLS treat it as that pod; any other address is outside the mesh.
- Pure functions over resources (typed or plain dicts); output sorted, duplicates dropped.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from meshgate.model.fields import get, get_int, get_list, get_str, str_map

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
SKIP_MIRROR_LABEL = "endpointslice.kubernetes.io/skip-mirror"


@dataclass(frozen=True, order=True)
class Record:
    """One ready address at one named port of a Service."""

    address: str
    port_name: str
    port: int
    hostname: str = ""  # the endpoint's DNS hostname (headless Services), if any
    pod: tuple[str, str] | None = None  # (namespace, name) from targetRef


def _ns(resource: Any) -> str:
    return get_str(get(resource, "metadata"), "namespace") or "default"


def _name(resource: Any) -> str:
    return get_str(get(resource, "metadata"), "name")


def _target_pod(ref: Any, namespace: str) -> tuple[str, str] | None:
    if ref is None or get_str(ref, "kind") not in ("Pod", ""):
        return None
    name = get_str(ref, "name")
    return (get_str(ref, "namespace") or namespace, name) if name else None


def from_endpoints(endpoints: Any) -> list[Record]:
    """The ready records of one Endpoints object."""
    ns = _ns(endpoints)
    out: list[Record] = []
    for subset in get_list(endpoints, "subsets"):
        ports = [(get_str(p, "name"), get_int(p, "port")) for p in get_list(subset, "ports")]
        for address in get_list(subset, "addresses"):
            ip = get_str(address, "ip")
            host = get_str(address, "hostname")
            pod = _target_pod(get(address, "target_ref"), ns)
            out.extend(Record(ip, name, port, host, pod) for name, port in ports if ip and port)
    return out


def _ready(endpoint: Any) -> bool:
    return get(get(endpoint, "conditions"), "ready") is not False


def from_slice(endpoint_slice: Any) -> list[Record]:
    """The ready records of one EndpointSlice (none for an FQDN slice)."""
    if get_str(endpoint_slice, "address_type") not in ("IPv4", "IPv6"):
        return []
    ns = _ns(endpoint_slice)
    ports = [
        (get_str(p, "name"), get_int(p, "port"))
        for p in get_list(endpoint_slice, "ports")
        if get_int(p, "port")
    ]
    out: list[Record] = []
    for endpoint in get_list(endpoint_slice, "endpoints"):
        if not _ready(endpoint):
            continue
        host = get_str(endpoint, "hostname")
        pod = _target_pod(get(endpoint, "target_ref"), ns)
        for address in get_list(endpoint, "addresses"):
            out.extend(Record(str(address), name, port, host, pod) for name, port in ports)
    return out


def slice_service(endpoint_slice: Any) -> str:
    """The name of the Service a slice belongs to ('' for none)."""
    return str_map(get(get(endpoint_slice, "metadata"), "labels")).get(SERVICE_NAME_LABEL, "")


def records_by_service(
    services: Iterable[Any], endpoints: Iterable[Any], slices: Iterable[Any]
) -> dict[tuple[str, str], tuple[Record, ...]]:
    """(namespace, Service name) -> its records from Endpoints (mirrored) and slices."""
    selectorless = {
        (_ns(s), _name(s)) for s in services if not str_map(get(get(s, "spec"), "selector"))
    }
    found: dict[tuple[str, str], set[Record]] = defaultdict(set)
    for ep in endpoints:
        key = (_ns(ep), _name(ep))
        labels = str_map(get(get(ep, "metadata"), "labels"))
        if key in selectorless and labels.get(SKIP_MIRROR_LABEL) != "true":
            found[key].update(from_endpoints(ep))
    for es in slices:
        service = slice_service(es)
        if service:
            found[(_ns(es), service)].update(from_slice(es))
    return {k: tuple(sorted(v)) for k, v in found.items()}


def computed_endpoints(
    service: Any, endpoints: Mapping[int, Iterable[Any]], ports: Iterable[Any]
) -> dict[str, Any]:
    """The Endpoints object Kubernetes' endpoints controller would write for a Service with a
    selector, from meshgate's computed endpoints (``model.services.Endpoint`` per port
    number; ``ports``: the Service's ``ServicePort`` values): one subset per set of ports an
    address serves, addresses sorted, as a wire dict ``get endpoints`` prints."""
    meta = get(service, "metadata")
    ns, name = _ns(service), _name(service)
    by_address: dict[str, list[dict[str, Any]]] = defaultdict(list)
    pods: dict[str, str] = {}
    for port in ports:
        for ep in endpoints.get(port.number, ()):
            entry: dict[str, Any] = {"port": ep.port, "protocol": "TCP"}
            if port.name:
                entry["name"] = port.name
            if port.protocol == "UDP":
                entry["protocol"] = "UDP"
            by_address[ep.address].append(entry)
            if ep.pod:
                pods[ep.address] = ep.pod
    groups: dict[str, tuple[list[dict[str, Any]], list[str]]] = {}
    for address in sorted(by_address):
        port_list = sorted(by_address[address], key=lambda p: (p.get("name", ""), p["port"]))
        key = repr(port_list)
        groups.setdefault(key, (port_list, []))[1].append(address)
    subsets = []
    for port_list, addresses in groups.values():
        items = []
        for address in addresses:
            item: dict[str, Any] = {"ip": address}
            pod = pods.get(address)
            if pod:
                pod_ns, _, pod_name = pod.partition("/")
                item["targetRef"] = {"kind": "Pod", "namespace": pod_ns, "name": pod_name}
            items.append(item)
        subsets.append({"addresses": items, "ports": port_list})
    metadata: dict[str, Any] = {"name": name, "namespace": ns}
    labels = str_map(get(meta, "labels"))
    if labels:
        metadata["labels"] = labels
    created = get_str(meta, "creation_timestamp")
    if created:
        metadata["creationTimestamp"] = created
    out: dict[str, Any] = {"apiVersion": "v1", "kind": "Endpoints", "metadata": metadata}
    if subsets:
        out["subsets"] = subsets
    return out
