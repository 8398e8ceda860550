"""Sidecar rules (Istio's ValidateSidecar).

Rules of this module:
- A Sidecar configures something: ingress, egress, outboundTrafficPolicy or
  inboundConnectionPool.
- Listener ports: a known protocol, a valid number (egress port 0 only with a
  ``unix://`` bind and capture mode DEFAULT or NONE), optional DNS-label names, unique
  numbers; ``targetPort`` is refused. ``bind`` is an IP.
- At most one egress listener without a port, and it is the last.
- Egress hosts are ``namespace/dnsName``: namespace ``*``, ``.``, ``~`` or a DNS label;
  dnsName ``*``, an FQDN or ``*.suffix`` (no short names, no partial wildcards).
  Overlapping entries are warned.
- Ingress ``defaultEndpoint`` is ``127.0.0.1:PORT``, ``0.0.0.0:PORT``, ``[::1]:PORT``,
  ``[::]:PORT``, ``:PORT`` or ``unix://PATH``; ingress TLS is server TLS without
  credentialName(s), tlsCertificates, subjectAltNames, httpsRedirect, ISTIO_MUTUAL or
  AUTO_PASSTHROUGH, on a TLS or HTTPS port.
- ``egressProxy`` needs mode ALLOW_ANY, an FQDN host and a port.
"""

from __future__ import annotations

from meshgate.api.kinds import istio_networking as net
from meshgate.validation import common as c
from meshgate.validation import shared
from meshgate.validation.findings import Findings, rule
from meshgate.validation.networking_destinationrule import connection_pool
from meshgate.validation.networking_gateway import server_tls

_LOCAL_HOSTS = frozenset({"", "127.0.0.1", "0.0.0.0", "::1", "::"})


@rule(net.Sidecar)
def _sidecar(sc: net.Sidecar, findings: Findings) -> None:
    out = findings.at("spec")
    spec = sc.spec
    if spec.workload_selector is not None:
        shared.selector(out, spec.workload_selector.labels, "workloadSelector", "labels")
    if not (
        spec.egress
        or spec.ingress
        or spec.outbound_traffic_policy is not None
        or spec.inbound_connection_pool is not None
    ):
        out.error("MG1074", "empty Sidecar: set ingress, egress or outboundTrafficPolicy")
        return
    seen: set[int] = set()
    for i, ingress in enumerate(spec.ingress or []):
        _ingress(out.at("ingress", i), ingress, seen)
    connection_pool(out.at("inboundConnectionPool"), spec.inbound_connection_pool)
    seen = set()
    sockets: set[str] = set()
    egress = spec.egress or []
    catch_all = False
    for i, listener in enumerate(egress):
        at = out.at("egress", i)
        if listener.port is None:
            if catch_all:
                at.error("MG1074", "only one egress listener may have no port", "port")
                continue
            if i == len(egress) - 1:
                catch_all = True
            else:
                at.error("MG1074", "the egress listener without a port must be the last", "port")
        else:
            _egress_port(at, listener, seen, sockets)
        _egress_hosts(at, listener.hosts, sc.namespace)
    otp = spec.outbound_traffic_policy
    if otp is not None and otp.egress_proxy is not None:
        at = out.at("outboundTrafficPolicy", "egressProxy")
        if otp.mode != "ALLOW_ANY":
            at.error("MG1042", "egressProxy needs outboundTrafficPolicy mode ALLOW_ANY")
            return
        at.check("MG1042", c.fqdn_problem(otp.egress_proxy.host), "host")
        if otp.egress_proxy.port is None:
            at.error("MG1042", "egressProxy needs a port", "port")
            return
        shared.destination(at, otp.egress_proxy)


def _port(out: Findings, port: net.SidecarPort, bind: str | None, *, unix_ok: bool) -> None:
    if port.name:
        out.check("MG1016", c.port_name_problem(port.name), "port", "name")
    out.check("MG1015", c.protocol_problem(port.protocol), "port", "protocol")
    if port.target_port:
        out.error("MG1052", "targetPort has no impact on Sidecars", "port", "targetPort")
    number = port.number or 0
    if number == 0 and unix_ok:
        if not (bind or "").startswith(c.UNIX_PREFIX):
            out.error("MG1074", "port 0 needs a unix:// bind address", "bind")
        else:
            out.check("MG1074", c.unix_path_problem((bind or "")[len(c.UNIX_PREFIX) :]), "bind")
        return
    out.check("MG1003", c.port_problem(number), "port", "number")
    if bind:
        out.check("MG1053", c.ip_problem(bind), "bind")


def _ingress(out: Findings, ingress: net.IstioIngressListener, seen: set[int]) -> None:
    port = ingress.port
    _port(out, port, ingress.bind, unix_ok=False)
    number = port.number or 0
    if number in seen:
        out.error("MG1074", f"duplicate ingress port {number}", "port", "number")
    seen.add(number)
    endpoint = ingress.default_endpoint
    if endpoint:
        out.check("MG1074", _default_endpoint_problem(endpoint), "defaultEndpoint")
    tls = ingress.tls
    if tls is not None:
        at = out.at("tls")
        for value, wire in (
            (tls.subject_alt_names, "subjectAltNames"),
            (tls.https_redirect, "httpsRedirect"),
            (tls.credential_name, "credentialName"),
            (tls.credential_names, "credentialNames"),
            (tls.tls_certificates, "tlsCertificates"),
        ):
            if value:
                at.error("MG1074", f"{wire} is not supported in Sidecar ingress TLS", wire)
        if tls.mode in ("ISTIO_MUTUAL", "AUTO_PASSTHROUGH"):
            at.error("MG1074", f"mode {tls.mode} is not allowed in Sidecar ingress TLS", "mode")
        if not c.is_tls(port.protocol):
            at.error("MG1054", "a port that is not HTTPS or TLS cannot have TLS settings")
        server_tls(at, tls)
    connection_pool(out.at("connectionPool"), ingress.connection_pool)
    pool = ingress.connection_pool
    if pool is not None and pool.http is not None and not c.is_http(port.protocol):
        out.warn(
            "MG1069",
            "HTTP connection pool settings on a non-HTTP port: only TCP applies",
            "connectionPool",
            "http",
        )


def _default_endpoint_problem(endpoint: str) -> str | None:
    if endpoint.startswith(c.UNIX_PREFIX):
        return c.unix_path_problem(endpoint[len(c.UNIX_PREFIX) :])
    host, sep, port = endpoint.rpartition(":")
    if not sep:
        return f"defaultEndpoint {endpoint!r}: missing port"
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        return f"defaultEndpoint {endpoint!r}: too many colons"
    if host not in _LOCAL_HOSTS:
        return (
            "defaultEndpoint must be 127.0.0.1:PORT, 0.0.0.0:PORT, [::1]:PORT, [::]:PORT or "
            "unix://PATH"
        )
    if not (port.isdigit() and port.isascii()):
        return f"defaultEndpoint port {port!r} is not a number"
    return c.port_problem(int(port))


def _egress_port(
    out: Findings, listener: net.IstioEgressListener, seen: set[int], sockets: set[str]
) -> None:
    assert listener.port is not None
    _port(out, listener.port, listener.bind, unix_ok=True)
    number = listener.port.number or 0
    if number == 0:
        if listener.capture_mode not in (None, "DEFAULT", "NONE"):
            out.error(
                "MG1074",
                "captureMode must be DEFAULT or NONE for unix socket listeners",
                "captureMode",
            )
        bind = listener.bind or ""
        if bind in sockets:
            out.error("MG1074", "unix socket listeners must be unique", "bind")
        sockets.add(bind)
    else:
        if number in seen:
            out.error("MG1074", f"duplicate egress port {number}", "port", "number")
        seen.add(number)


def _egress_hosts(out: Findings, hosts: list[str], namespace: str) -> None:
    if not hosts:
        out.error("MG1023", "an egress listener needs at least one host", "hosts")
        return
    by_ns: dict[str, set[str]] = {}
    for j, host in enumerate(hosts):
        ns, slash, name = host.partition("/")
        if slash:
            ns = namespace if ns == "." else ns
            names = by_ns.setdefault(ns, set())
            if (name != "*" and (name in names or "*" in names)) or (name == "*" and names):
                out.warn("MG1023", f"duplicated egress host {host!r}", "hosts", j)
            names.add(name)
        out.check("MG1023", c.namespaced_host_problem(host, gateway=False), "hosts", j)
    if "*" in by_ns.get("*", set()) and len(by_ns) != 1:
        out.warn("MG1023", "*/* selects everything: other hosts add nothing", "hosts")
