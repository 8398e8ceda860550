"""ServiceEntry rules (Istio's ValidateServiceEntry).

Rules of this module:
- Hosts: at least one; ``*`` alone is refused; each a domain with at most a leading
  wildcard label (a partial wildcard such as ``*foo.com`` is only warned, as Istio does).
- Resolution decides what endpoints may be: none for NONE; IPs or ``unix://`` paths for
  STATIC; IPs or FQDNs for DNS/DNS_ROUND_ROBIN, and without endpoints every host must be
  an FQDN (no wildcard) because it is what gets resolved.
- Several hosts with a resolution other than NONE need HTTP or TLS ports (the only way to
  tell the hosts apart); CIDR addresses only with NONE or STATIC.
- An explicitly written empty list (``endpoints: []``) counts as set, as in Istio's tests.
"""

from __future__ import annotations

from collections import Counter

from meshgate.api.kinds import istio_networking as net
from meshgate.validation import common as c
from meshgate.validation import shared
from meshgate.validation.findings import Findings, rule


@rule(net.ServiceEntry)
def _service_entry(se: net.ServiceEntry, findings: Findings) -> None:
    out = findings.at("spec")
    spec = se.spec
    resolution = spec.effective_resolution
    if spec.workload_selector is not None:
        shared.selector(out, spec.workload_selector.labels, "workloadSelector", "labels")
        if spec.endpoints is not None:
            out.error(
                "MG1013", "set either workloadSelector or endpoints, not both", "workloadSelector"
            )
        if spec.effective_location != "MESH_INTERNAL":
            out.warn(
                "MG1041",
                "workloadSelector applies only to MESH_INTERNAL services",
                "workloadSelector",
            )
        if resolution in ("NONE", "DNS", "DNS_ROUND_ROBIN"):
            out.warn(
                "MG1041",
                f"workloadSelector should not be set when resolution is {resolution}",
                "workloadSelector",
            )
    _hosts(out, spec.hosts)
    shared.addresses(out, spec.addresses, "addresses")
    if any("/" in a for a in spec.addresses or []) and resolution not in ("NONE", "STATIC"):
        out.error(
            "MG1008", "CIDR addresses are allowed only with resolution NONE or STATIC", "resolution"
        )
    ports = spec.ports or []
    _ports(out, ports)
    names = {p.name for p in ports}
    endpoints = spec.endpoints or []
    if resolution == "NONE" and endpoints:
        out.error("MG1007", "no endpoints may be given with resolution NONE", "endpoints")
    elif resolution == "STATIC":
        for i, ep in enumerate(endpoints):
            _static_endpoint(out.at("endpoints", i), ep, names, len(ports))
    elif resolution in ("DNS", "DNS_ROUND_ROBIN"):
        if not endpoints:
            for i, host in enumerate(spec.hosts):
                if host != "*" and c.wildcard_domain_problem(host) is None:
                    out.check(
                        "MG1006",
                        None
                        if c.fqdn_problem(host) is None
                        else f"host {host!r} must be an FQDN: resolution {resolution} without "
                        "endpoints resolves the hosts themselves",
                        "hosts",
                        i,
                    )
        if resolution == "DNS_ROUND_ROBIN" and len(endpoints) > 1:
            out.error(
                "MG1014", "resolution DNS_ROUND_ROBIN takes at most one endpoint", "endpoints"
            )
        for i, ep in enumerate(endpoints):
            _dns_endpoint(out.at("endpoints", i), ep, names)
    elif resolution == "DYNAMIC_DNS":
        if any(not h.startswith("*") for h in spec.hosts):
            out.error("MG1022", "resolution DYNAMIC_DNS needs wildcard hosts only", "hosts")
        if spec.effective_location != "MESH_EXTERNAL":
            out.error("MG1022", "resolution DYNAMIC_DNS needs location MESH_EXTERNAL", "location")
    if resolution != "NONE" and len(spec.hosts) > 1:
        for i, port in enumerate(ports):
            if not (c.is_http(port.protocol) or c.is_tls(port.protocol)):
                out.error(
                    "MG1050",
                    "several hosts with a non-HTTP, non-TLS port need resolution NONE "
                    "(nothing else tells the hosts apart)",
                    "ports",
                    i,
                    "protocol",
                )
                break
    shared.export_to(out, se.namespace, spec.export_to, service_entry=True)


def _hosts(out: Findings, hosts: list[str]) -> None:
    if not hosts:
        out.error("MG1001", "a ServiceEntry needs at least one host", "hosts")
    for i, host in enumerate(hosts):
        if host == "*":
            out.error("MG1002", '"*" alone is not a valid ServiceEntry host', "hosts", i)
            continue
        out.check("MG1001", c.wildcard_domain_problem(host), "hosts", i)
        out.check_warn("MG1001", c.partial_wildcard_problem(host), "hosts", i)


def _ports(out: Findings, ports: list[net.ServicePort]) -> None:
    names = Counter(p.name for p in ports)
    numbers = Counter(p.number for p in ports)
    for i, port in enumerate(ports):
        at = out.at("ports", i)
        if names[port.name] > 1:
            at.error("MG1016", f"duplicate port name {port.name!r}", "name")
        if numbers[port.number] > 1:
            at.error("MG1004", f"duplicate port number {port.number}", "number")
        if port.target_port:
            at.check("MG1003", c.port_problem(port.target_port), "targetPort")
        at.check("MG1016", c.port_name_problem(port.name), "name")
        at.check("MG1015", c.protocol_problem(port.protocol), "protocol")
        at.check("MG1003", c.port_problem(port.number), "number")


def _endpoint_ports(out: Findings, ep: net.WorkloadEntry, names: set[str]) -> None:
    for name, number in (ep.ports or {}).items():
        if name not in names:
            out.error(
                "MG1018",
                f"endpoint port {name!r} is not a port name of this ServiceEntry",
                "ports",
                name,
            )
        out.check("MG1016", c.port_name_problem(name), "ports", name)
        out.check("MG1003", c.port_problem(number), "ports", name)
    shared.labels(out, ep.labels, "labels")


def _static_endpoint(out: Findings, ep: net.WorkloadEntry, names: set[str], nports: int) -> None:
    address = ep.address or ""
    if not address:
        if not ep.network:
            out.error("MG1051", "endpoint address is required", "address")
            return
        out.warn("MG1051", f"address is unset with network {ep.network!r}", "address")
    if address.startswith(c.UNIX_PREFIX):
        out.check("MG1043", c.unix_path_problem(address[len(c.UNIX_PREFIX) :]), "address")
        if ep.ports:
            out.error("MG1043", f"unix endpoint {address} must not include ports", "ports")
        if nports != 1:
            out.error("MG1043", "a unix:// endpoint needs exactly one service port", "address")
    elif address and not c.is_ip(address):
        out.error(
            "MG1051",
            f"endpoint address {address!r} is not an IP (resolution STATIC takes IPs)",
            "address",
        )
    _endpoint_ports(out, ep, names)


def _dns_endpoint(out: Findings, ep: net.WorkloadEntry, names: set[str]) -> None:
    address = ep.address or ""
    if not c.is_ip(address) and c.fqdn_problem(address) is not None:
        out.error(
            "MG1017", f"endpoint address {address!r} is not a valid FQDN or IP address", "address"
        )
    _endpoint_ports(out, ep, names)
