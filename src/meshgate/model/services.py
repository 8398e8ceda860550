"""The unified service view: ServiceEntries and Kubernetes Services as one shape.

Rules of this module:
- One ``Service`` per host name: a ServiceEntry with three hosts gives three Services.
  Several resources may give the same host; ``model.servicemerge`` decides what a proxy sees.
- Kubernetes Services are hosted at ``NAME.NS.svc.cluster.local``, resolve ``STATIC``
  (client-side load balancing over pod endpoints, i.e. EDS) and have one VIP, the cluster IP.
  As Istio's ``ConvertService``: a headless Service (``clusterIP: None``) has no VIP and
  resolves ``NONE`` (Istio's Passthrough); an ``ExternalName`` Service resolves ``ALIAS``:
  it is another name of the service its ``externalName`` names, with no endpoints, cluster
  or listener of its own (Istio 1.21+; ``resolve_aliases``).
- A Kubernetes Service's endpoints are the ready pods its selector picks, plus the ready
  addresses of its ``Endpoints``/``EndpointSlice`` objects (``model.kubeendpoints``),
  which may be outside the mesh.
- Endpoints are computed per service port, already at the port to dial (targetPort or the
  endpoint's named port), so the translator never resolves ports itself.
- Everything here is immutable; builders take resources (typed or plain) and return values.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from meshgate.model import hosts, protocol
from meshgate.model.fields import get, get_int, get_list, get_str, str_map
from meshgate.model.kubeendpoints import Record

ALIAS = "ALIAS"  # resolution of an ExternalName Service (Istio's model.Alias)


@dataclass(frozen=True)
class ServicePort:
    name: str
    number: int
    protocol: str
    target_port: int | None = None  # numeric targetPort, when known for every endpoint
    target_port_name: str | None = None  # Kubernetes named targetPort, resolved per pod


@dataclass(frozen=True)
class Endpoint:
    address: str
    port: int
    labels: Mapping[str, str] = field(default_factory=dict)
    weight: int = 0
    pod: str = ""  # "ns/name" for pod endpoints


@dataclass(frozen=True)
class Service:
    hostname: str
    namespace: str
    name: str  # resource name
    kind: str  # "ServiceEntry" | "Service"
    ports: tuple[ServicePort, ...]
    resolution: str  # NONE | STATIC | DNS | DNS_ROUND_ROBIN | DYNAMIC_DNS
    location: str = "MESH_EXTERNAL"
    addresses: tuple[str, ...] = ()
    endpoints: Mapping[int, tuple[Endpoint, ...]] = field(default_factory=dict)
    export_to: frozenset[str] = frozenset({"*"})
    selector: Mapping[str, str] = field(default_factory=dict)
    subject_alt_names: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)  # the resource's own labels
    created: str = ""  # creationTimestamp (RFC 3339, UTC): the oldest resource wins conflicts
    external_name: str = ""  # an ExternalName Service's target host (resolution ALIAS)
    # A headless Service's DNS answers: every ready address (whatever its ports), and the
    # (hostname, address) pairs of endpoints that have a hostname.
    dns_addresses: tuple[str, ...] = ()
    dns_hostnames: tuple[tuple[str, str], ...] = ()

    def port(self, number: int) -> ServicePort | None:
        for p in self.ports:
            if p.number == number:
                return p
        return None

    def visible_to(self, namespace: str) -> bool:
        return "*" in self.export_to or namespace in self.export_to

    @property
    def is_kubernetes(self) -> bool:
        return self.kind == "Service"

    @property
    def is_alias(self) -> bool:
        return self.resolution == ALIAS

    @property
    def is_headless(self) -> bool:
        """A Kubernetes Service with ``clusterIP: None`` (endpoints are dialled directly)."""
        return self.kind == "Service" and self.resolution == "NONE"


def export_set(values: Iterable[str], own_namespace: str) -> frozenset[str]:
    items = [own_namespace if v == "." else v for v in values]
    return frozenset(items) if items else frozenset({"*"})


def _labels_match(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


@dataclass(frozen=True)
class PodInfo:
    """The parts of a Pod the model needs, extracted once."""

    namespace: str
    name: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    ip: str
    running: bool
    service_account: str
    container_ports: Mapping[str, int]  # named container ports
    hostname: str = ""  # spec.hostname (DNS name under a headless Service = spec.subdomain)
    subdomain: str = ""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def _ready(status: Any) -> bool:
    """Kubernetes lists only Ready pods as endpoints; a status without conditions (an older
    store) counts as ready when running."""
    for cond in get_list(status, "conditions"):
        if get_str(cond, "type") == "Ready":
            return get_str(cond, "status") == "True"
    return True


def pod_info(pod: Any) -> PodInfo:
    meta = get(pod, "metadata")
    spec = get(pod, "spec")
    status = get(pod, "status") or {}
    named: dict[str, int] = {}
    for container in get_list(spec, "containers"):
        for port in get_list(container, "ports"):
            pname = get_str(port, "name")
            if pname:
                named[pname] = get_int(port, "container_port")
    return PodInfo(
        namespace=get_str(meta, "namespace") or "default",
        name=get_str(meta, "name"),
        labels=str_map(get(meta, "labels")),
        annotations=str_map(get(meta, "annotations")),
        ip=get_str(status, "pod_ip"),
        running=get_str(status, "phase") == "Running" and _ready(status),
        service_account=get_str(spec, "service_account_name") or "default",
        container_ports=named,
        hostname=get_str(spec, "hostname"),
        subdomain=get_str(spec, "subdomain"),
    )


def _se_endpoints(
    hostname: str,
    resolution: str,
    ports: tuple[ServicePort, ...],
    spec: Any,
    namespace: str,
    pods: Iterable[PodInfo],
) -> dict[int, tuple[Endpoint, ...]]:
    result: dict[int, tuple[Endpoint, ...]] = {}
    entries = get_list(spec, "endpoints")
    selector = str_map(get(get(spec, "workload_selector"), "labels"))
    for port in ports:
        dial = port.target_port or port.number
        eps: list[Endpoint] = []
        if entries:
            for entry in entries:
                named = str_map(get(entry, "ports"))
                ep_port = int(named[port.name]) if port.name in named else dial
                eps.append(
                    Endpoint(
                        address=get_str(entry, "address"),
                        port=ep_port,
                        labels=str_map(get(entry, "labels")),
                        weight=get_int(entry, "weight"),
                    )
                )
        elif selector:
            for pod in pods:
                ok = pod.namespace == namespace and pod.running and bool(pod.ip)
                if ok and _labels_match(selector, pod.labels):
                    eps.append(Endpoint(pod.ip, dial, pod.labels, pod=pod.key))
        elif resolution in ("DNS", "DNS_ROUND_ROBIN") and not hosts.is_wildcard(hostname):
            eps.append(Endpoint(hostname, dial))
        result[port.number] = tuple(eps)
    return result


def from_service_entry(se: Any, pods: Iterable[PodInfo] = ()) -> list[Service]:
    """One Service per host of a ServiceEntry."""
    meta = get(se, "metadata")
    namespace = get_str(meta, "namespace") or "default"
    name = get_str(meta, "name")
    spec = get(se, "spec")
    ports = tuple(
        ServicePort(
            name=get_str(p, "name"),
            number=get_int(p, "number"),
            protocol=protocol.infer(get_str(p, "protocol"), get_str(p, "name")),
            target_port=get_int(p, "target_port") or None,
        )
        for p in get_list(spec, "ports")
    )
    resolution = get_str(spec, "resolution", "NONE")
    labels = str_map(get(meta, "labels"))
    created = get_str(meta, "creation_timestamp")
    pod_list = list(pods)
    services = []
    for raw in get_list(spec, "hosts"):
        host = hosts.expand_short_name(str(raw), namespace)
        services.append(
            Service(
                hostname=host,
                namespace=namespace,
                name=name,
                kind="ServiceEntry",
                ports=ports,
                resolution=resolution,
                location=get_str(spec, "location", "MESH_EXTERNAL"),
                addresses=tuple(str(a) for a in get_list(spec, "addresses")),
                endpoints=_se_endpoints(host, resolution, ports, spec, namespace, pod_list),
                export_to=export_set(get_list(spec, "export_to"), namespace),
                selector=str_map(get(get(spec, "workload_selector"), "labels")),
                subject_alt_names=tuple(str(s) for s in get_list(spec, "subject_alt_names")),
                labels=labels,
                created=created,
            )
        )
    return services


def _target(port: Any) -> tuple[int | None, str | None]:
    raw = get(port, "target_port")
    if raw is None or raw == "":
        return get_int(port, "port"), None
    if isinstance(raw, int) or (isinstance(raw, str) and raw.isdigit()):
        return int(raw), None
    return None, str(raw)


def kubernetes_ports(svc: Any) -> tuple[ServicePort, ...]:
    spec = get(svc, "spec")
    ports = []
    for p in get_list(spec, "ports"):
        number, named = _target(p)
        ports.append(
            ServicePort(
                name=get_str(p, "name"),
                number=get_int(p, "port"),
                protocol=protocol.infer(
                    get_str(p, "app_protocol"), get_str(p, "name"), get_str(p, "protocol")
                ),
                target_port=number,
                target_port_name=named,
            )
        )
    return tuple(ports)


def pod_endpoints(
    ports: tuple[ServicePort, ...],
    selector: Mapping[str, str],
    namespace: str,
    pods: Iterable[PodInfo],
) -> dict[int, tuple[Endpoint, ...]]:
    """Running pods selected by a Kubernetes Service, at each port's resolved targetPort."""
    selected = [
        p
        for p in pods
        if p.namespace == namespace and p.running and p.ip and _labels_match(selector, p.labels)
    ]
    result: dict[int, tuple[Endpoint, ...]] = {}
    for port in ports:
        eps = []
        for pod in selected:
            if port.target_port_name is not None:
                dial = pod.container_ports.get(port.target_port_name)
                if dial is None:
                    continue  # Kubernetes leaves such a pod out of the endpoints
            else:
                dial = port.target_port or port.number
            eps.append(Endpoint(pod.ip, dial, pod.labels, pod=pod.key))
        result[port.number] = tuple(sorted(eps, key=lambda e: (e.address, e.port)))
    return result


def record_endpoints(
    ports: tuple[ServicePort, ...],
    records: Iterable[Record],
    pods: Mapping[tuple[str, str], PodInfo],
    pods_by_ip: Mapping[str, PodInfo],
) -> dict[int, tuple[Endpoint, ...]]:
    """Endpoints/EndpointSlice records at each Service port of the same name; an address
    that is a pod's (targetRef, else IP) carries the pod's labels and key."""
    result: dict[int, tuple[Endpoint, ...]] = {}
    for port in ports:
        eps = []
        for r in records:
            if r.port_name != port.name:
                continue
            pod = pods.get(r.pod) if r.pod else None
            if pod is None or pod.ip != r.address:
                pod = pods_by_ip.get(r.address)
            labels = pod.labels if pod is not None else {}
            eps.append(Endpoint(r.address, r.port, labels, pod=pod.key if pod else ""))
        result[port.number] = tuple(eps)
    return result


def _union(*parts: Mapping[int, tuple[Endpoint, ...]]) -> dict[int, tuple[Endpoint, ...]]:
    out: dict[int, tuple[Endpoint, ...]] = {}
    for number in sorted({n for p in parts for n in p}):
        seen: dict[tuple[str, int], Endpoint] = {}
        for p in parts:
            for ep in p.get(number, ()):
                seen.setdefault((ep.address, ep.port), ep)
        out[number] = tuple(seen[k] for k in sorted(seen))
    return out


def _headless_dns(
    name: str,
    selector: Mapping[str, str],
    namespace: str,
    pods: Iterable[PodInfo],
    records: Iterable[Record],
) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """kube-dns for a headless Service: every ready address, and ``HOSTNAME.NAME.NS.svc``
    for pods whose ``subdomain`` is the Service (and endpoints with a hostname)."""
    addresses: set[str] = set()
    named: set[tuple[str, str]] = set()
    if selector:
        for p in pods:
            if not (p.namespace == namespace and p.running and p.ip):
                continue
            if _labels_match(selector, p.labels):
                addresses.add(p.ip)
                if p.hostname and p.subdomain == name:
                    named.add((p.hostname, p.ip))
    for r in records:
        addresses.add(r.address)
        if r.hostname:
            named.add((r.hostname, r.address))
    return tuple(sorted(addresses)), tuple(sorted(named))


def from_kubernetes(
    svc: Any,
    cluster_ip: str,
    pods: Iterable[PodInfo],
    records: Iterable[Record] = (),
    all_pods: Mapping[tuple[str, str], PodInfo] | None = None,
) -> Service:
    """A Kubernetes Service; ``records``: its Endpoints/EndpointSlice addresses;
    ``all_pods``: every pod by (namespace, name), to recognise pods among them."""
    meta = get(svc, "metadata")
    namespace = get_str(meta, "namespace") or "default"
    name = get_str(meta, "name")
    spec = get(svc, "spec")
    selector = str_map(get(spec, "selector"))
    ports = kubernetes_ports(svc)
    labels = str_map(get(meta, "labels"))
    created = get_str(meta, "creation_timestamp")
    hostname = hosts.kubernetes_host(name, namespace)
    target = hosts.normalize(get_str(spec, "external_name"))
    if get_str(spec, "type") == "ExternalName" and target:
        return Service(
            hostname=hostname,
            namespace=namespace,
            name=name,
            kind="Service",
            ports=ports,
            resolution=ALIAS,
            location="MESH_EXTERNAL",
            labels=labels,
            created=created,
            external_name=target,
        )
    pod_list = list(pods)
    record_list = list(records)
    everyone = all_pods if all_pods is not None else {(p.namespace, p.name): p for p in pod_list}
    by_ip = {p.ip: p for p in everyone.values() if p.ip}
    endpoints = _union(
        pod_endpoints(ports, selector, namespace, pod_list) if selector else {},
        record_endpoints(ports, record_list, everyone, by_ip) if record_list else {},
    )
    headless = get_str(spec, "cluster_ip").lower() == "none"
    dns: tuple[tuple[str, ...], tuple[tuple[str, str], ...]] = ((), ())
    if headless:
        dns = _headless_dns(name, selector, namespace, pod_list, record_list)
    return Service(
        hostname=hostname,
        namespace=namespace,
        name=name,
        kind="Service",
        ports=ports,
        resolution="NONE" if headless else "STATIC",
        location="MESH_INTERNAL",
        addresses=(cluster_ip,) if cluster_ip and not headless else (),
        endpoints=endpoints,
        selector=selector,
        labels=labels,
        created=created,
        dns_addresses=dns[0],
        dns_hostnames=dns[1],
    )


def resolve_aliases(services: Iterable[Service]) -> dict[str, tuple[tuple[str, str], ...]]:
    """Concrete host -> its aliases, sorted by (namespace, host) (Istio's
    resolveServiceAliases: hops through aliases are followed, a loop leads nowhere)."""
    raw = {(s.namespace, s.hostname): s.external_name for s in services if s.is_alias}
    if not raw:
        return {}
    by_host = {host: target for (_, host), target in raw.items()}
    out: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for alias, target in raw.items():
        seen = {alias[1], target}
        while target in by_host:
            target = by_host[target]
            if target in seen:
                break
            seen.add(target)
        else:
            out[target].append(alias)
    return {host: tuple(sorted(found)) for host, found in out.items()}
