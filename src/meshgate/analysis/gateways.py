"""Gateway analyzers: the workload a Gateway selects, its ports, credentials and conflicts.

Rules of this module (Istio's gateway analyzers, same codes and wording):
- A selector that matches no pod anywhere is IST0101 ``selector`` (reported on the
  selector's line); then every server port must be a TCP port, or the numeric
  ``targetPort`` of one, of a Service in the pod's namespace that selects a selected pod
  (IST0162).
- A server's ``tls.credentialName`` must name a Secret in the namespace of the gateway's
  workload (the first selected pod's, as Istio takes it; ``ns/name`` names one elsewhere):
  IST0101 ``credentialName``; a Secret that is there but holds no usable certificate
  (``credentials.valid_gateway_secret``) is IST0161, naming the Gateway and that namespace.
- Two Gateways whose selectors pick the same workload (same selector, or one containing the
  other with a pod both match), on the same port, with a host in common under the same
  ``bind``, conflict: IST0145 on each, naming the others.
- A Gateway sharing a server ``credentialName`` with another Gateway whose selector
  contains all of its own labels (so both programme the same proxies) gets IST0138: HTTP/2
  clients re-using a connection across the hosts may get 404s.
"""

from __future__ import annotations

from collections import defaultdict

from meshgate.analysis import messages as msg
from meshgate.analysis.context import AnalysisContext, Entry, selector_string, selects
from meshgate.analysis.credentials import valid_gateway_secret
from meshgate.analysis.messages import quote
from meshgate.api.kinds.istio_networking import Gateway
from meshgate.api.kinds.kubernetes import Pod, Secret, Service


def _selector_path(gw: Entry[Gateway]) -> tuple[str, ...]:
    keys = sorted(gw.resource.spec.selector or {})
    return ("spec", "selector", keys[0]) if keys else ("spec", "selector")


def _selected_pods(ctx: AnalysisContext, gw: Entry[Gateway]) -> list[Entry[Pod]]:
    return [p for p in ctx.of(Pod) if selects(gw.resource.spec.selector, p.labels)]


def _report_no_workload(ctx: AnalysisContext, gw: Entry[Gateway]) -> None:
    sel = selector_string(gw.resource.spec.selector)
    path = _selector_path(gw)
    ctx.report(gw, msg.REFERENCED_RESOURCE_NOT_FOUND, "selector", quote(sel), path=path)


def gateway_ports(ctx: AnalysisContext) -> None:
    """IST0101 (selector matches no pods) and IST0162 (port not on the gateway Service)."""
    services = ctx.of(Service)
    for gw in ctx.of(Gateway):
        pods = _selected_pods(ctx, gw)
        if not pods:
            _report_no_workload(ctx, gw)
            continue
        exposed: set[int] = set()
        for pod in pods:
            for svc in services:
                if svc.namespace != pod.namespace or not selects(
                    svc.resource.spec.selector, pod.labels
                ):
                    continue
                for port in svc.resource.spec.ports or []:
                    if (port.protocol or "TCP") != "TCP":
                        continue
                    # The proxy listens on the server port; a client reaches it through
                    # the Service port, or a Service port whose targetPort it is.
                    exposed.add(port.port)
                    target = port.target_port
                    if isinstance(target, str) and target.isdigit():
                        target = int(target)
                    if isinstance(target, int) and target:
                        exposed.add(target)
        sel = selector_string(gw.resource.spec.selector)
        for server in gw.resource.spec.servers:
            if server.port.number not in exposed:
                ctx.report(
                    gw,
                    msg.GATEWAY_PORT_NOT_DEFINED_ON_SERVICE,
                    server.port.number,
                    sel,
                    path=_selector_path(gw),
                )


def gateway_secrets(ctx: AnalysisContext) -> None:
    """IST0101 for a ``credentialName`` with no Secret beside the gateway's workload, IST0161
    for one without a usable certificate."""
    for gw in ctx.of(Gateway):
        pods = _selected_pods(ctx, gw)
        if not pods:
            _report_no_workload(ctx, gw)
            continue
        workload_ns = pods[0].namespace
        for i, server in enumerate(gw.resource.spec.servers):
            name = server.tls.credential_name if server.tls else None
            if not name:
                continue
            ns, sep, short = name.partition("/")
            ns, short = (ns, short) if sep else (workload_ns, name)
            path = ("spec", "servers", i, "tls", "credentialName")
            secret = ctx.find(Secret, ns, short)
            if secret is None:
                ctx.report(
                    gw, msg.REFERENCED_RESOURCE_NOT_FOUND, "credentialName", quote(name), path=path
                )
            elif not valid_gateway_secret(secret.resource):
                ctx.report(gw, msg.INVALID_GATEWAY_CREDENTIAL, gw.name, workload_ns, path=path)


def conflicting_gateways(ctx: AnalysisContext) -> None:
    """IST0145: same workload, same port, a host in common under the same bind."""
    gateways = ctx.of(Gateway)
    # (selector string, port) -> gateway origin -> {host: bind}
    index: dict[tuple[str, int], dict[str, dict[str, str]]] = defaultdict(dict)
    for gw in gateways:
        sel = selector_string(gw.resource.spec.selector)
        for server in gw.resource.spec.servers:
            hosts_bind = index[(sel, server.port.number)].setdefault(gw.full_name, {})
            for h in server.hosts or []:
                hosts_bind[h] = server.bind or ""
    pods = ctx.of(Pod)
    for gw in gateways:
        own = gw.resource.spec.selector or {}
        sel = selector_string(own)
        same: list[tuple[str, int]] = []
        for other_sel, port in index:
            if other_sel == sel:
                same.append((other_sel, port))
            elif other_sel in sel or sel in other_sel:
                other = dict(p.split("=", 1) for p in other_sel.split(",") if "=" in p)
                if any(selects(own, p.labels) and selects(other, p.labels) for p in pods):
                    same.append((other_sel, port))
        for server in gw.resource.spec.servers:
            conflicts: set[str] = set()
            for key in same:
                if key[1] != server.port.number:
                    continue
                for other_name, hosts_bind in index[key].items():
                    if other_name == gw.full_name:
                        continue
                    bind = server.bind or ""
                    shared = (h for h in server.hosts or [] if h in hosts_bind)
                    if any(hosts_bind[h] == bind for h in shared):
                        conflicts.add(other_name)
            if conflicts:
                ctx.report(
                    gw,
                    msg.CONFLICTING_GATEWAYS,
                    ",".join(sorted(conflicts)),
                    sel,
                    server.port.number,
                    ",".join(server.hosts or []),
                )


def _credentials(gw: Entry[Gateway]) -> set[str]:
    return {
        s.tls.credential_name
        for s in gw.resource.spec.servers
        if s.tls is not None and s.tls.credential_name
    }


def duplicate_certificates(ctx: AnalysisContext) -> None:
    """IST0138: the same certificate on Gateways that share their workload."""
    gateways = [(gw, _credentials(gw)) for gw in ctx.of(Gateway)]
    for gw, creds in gateways:
        if not creds:
            continue
        own = gw.resource.spec.selector or {}
        sharing = [
            other
            for other, other_creds in gateways
            if other is not gw
            and creds & other_creds
            and selects(own, other.resource.spec.selector or {})
        ]
        if sharing:
            names = "[" + " ".join(sorted(g.full_name for g in [gw, *sharing])) + "]"
            ctx.report(gw, msg.GATEWAY_DUPLICATE_CERTIFICATE, names, path=("metadata", "name"))
