"""The pod's effective egress in ``describe pod``: its mode, each external host, and how.

Rules:
- Pure: the pod and the mesh's objects (canonical wire dicts) in, lines out. The answers are
  the translator's own: a ``model.snapshot.Snapshot`` of the same objects gives the mode
  (``outbound_mode``: the pod's Sidecar ``outboundTrafficPolicy``, else MeshConfig's), the
  services this pod imports (``visible_services``: exportTo, then the Sidecar's egress
  hosts), the VirtualService its sidecar uses for a host (``mesh_virtual_service``), and a
  route's match blocks apply as ``translate.routes.applicable_matches`` says (``gateways``
  and ``port``); a gateway's servers are ``translate.gateway.bound_servers``, its
  VirtualServices ``virtual_services_for_gateway``, its AuthorizationPolicies
  ``security.policies.policies_for``.
- External hosts are the MESH_EXTERNAL ServiceEntry hosts this pod sees, one line per host
  and port, with the ServiceEntry. Under it: ``direct`` when no mesh route sends it
  elsewhere; else ``via`` each destination of the routes that apply on that port and, when a
  destination is an egress gateway (a Service in front of gateway pods, or an IstioGateway's),
  the Gateway server that takes the host on that port and where the gateway's
  VirtualService sends it, or that nothing on the gateway does (the request fails there);
  and the hop's TLS, from the DestinationRule the sidecar applies to the gateway host.
- AuthorizationPolicies on the gateway are judged by this pod's identity only: a rule whose
  ``from`` names the pod's principal or namespace (``*``, prefix and suffix forms) matches
  it; a rule with ``to``/``when`` conditions matches only some of its requests, and says so.
- A pod without a sidecar, and a gateway, get no host list: no sidecar route applies to them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from meshgate.api.decode import decode_object
from meshgate.model import hosts, protocol
from meshgate.model.fields import get, get_int, get_list, get_str
from meshgate.model.proxy import Proxy
from meshgate.model.services import Service
from meshgate.model.snapshot import MESH_GATEWAY, Snapshot, istio_gateway_labels, labels_match
from meshgate.security.policies import policies_for
from meshgate.server import workloads as wl
from meshgate.translate.gateway import bound_servers
from meshgate.translate.routes import applicable_matches

Obj = dict[str, Any]
PAD = "      "


def snapshot_of(objs: Iterable[Obj]) -> Snapshot:
    """The translator's model of ``objs`` (objects that do not decode are left out, as the
    control plane leaves them out)."""
    typed = []
    for obj in objs:
        resource, _ = decode_object(obj)
        if resource is not None:
            typed.append(resource)
    return Snapshot.build(typed)


def proxy_of(pod: Obj) -> Proxy:
    meta = pod.get("metadata") or {}
    return Proxy(
        kind="router" if wl.is_router(pod) else "sidecar",
        ip=str((pod.get("status") or {}).get("podIP") or ""),
        pod=str(meta.get("name") or ""),
        namespace=str(meta.get("namespace") or "default"),
        labels=dict(meta.get("labels") or {}),
        service_account=str((pod.get("spec") or {}).get("serviceAccountName") or "default"),
    )


def _ref(obj: Any) -> str:
    meta = get(obj, "metadata")
    return f"{get_str(meta, 'namespace') or 'default'}/{get_str(meta, 'name')}"


def mode_line(snap: Snapshot, proxy: Proxy) -> str:
    mode = snap.outbound_mode(proxy)
    sidecar = snap.sidecar_for(proxy)
    own = get_str(get(get(sidecar, "spec"), "outbound_traffic_policy"), "mode")
    source = f"Sidecar {_ref(sidecar)}" if own else "MeshConfig"
    if mode == "REGISTRY_ONLY":
        effect = "only the hosts below; any other gets 502 (HTTP) or a reset"
    else:
        effect = "the hosts below, and any other directly (PassthroughCluster)"
    return f"  Mode:         {mode} ({source} outboundTrafficPolicy): {effect}"


def _sections(proto: str) -> tuple[str, ...]:
    if protocol.is_http(proto):
        return ("http",)
    if protocol.is_tls(proto):
        return ("tls",)
    return ("tcp",)


def destinations(
    vs: Any, sections: tuple[str, ...], target: str, port: int
) -> list[tuple[str, int]]:
    """(host, port) of every route of ``sections`` whose match blocks apply to ``target``
    (``mesh`` or ``ns/gateway``) on ``port``, in the VirtualService's order."""
    ns = get_str(get(vs, "metadata"), "namespace") or "default"
    out: list[tuple[str, int]] = []
    for section in sections:
        for route in get_list(get(vs, "spec"), section):
            if applicable_matches(route, vs, target, port) is None:
                continue
            for rd in get_list(route, "route"):
                dest = get(rd, "destination")
                host = hosts.expand_short_name(get_str(dest, "host"), ns)
                found = (host, get_int(get(dest, "port"), "number") or port)
                if found not in out:
                    out.append(found)
    return out


def _gateway_labels(snap: Snapshot, host: str) -> dict[str, str] | None:
    """Labels of the gateway pods behind ``host``; None when ``host`` is no gateway."""
    svc = snap.service(host)
    if svc is None or not svc.is_kubernetes or not svc.selector:
        return None
    for pod in snap.pods.values():
        if pod.namespace != svc.namespace or not labels_match(svc.selector, pod.labels):
            continue
        if pod.annotations.get(wl.ROUTER_ANNOTATION) == "router":
            return dict(pod.labels)
    for gw in snap.istio_gateways:
        meta = get(gw, "metadata")
        if get_str(meta, "namespace") == svc.namespace and get_str(meta, "name") == svc.name:
            return istio_gateway_labels(svc.name)  # not running yet: its pods' labels
    return None


def _wild(value: str, pattern: str) -> bool:
    if pattern == "*":
        return True
    if pattern.startswith("*"):
        return value.endswith(pattern[1:])
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    return value == pattern


def _source_matches(source: Any, principal: str, namespace: str) -> bool | None:
    """Whether one ``from.source`` matches the pod's identity; None if it reads other
    attributes (IP blocks, request principals) that the identity alone cannot decide."""
    for key in ("ip_blocks", "remote_ip_blocks", "request_principals", "not_ip_blocks",
                "not_remote_ip_blocks", "not_request_principals"):  # fmt: skip
        if get_list(source, key):
            return None
    checks = (
        ("principals", principal, True),
        ("not_principals", principal, False),
        ("namespaces", namespace, True),
        ("not_namespaces", namespace, False),
    )
    for key, value, wanted in checks:
        patterns = [str(p) for p in get_list(source, key)]
        if patterns and any(_wild(value, p) for p in patterns) != wanted:
            return False
    return True


def authz_verdict(policy: Any, principal: str, namespace: str) -> str:
    """What ``policy`` does to requests from this identity, in words."""
    action = get_str(get(policy, "spec"), "action", "ALLOW")
    rules = get_list(get(policy, "spec"), "rules")
    verb = {"ALLOW": "allows", "DENY": "denies", "AUDIT": "audits"}.get(action, "applies to")
    partial = []
    for i, rule in enumerate(rules):
        # ``from`` is ``from_`` on the typed model (a Python keyword), ``from`` on the wire.
        froms = get_list(rule, "from_") or get_list(rule, "from")
        sources = [get(f, "source") for f in froms]
        results = [_source_matches(s, principal, namespace) for s in sources]
        if sources and not any(r is not False for r in results):
            continue
        conditional = bool(get_list(rule, "to")) or bool(get_list(rule, "when")) or None in results
        if not conditional:
            return f"{verb} this pod (rule {i})"
        partial.append(i)
    if partial:
        listed = ", ".join(str(i) for i in partial)
        return f"{verb} some of this pod's requests (rule {listed}: other conditions too)"
    if action == "ALLOW":
        return "names other sources only: this pod is denied unless another ALLOW matches it"
    return "does not match this pod"


def _gateway_lines(
    snap: Snapshot, pod: Proxy, gw_host: str, gw_port: int, host: str, labels: dict[str, str]
) -> list[str]:
    svc = snap.service(gw_host)
    assert svc is not None
    gw = Proxy(kind="router", ip="", pod="", namespace=svc.namespace, labels=labels)
    servers = [s for s in bound_servers(snap, gw) if s.port == gw_port]
    taken = [s for s in servers if any(p.admits(s.gateway_namespace, host) for p in s.hosts)]
    if not taken:
        return [
            f"{PAD}gateway:  no Gateway selecting it takes {host} on port {gw_port}: the "
            "gateway refuses the request (404 for HTTP)"
        ]
    lines = []
    for server in taken:
        ns, name = server.gateway.split("/", 1)
        targets: list[tuple[str, int, str]] = []
        for vs in snap.virtual_services_for_gateway(ns, name):
            vs_hosts = [
                hosts.expand_short_name(str(h), _ref(vs).split("/")[0])
                for h in get_list(get(vs, "spec"), "hosts")
            ]
            if not any(hosts.subset_of(host, h) for h in vs_hosts):
                continue
            sections = ("http",) if protocol.is_http(server.protocol) else ("tls", "tcp")
            if server.protocol == "HTTPS" and server.terminates_tls:
                sections = ("http",)
            for dest, dport in destinations(vs, sections, server.gateway, gw_port):
                targets.append((dest, dport, _ref(vs)))
        head = f"{PAD}gateway:  Gateway {server.gateway} port {gw_port} ({server.protocol})"
        if not targets:
            lines.append(f"{head}: no VirtualService routes {host} there (404 for HTTP)")
        for dest, dport, vs_ref in targets:
            lines.append(f"{head} -> {dest}:{dport} (VirtualService {vs_ref})")
    principal = f"{snap.mesh.trust_domain}/ns/{pod.namespace}/sa/{pod.service_account}"
    for policy in policies_for(snap, gw):
        action = get_str(get(policy, "spec"), "action", "ALLOW")
        verdict = authz_verdict(policy, principal, pod.namespace)
        lines.append(f"{PAD}authz:    {action} {_ref(policy)} on the gateway {verdict}")
    return lines


def hop_tls(snap: Snapshot, proxy: Proxy, host: str, port: int) -> str:
    """The TLS of the sidecar-to-gateway hop: the DestinationRule's (port-level first). An
    egress gateway's pods are not auto-mTLS endpoints (``translate.automtls``): without a
    rule the hop is plaintext."""
    svc = snap.service_for(proxy, host) or snap.service(host)
    rule = snap.destination_rule_for(proxy, svc) if svc is not None else None
    policy = get(get(rule, "spec"), "traffic_policy")
    mode = get_str(get(policy, "tls"), "mode")
    for level in get_list(policy, "port_level_settings"):
        if get_int(get(level, "port"), "number") == port and get(level, "tls") is not None:
            mode = get_str(get(level, "tls"), "mode")
    if rule is None or not mode:
        return "plaintext (no DestinationRule sets tls for it)"
    return f"{mode} (DestinationRule {_ref(rule)})"


def _host_lines(snap: Snapshot, proxy: Proxy, svc: Service, port: int, proto: str) -> list[str]:
    vs = snap.mesh_virtual_service(svc.hostname, proxy.namespace)
    routes = destinations(vs, _sections(proto), MESH_GATEWAY, port) if vs is not None else []
    head = f"    {svc.hostname}:{port} {proto} (ServiceEntry {svc.namespace}/{svc.name})"
    if not routes:
        return [head, f"{PAD}direct:   the sidecar sends it to {svc.hostname}:{port}"]
    lines = [head]
    for dest, dport in routes:
        labels = _gateway_labels(snap, dest)
        kind = "egress gateway " if labels is not None else ""
        lines.append(f"{PAD}via:      {kind}{dest}:{dport} (VirtualService {_ref(vs)})")
        if snap.service_for(proxy, dest) is None:
            lines.append(
                f"{PAD}note:     {dest} is not in this pod's scope (Sidecar egress hosts, "
                "exportTo): its sidecar has no cluster for it"
            )
        if labels is not None:
            lines.append(f"{PAD}hop:      {hop_tls(snap, proxy, dest, dport)}")
            lines += _gateway_lines(snap, proxy, dest, dport, svc.hostname, labels)
    return lines


def effective_egress_lines(pod: Obj, objs: list[Obj]) -> list[str]:
    """Mode and external hosts for a pod with a sidecar; nothing for any other pod."""
    if wl.is_router(pod) or not wl.wants_sidecar(pod):
        return []
    snap = snapshot_of(o for o in objs if o is not pod)
    proxy = proxy_of(pod)
    lines = [mode_line(snap, proxy)]
    external = [
        s
        for s in snap.visible_services(proxy)
        if s.kind == "ServiceEntry" and s.location == "MESH_EXTERNAL"
    ]
    if not external:
        return [
            *lines,
            "  Hosts:        none: no ServiceEntry for an external host is visible here",
        ]
    lines.append("  Hosts:        (MESH_EXTERNAL ServiceEntries this pod sees)")
    for svc in sorted(external, key=lambda s: s.hostname):
        for p in sorted(svc.ports, key=lambda p: p.number):
            lines += _host_lines(snap, proxy, svc, p.number, p.protocol)
    return lines
