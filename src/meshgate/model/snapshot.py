"""The immutable model snapshot: every resource of one revision, indexed for the translator.

Rules of this module:
- ``Snapshot.build(resources)`` is the only constructor. It sorts everything by resource key,
  so the same set of resources always gives the same snapshot, whatever the input order.
- A snapshot is never mutated after ``build``; a new revision builds a new snapshot.
- Indexes answer the translator's questions in (amortised) constant time: services by host,
  VirtualServices by host (sidecars; ordered per client by ``model.meshvs``) and by
  gateway (routers), DestinationRules by namespace, Sidecars by namespace, Gateways by
  selector, pods by name.
- Istio's lookup rules live here: DestinationRule path client ns -> service ns -> root ns,
  over rules merged per host (``model.destinationrules``); ``exportTo`` visibility; Sidecar
  selection (workload selector > namespace-wide > root ns); several services for one host
  picked and merged per proxy (``model.servicemerge``).
- Kubernetes Secrets are kept decoded by (namespace, name) for SDS (``model.secrets``); the
  translator decides which of them a proxy may see.
- Per-proxy views (the services a Sidecar scope imports) are memoised in the snapshot: it is
  immutable, so a view computed once stays valid; the memo is only ever added to.
- A ServiceEntry's services are derived once per resource object, not once per snapshot
  (``_SE_MEMO``): decoded resources are immutable and the store's decoder hands out the
  same object while its version stands, so with 10,000 ServiceEntries a change re-derives
  the one it touched. Not those whose endpoints come from pods (a ``workloadSelector``
  without ``endpoints``): pods change under them. The memo holds only the last build's
  entries (and the objects themselves, so an id is never reused while it is there).
- Kubernetes cluster IPs: ``spec.clusterIP`` when set; else a deterministic address in
  10.96.0.0/16 from a hash of ``ns/name``, collisions resolved in sorted key order. Headless
  (``None``) and ``ExternalName`` Services have none.
- ExternalName aliases as Istio's ``resolveServiceAliases``: each alias is followed through
  other aliases to a concrete host (a loop resolves to nothing); a concrete service is then
  also reached by the names of its aliases, those a proxy's Sidecar imports
  (``aliases_for``).
- The DNS zone is kube-dns's: a cluster IP per Service, a headless Service's ready
  endpoint addresses (and ``HOSTNAME.NAME.NS.svc.cluster.local`` per named endpoint), and
  a CNAME to the target for an ExternalName Service.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from meshgate.api.kinds.meshgate_kinds import DEFAULT_RETRY_ON
from meshgate.model import hosts, meshvs, servicemerge
from meshgate.model.destinationrules import DestinationRuleIndex, build_index
from meshgate.model.fields import get, get_int, get_list, get_str, str_map
from meshgate.model.kubeendpoints import records_by_service
from meshgate.model.proxy import PROXY_TYPE_ANNOTATION, Proxy, parse_node_id
from meshgate.model.secrets import SecretIndex
from meshgate.model.services import (
    PodInfo,
    Service,
    export_set,
    from_kubernetes,
    from_service_entry,
    pod_info,
    resolve_aliases,
)

NETWORKING = "networking.istio.io"
DISCOVERY = "discovery.k8s.io"
SECURITY = "security.istio.io"
MESHGATE = "meshgate.io"
ALIBABA = "istio.alibabacloud.com"
ROOT_NAMESPACE = "istio-system"
RBAC = "rbac.authorization.k8s.io"
RBAC_KINDS = ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")
SERVICE_CIDR = ipaddress.ip_network("10.96.0.0/16")
MESH_GATEWAY = "mesh"
# id(ServiceEntry resource) -> (that resource, its services): see the module rules.
_SE_MEMO: dict[int, tuple[Any, list[Service]]] = {}


def _group(resource: Any) -> str:
    api_version = get_str(resource, "api_version")
    return api_version.rsplit("/", 1)[0] if "/" in api_version else ""


def _ns(resource: Any) -> str:
    return get_str(get(resource, "metadata"), "namespace") or "default"


def _name(resource: Any) -> str:
    return get_str(get(resource, "metadata"), "name")


def _sort_key(resource: Any) -> tuple[str, str]:
    return (_ns(resource), _name(resource))


def labels_match(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def istio_gateway_labels(name: str) -> dict[str, str]:
    """Pod labels of a gateway deployed from an ``IstioGateway`` named ``name``.

    Mirrors the upstream chart (``istio-egressgateway`` -> ``app: istio-egressgateway``,
    ``istio: egressgateway``) so Gateway selectors written for Istio select it.
    """
    return {"app": name, "istio": name.removeprefix("istio-")}


@dataclass(frozen=True)
class MeshSettings:
    outbound_mode: str = "ALLOW_ANY"
    access_log_file: str = ""
    access_log_encoding: str = "JSON"
    access_log_format: str = ""
    connect_timeout: str = "10s"
    root_namespace: str = ROOT_NAMESPACE
    trust_domain: str = "cluster.local"
    retry_attempts: int = 2
    retry_on: str = DEFAULT_RETRY_ON
    enable_auto_mtls: bool = True
    # MeshConfig enableEnvoyAccessLogService: proxies stream their access log (ALS).
    access_log_service: bool = True
    gateway_ssrf_guard: bool = True
    # MeshConfig's default exportTo per kind, for resources that set none (() means "*").
    default_service_export_to: tuple[str, ...] = ()
    default_virtual_service_export_to: tuple[str, ...] = ()
    default_destination_rule_export_to: tuple[str, ...] = ()


def _mesh_settings(mesh: Any | None) -> MeshSettings:
    if mesh is None:
        return MeshSettings()
    spec = get(mesh, "spec")
    retry = get(spec, "default_http_retry_policy")
    defaults = MeshSettings()
    return MeshSettings(
        outbound_mode=get_str(get(spec, "outbound_traffic_policy"), "mode", "ALLOW_ANY"),
        access_log_file=get_str(spec, "access_log_file"),
        access_log_encoding=get_str(spec, "access_log_encoding", "JSON"),
        access_log_format=get_str(spec, "access_log_format"),
        connect_timeout=get_str(spec, "connect_timeout", "10s"),
        root_namespace=get_str(spec, "root_namespace", ROOT_NAMESPACE),
        trust_domain=get_str(spec, "trust_domain", "cluster.local"),
        retry_attempts=get_int(retry, "attempts", defaults.retry_attempts)
        if retry is not None
        else defaults.retry_attempts,
        retry_on=get_str(retry, "retry_on", defaults.retry_on),
        enable_auto_mtls=get(spec, "enable_auto_mtls", True) is not False,
        access_log_service=get(spec, "enable_envoy_access_log_service", True) is not False,
        gateway_ssrf_guard=get(spec, "gateway_ssrf_guard", True) is not False,
        default_service_export_to=_strings(spec, "default_service_export_to"),
        default_virtual_service_export_to=_strings(spec, "default_virtual_service_export_to"),
        default_destination_rule_export_to=_strings(spec, "default_destination_rule_export_to"),
    )


def _strings(spec: Any, name: str) -> tuple[str, ...]:
    return tuple(str(v) for v in get_list(spec, name))


def gateway_key(namespace: str, name: str) -> str:
    return f"{namespace}/{name}"


def vs_gateways(vs: Any) -> list[str]:
    """A VirtualService's top-level gateways as ``ns/name`` keys (or ``mesh``)."""
    raw = get_list(get(vs, "spec"), "gateways") or [MESH_GATEWAY]
    return [qualify_gateway(str(g), _ns(vs)) for g in raw]


def qualify_gateway(ref: str, namespace: str) -> str:
    if ref == MESH_GATEWAY or "/" in ref:
        return ref
    return gateway_key(namespace, ref)


@dataclass(frozen=True)
class Snapshot:
    mesh: MeshSettings
    services: tuple[Service, ...]
    pods: Mapping[tuple[str, str], PodInfo]
    gateways: tuple[Any, ...]
    virtual_services: tuple[Any, ...]
    destination_rules: tuple[Any, ...]
    sidecars: tuple[Any, ...]
    authorization_policies: tuple[Any, ...]
    peer_authentications: tuple[Any, ...]
    kubernetes_services: tuple[Any, ...]
    istio_gateways: tuple[Any, ...]
    cluster_ips: Mapping[tuple[str, str], str]
    # indexes
    services_by_host: Mapping[str, tuple[Service, ...]] = field(repr=False)
    mesh_vs_by_host: Mapping[str, tuple[Any, ...]] = field(repr=False)
    mesh_vs_wildcards: tuple[tuple[str, Any], ...] = field(repr=False)
    vs_by_gateway: Mapping[str, tuple[Any, ...]] = field(repr=False)
    dr_index: DestinationRuleIndex = field(repr=False)
    sidecars_by_namespace: Mapping[str, tuple[Any, ...]] = field(repr=False)
    secrets: SecretIndex = field(repr=False)
    # concrete host -> ((namespace, alias host), ...) of the ExternalName Services naming it
    aliases: Mapping[str, tuple[tuple[str, str], ...]] = field(default_factory=dict, repr=False)
    # Roles, ClusterRoles and their bindings: who may read Secrets (security.secretaccess)
    rbac: tuple[Any, ...] = field(default=(), repr=False)
    _memo: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)

    # ---- construction -------------------------------------------------------------------

    @classmethod
    def build(cls, resources: Iterable[Any]) -> Snapshot:
        by_kind: dict[tuple[str, str], list[Any]] = defaultdict(list)
        for r in resources:
            by_kind[(_group(r), get_str(r, "kind"))].append(r)
        for items in by_kind.values():
            items.sort(key=_sort_key)

        meshes = [m for m in by_kind[(MESHGATE, "MeshConfig")] if _name(m) in ("default", "")]
        mesh = _mesh_settings(meshes[0] if meshes else None)

        pods = {(p.namespace, p.name): p for p in map(pod_info, by_kind[("", "Pod")])}
        pods_by_ns: dict[str, list[PodInfo]] = defaultdict(list)
        for p in pods.values():
            pods_by_ns[p.namespace].append(p)

        k8s = by_kind[("", "Service")]
        istio_gws = by_kind[(ALIBABA, "IstioGateway")]
        ips = allocate_cluster_ips(k8s, [g for g in istio_gws if not _has_service(k8s, g)])

        records = records_by_service(
            k8s, by_kind[("", "Endpoints")], by_kind[(DISCOVERY, "EndpointSlice")]
        )
        services: list[Service] = []
        # MeshConfig defaultServiceExportTo: the exportTo of a ServiceEntry that sets none,
        # and of every Kubernetes Service.
        default_export = mesh.default_service_export_to
        global _SE_MEMO
        memo, _SE_MEMO = _SE_MEMO, {}
        for se in by_kind[(NETWORKING, "ServiceEntry")]:
            spec = get(se, "spec")
            if get_list(spec, "endpoints") or not get(spec, "workload_selector"):
                known = memo.get(id(se))
                if known is not None and known[0] is se:
                    made = known[1]
                else:
                    made = from_service_entry(se, ())
                _SE_MEMO[id(se)] = (se, made)
            else:
                made = from_service_entry(se, pods_by_ns.get(_ns(se), ()))
            if default_export and not get_list(get(se, "spec"), "export_to"):
                export = export_set(default_export, _ns(se))
                made = [replace(s, export_to=export) for s in made]
            services.extend(made)
        for svc in k8s:
            ns, name = _ns(svc), _name(svc)
            made_k8s = from_kubernetes(
                svc,
                ips.get((ns, name), ""),
                pods_by_ns.get(ns, ()),
                records.get((ns, name), ()),
                pods,
            )
            if default_export:
                made_k8s = replace(made_k8s, export_to=export_set(default_export, ns))
            services.append(made_k8s)
        for gw in istio_gws:
            if not _has_service(k8s, gw):
                services.append(_istio_gateway_service(gw, ips, pods_by_ns))
        services.sort(key=lambda s: (s.hostname, s.namespace, s.name))

        by_host: dict[str, list[Service]] = defaultdict(list)
        for s in services:
            by_host[s.hostname].append(s)

        vss = by_kind[(NETWORKING, "VirtualService")]
        mesh_vs: dict[str, list[Any]] = defaultdict(list)
        mesh_wild: list[tuple[str, Any]] = []
        vs_by_gw: dict[str, list[Any]] = defaultdict(list)
        for vs in vss:
            gws = set(vs_gateways(vs))
            for http in get_list(get(vs, "spec"), "http"):
                for match in get_list(http, "match"):
                    for g in get_list(match, "gateways"):
                        gws.add(qualify_gateway(str(g), _ns(vs)))
            for g in sorted(gws):
                if g != MESH_GATEWAY:
                    vs_by_gw[g].append(vs)
            if MESH_GATEWAY in gws:
                for raw in get_list(get(vs, "spec"), "hosts"):
                    host = hosts.expand_short_name(str(raw), _ns(vs))
                    if hosts.is_wildcard(host):
                        mesh_wild.append((host, vs))
                    else:
                        mesh_vs[host].append(vs)

        sidecars: dict[str, list[Any]] = defaultdict(list)
        for sc in by_kind[(NETWORKING, "Sidecar")]:
            sidecars[_ns(sc)].append(sc)

        return cls(
            mesh=mesh,
            services=tuple(services),
            pods=pods,
            gateways=tuple(by_kind[(NETWORKING, "Gateway")]),
            virtual_services=tuple(vss),
            destination_rules=tuple(by_kind[(NETWORKING, "DestinationRule")]),
            sidecars=tuple(by_kind[(NETWORKING, "Sidecar")]),
            authorization_policies=tuple(by_kind[(SECURITY, "AuthorizationPolicy")]),
            peer_authentications=tuple(by_kind[(SECURITY, "PeerAuthentication")]),
            kubernetes_services=tuple(k8s),
            istio_gateways=tuple(istio_gws),
            cluster_ips=ips,
            services_by_host={k: tuple(v) for k, v in by_host.items()},
            mesh_vs_by_host={k: tuple(v) for k, v in mesh_vs.items()},
            mesh_vs_wildcards=tuple(mesh_wild),
            vs_by_gateway={k: tuple(v) for k, v in vs_by_gw.items()},
            dr_index=build_index(
                by_kind[(NETWORKING, "DestinationRule")],
                mesh.root_namespace,
                mesh.default_destination_rule_export_to,
            ),
            sidecars_by_namespace={k: tuple(v) for k, v in sidecars.items()},
            secrets=SecretIndex.build(by_kind[("", "Secret")]),
            aliases=resolve_aliases(services),
            rbac=tuple(r for k in RBAC_KINDS for r in by_kind[(RBAC, k)]),
        )

    # ---- services -------------------------------------------------------------------------

    def cluster_ip(self, service: Any) -> str:
        """The VIP of a Kubernetes Service (resource, ``Service`` view, or ``(ns, name)``)."""
        if isinstance(service, tuple):
            return self.cluster_ips.get((str(service[0]), str(service[1])), "")
        if isinstance(service, Service):
            return self.cluster_ips.get((service.namespace, service.name), "")
        return self.cluster_ips.get((_ns(service), _name(service)), "")

    def dns_zone(self) -> dict[str, list[str]]:
        """``NAME.NS.svc.cluster.local`` -> [cluster IP] (headless: the ready endpoint
        addresses; ExternalName: [target], a CNAME), for the runtime's DNS zone."""
        zone = {
            hosts.kubernetes_host(name, ns): [ip]
            for (ns, name), ip in sorted(self.cluster_ips.items())
            if ip
        }
        for svc in self.services:
            if not svc.is_kubernetes:
                continue
            if svc.is_alias:
                zone[svc.hostname] = [svc.external_name + "."]  # a CNAME (runtime.dns)
            elif svc.is_headless and svc.dns_addresses:
                zone[svc.hostname] = list(svc.dns_addresses)
                for hostname, address in svc.dns_hostnames:
                    zone.setdefault(f"{hostname}.{svc.hostname}", []).append(address)
        return zone

    def aliases_for(self, proxy: Proxy, hostname: str) -> list[str]:
        """The alias host names a proxy also reaches ``hostname`` by: every ExternalName
        Service naming it that the proxy's Sidecar imports (Istio's matchingAliasService:
        imports only, not exportTo)."""
        found = self.aliases.get(hostname)
        if not found:
            return []
        sidecar = None if proxy.is_router else self.sidecar_for(proxy)
        imports = _sidecar_imports(sidecar) if sidecar is not None else None
        return [
            alias
            for ns, alias in found
            if imports is None or any(i.admits(ns, alias) for i in imports)
        ]

    def service(self, hostname: str, client_namespace: str = "") -> Service | None:
        """The (merged) service a sidecar in ``client_namespace`` sees for a host, ignoring
        Sidecar imports; with no namespace, every service counts as visible."""
        candidates = self.services_by_host.get(hostname, ())
        if len(candidates) == 1:
            only = candidates[0]
            return only if not client_namespace or only.visible_to(client_namespace) else None
        if not candidates:
            return None
        if not client_namespace:
            ordered = sorted(candidates, key=servicemerge.creation_key)
            return servicemerge.merge(ordered, candidates)
        return servicemerge.for_sidecar(candidates, client_namespace)

    def service_for(self, proxy: Proxy, hostname: str) -> Service | None:
        """The service ``proxy`` has for a host (Istio's SidecarScope.servicesByHostname)."""
        return self._scope(proxy).get(hostname)

    def visible_services(self, proxy: Proxy) -> list[Service]:
        """Services this proxy imports: exportTo, then the Sidecar's egress hosts; one
        (merged) service per host, chosen as ``model.servicemerge`` says."""
        return list(self._scope(proxy).values())

    def _scope(self, proxy: Proxy) -> dict[str, Service]:
        sidecar = None if proxy.is_router else self.sidecar_for(proxy)
        key = (proxy.is_router, proxy.namespace, id(sidecar))
        scope = self._memo.get(key)
        if scope is None:
            scope = self._memo[key] = self._build_scope(proxy, sidecar)
        return scope  # type: ignore[no-any-return]

    def _build_scope(self, proxy: Proxy, sidecar: Any | None) -> dict[str, Service]:
        imports = _sidecar_imports(sidecar) if sidecar is not None else None
        ns = proxy.namespace
        scope: dict[str, Service] = {}
        for hostname, candidates in self.services_by_host.items():
            if imports is not None:
                candidates = tuple(
                    s for s in candidates if any(i.admits(s.namespace, hostname) for i in imports)
                )
            if len(candidates) == 1:
                # The common case: one resource for the host, nothing to pick or merge.
                if candidates[0].visible_to(ns):
                    scope[hostname] = candidates[0]
                continue
            if not candidates:
                continue
            chosen = (
                servicemerge.for_router(candidates, ns)
                if proxy.is_router
                else servicemerge.for_sidecar(candidates, ns)
            )
            if chosen is not None:
                scope[hostname] = chosen
        return scope

    # ---- config lookups ---------------------------------------------------------------------

    def destination_rule(
        self,
        client_namespace: str,
        hostname: str,
        labels: Mapping[str, str] | None = None,
        service_namespace: str | None = None,
    ) -> Any | None:
        """The (merged) DestinationRule for a host: client ns, then the service's ns, then
        the root ns; a rule whose workloadSelector matches ``labels`` wins in the client ns."""
        if service_namespace is None:
            svc = self.service(hostname, client_namespace)
            service_namespace = svc.namespace if svc is not None else ""
        entry = self.dr_index.lookup(client_namespace, service_namespace, hostname, labels)
        return entry.rule if entry is not None else None

    def destination_rule_for(self, proxy: Proxy, service: Service) -> Any | None:
        """The DestinationRule ``proxy`` applies to ``service`` (Istio's
        SidecarScope.DestinationRule for outbound traffic)."""
        return self.destination_rule(
            proxy.namespace, service.hostname, proxy.labels, service.namespace
        )

    def mesh_virtual_service(self, hostname: str, client_namespace: str) -> Any | None:
        """The first HTTP candidate of ``mesh_http_virtual_services`` (exact host first)."""
        found = self.mesh_http_virtual_services(hostname, client_namespace)
        return found[0] if found else None

    def mesh_http_virtual_services(self, hostname: str, client_namespace: str) -> tuple[Any, ...]:
        """Candidates for a host's HTTP routes, in Istio's preference (``model.meshvs``)."""
        return self._mesh_vs("http", hostname, client_namespace)

    def mesh_virtual_services(self, hostname: str, client_namespace: str) -> tuple[Any, ...]:
        """Every sidecar-scoped VirtualService for a host, in Istio's order: TLS/TCP filter
        chains are built from all of them (``model.meshvs``)."""
        return self._mesh_vs("l4", hostname, client_namespace)

    def _mesh_vs(self, kind: str, hostname: str, client_namespace: str) -> tuple[Any, ...]:
        key = ("mesh_vs", kind, hostname, client_namespace)
        if key not in self._memo:
            pick = meshvs.for_http if kind == "http" else meshvs.for_l4
            self._memo[key] = pick(
                self.mesh_vs_by_host.get(hostname, ()),
                self.mesh_vs_wildcards,
                hostname,
                client_namespace,
                self.mesh.default_virtual_service_export_to,
            )
        result: tuple[Any, ...] = self._memo[key]
        return result

    def sidecar_for(self, proxy: Proxy) -> Any | None:
        """Workload-selected Sidecar in the proxy's ns, else namespace-wide, else root ns."""
        own = self.sidecars_by_namespace.get(proxy.namespace, ())
        for sc in own:
            selector = str_map(get(get(get(sc, "spec"), "workload_selector"), "labels"))
            if selector and labels_match(selector, proxy.labels):
                return sc
        for sc in own:
            if not get(get(sc, "spec"), "workload_selector"):
                return sc
        for sc in self.sidecars_by_namespace.get(self.mesh.root_namespace, ()):
            if not get(get(sc, "spec"), "workload_selector"):
                return sc
        return None

    def outbound_mode(self, proxy: Proxy) -> str:
        sidecar = self.sidecar_for(proxy)
        if sidecar is not None:
            mode = get_str(get(get(sidecar, "spec"), "outbound_traffic_policy"), "mode")
            if mode:
                return mode
        return self.mesh.outbound_mode

    def gateways_for(self, proxy: Proxy) -> list[Any]:
        """Gateways whose selector matches the pod's labels, in any namespace."""
        result = []
        for gw in self.gateways:
            selector = str_map(get(get(gw, "spec"), "selector"))
            if labels_match(selector, proxy.labels):
                result.append(gw)
        return result

    def virtual_services_for_gateway(self, namespace: str, name: str) -> tuple[Any, ...]:
        return self.vs_by_gateway.get(gateway_key(namespace, name), ())

    # ---- proxies -----------------------------------------------------------------------------

    def proxy_for(self, node: str) -> Proxy | None:
        parsed = parse_node_id(node)
        if parsed is None:
            return None
        pod = self.pods.get((parsed.namespace, parsed.pod))
        if pod is None:
            return None
        router = pod.annotations.get(PROXY_TYPE_ANNOTATION) == "router"
        return Proxy(
            kind="router" if router else "sidecar",
            ip=pod.ip or parsed.ip,
            pod=pod.name,
            namespace=pod.namespace,
            labels=dict(pod.labels),
            service_account=pod.service_account,
        )

    def service_target_port(self, proxy: Proxy, port: int) -> int:
        """The port a router binds for a server port: the selecting Service's targetPort."""
        pod = self.pods.get((proxy.namespace, proxy.pod))
        for svc in self.services:
            if not svc.is_kubernetes or svc.namespace != proxy.namespace or not svc.selector:
                continue
            if not labels_match(svc.selector, proxy.labels):
                continue
            sp = svc.port(port)
            if sp is None:
                continue
            if sp.target_port_name is not None:
                if pod is not None and sp.target_port_name in pod.container_ports:
                    return pod.container_ports[sp.target_port_name]
                continue
            return sp.target_port or sp.number
        return port


def _sidecar_imports(sidecar: Any) -> list[hosts.NamespacedHost] | None:
    spec = get(sidecar, "spec")
    egress = get_list(spec, "egress")
    if not egress:
        return None
    ns = _ns(sidecar)
    result = []
    for listener in egress:
        for h in get_list(listener, "hosts"):
            result.append(hosts.parse_namespaced_host(str(h), ns))
    return result


def _has_service(k8s: list[Any], gw: Any) -> bool:
    return any(_ns(s) == _ns(gw) and _name(s) == _name(gw) for s in k8s)


def _istio_gateway_service(
    gw: Any, ips: Mapping[tuple[str, str], str], pods_by_ns: Mapping[str, list[PodInfo]]
) -> Service:
    """The Kubernetes Service an ``IstioGateway`` implies, when none was applied for it:
    built as the controller would write it, then read like any other Service."""
    ns, name = _ns(gw), _name(gw)
    spec = get(gw, "spec")
    labels = istio_gateway_labels(name) | str_map(get(spec, "pod_labels"))
    implied = {
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": labels,
            "creationTimestamp": get_str(get(gw, "metadata"), "creation_timestamp"),
        },
        "spec": {"selector": labels, "ports": get_list(spec, "ports")},
    }
    return from_kubernetes(implied, ips.get((ns, name), ""), pods_by_ns.get(ns, ()))


def _hashed_offset(key: str, size: int) -> int:
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:8], "big") % size


def allocate_cluster_ips(
    services: Iterable[Any], implied: Iterable[Any] = ()
) -> dict[tuple[str, str], str]:
    """Cluster IPs for Kubernetes Services (and gateways' implied Services).

    Explicit ``spec.clusterIP`` values are kept (``None`` means headless: no VIP); the rest
    get ``10.96.x.y`` from a hash of ``ns/name``, probing upwards past addresses already taken,
    in sorted key order so the result does not depend on input order.
    """
    result: dict[tuple[str, str], str] = {}
    taken: set[int] = set()
    base = int(SERVICE_CIDR.network_address)
    size = SERVICE_CIDR.num_addresses
    pending: list[tuple[str, str]] = []
    for svc in services:
        key = (_ns(svc), _name(svc))
        explicit = get_str(get(svc, "spec"), "cluster_ip")
        if get_str(get(svc, "spec"), "type") == "ExternalName":
            result[key] = ""
        elif explicit and explicit.lower() != "none":
            result[key] = explicit
            addr = int(ipaddress.ip_address(explicit))
            if base <= addr < base + size:
                taken.add(addr - base)
        elif explicit.lower() == "none":
            result[key] = ""
        else:
            pending.append(key)
    pending.extend((_ns(g), _name(g)) for g in implied)
    # .0 is the network, .1 is the Kubernetes API by convention, the last is broadcast.
    usable = size - 3
    for key in sorted(set(pending)):
        offset = 2 + _hashed_offset(f"{key[0]}/{key[1]}", usable)
        while offset in taken:
            offset = 2 + (offset - 2 + 1) % usable
        taken.add(offset)
        result[key] = str(ipaddress.ip_address(base + offset))
    return result
