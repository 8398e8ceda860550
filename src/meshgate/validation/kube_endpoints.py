"""Rules for where a Service's traffic goes without a selector: Endpoints, EndpointSlices,
and a Service's type (``ExternalName``, headless ``clusterIP: None``).

Rules of this module: the same contract as every rule module (report, never raise). The
checks are kube-apiserver's (``ValidateEndpoints``, ``ValidateEndpointSlice``,
``ValidateService``), in its words where it has them:
- an endpoint address is an IP of the slice's family, and not one no proxy can dial for
  another pod: unspecified, loopback, link-local or link-local multicast (kube-apiserver
  refuses these in Endpoints; meshgate refuses them in EndpointSlices too, where a proxy
  would dial its own pod);
- an Endpoints subset has addresses and ports; ports are 1..65535, named (DNS labels,
  unique) when there are several; an EndpointSlice's port may be unset (every port);
- an ``ExternalName`` Service names a lowercase DNS name and has no cluster IP; ``None``
  (headless) is a cluster IP only ``ClusterIP`` Services may have; any other cluster IP is
  an IP address.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Sequence

from meshgate.api.kinds import kubernetes as kube
from meshgate.validation.findings import Findings, rule
from meshgate.validation.names import hostname_problem, label_name_problem, port_problem

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
_LINK_LOCAL_MULTICAST = ipaddress.ip_network("224.0.0.0/24")


def endpoint_ip_problem(value: str, family: str = "") -> str | None:
    """Why ``value`` cannot be an endpoint address (``family``: IPv4 or IPv6, if fixed)."""
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        return f"Invalid value: {value!r}: must be a valid IP address"
    if family and f"IPv{ip.version}" != family:
        return f"Invalid value: {value!r}: must be an {family} address (addressType)"
    if ip.is_unspecified:
        return f"Invalid value: {value!r}: may not be unspecified (0.0.0.0)"
    if ip.is_loopback:
        reason = "may not be in the loopback range (127.0.0.0/8, ::1/128)"
    elif ip.is_link_local:
        reason = "may not be in the link-local range (169.254.0.0/16, fe80::/10)"
    elif ip.version == 4 and ip in _LINK_LOCAL_MULTICAST:
        reason = "may not be in the link-local multicast range (224.0.0.0/24)"
    else:
        return None
    return f"Invalid value: {value!r}: {reason}"


def _port_names(
    out: Findings, names: Sequence[str | None], required: bool, *path: str | int
) -> None:
    counts = Counter(n for n in names if n)
    for i, name in enumerate(names):
        at = (*path, i, "name")
        if not name:
            if required:
                out.error(
                    "MG1091", "Required value: a port needs a name when there are several", *at
                )
            continue
        out.check("MG1091", label_name_problem(name), *at)
        if counts[name] > 1:
            out.error("MG1091", f"Duplicate value: {name!r}", *at)


@rule(kube.Endpoints)
def _endpoints(ep: kube.Endpoints, out: Findings) -> None:
    for i, subset in enumerate(ep.subsets or []):
        at = out.at("subsets", i)
        ready, not_ready = subset.addresses or [], subset.not_ready_addresses or []
        if not ready and not not_ready:
            at.error("MG1091", "Required value: must specify `addresses` or `notReadyAddresses`")
        for field, addresses in (("addresses", ready), ("notReadyAddresses", not_ready)):
            for j, address in enumerate(addresses):
                at.check("MG1091", endpoint_ip_problem(address.ip), field, j, "ip")
                if address.hostname:
                    at.check("MG1091", label_name_problem(address.hostname), field, j, "hostname")
        ports = subset.ports or []
        if not ports:
            at.error("MG1091", "Required value: a subset needs at least one port", "ports")
        for j, port in enumerate(ports):
            at.check("MG1091", port_problem(port.port), "ports", j, "port")
        _port_names(at, [p.name for p in ports], len(ports) > 1, "ports")


@rule(kube.EndpointSlice)
def _endpoint_slice(eps: kube.EndpointSlice, out: Findings) -> None:
    for i, endpoint in enumerate(eps.endpoints):
        at = out.at("endpoints", i)
        if not endpoint.addresses:
            at.error("MG1091", "Required value: an endpoint needs an address", "addresses")
        if len(endpoint.addresses) > 100:
            at.error("MG1091", "Too many: must have at most 100 addresses", "addresses")
        for j, address in enumerate(endpoint.addresses):
            if eps.address_type == "FQDN":
                problem = hostname_problem(address, allow_ip=False)
            else:
                problem = endpoint_ip_problem(address, eps.address_type)
            at.check("MG1091", problem, "addresses", j)
        if endpoint.hostname:
            at.check("MG1091", label_name_problem(endpoint.hostname), "hostname")
    ports = eps.ports or []
    for j, port in enumerate(ports):
        if port.port is not None:
            out.check("MG1091", port_problem(port.port), "ports", j, "port")
    _port_names(out, [p.name for p in ports], False, "ports")
    labels = eps.metadata.labels or {}
    if not labels.get(SERVICE_NAME_LABEL):
        out.warn(
            "MG1091",
            f"no {SERVICE_NAME_LABEL} label: this slice belongs to no Service and is not used",
            "metadata",
            "labels",
        )


@rule(kube.Service)
def _service_type(svc: kube.Service, findings: Findings) -> None:
    out = findings.at("spec")
    spec = svc.spec
    kind = spec.type or "ClusterIP"
    ip = spec.cluster_ip or ""
    if kind == "ExternalName":
        name = spec.external_name or ""
        if not name:
            out.error(
                "MG1092",
                "Required value: an ExternalName Service needs externalName",
                "externalName",
            )
        else:
            bare = name.rstrip(".")
            problem = hostname_problem(bare, allow_ip=False)
            if problem is None and bare != bare.lower():
                problem = f"Invalid value: {name!r}: must be lowercase (RFC 1123)"
            out.check("MG1092", problem, "externalName")
        if ip:
            out.error("MG1092", "Forbidden: may not be set for ExternalName services", "clusterIP")
        return
    if spec.external_name:
        out.warn(
            "MG1092",
            f"externalName is ignored unless type is ExternalName (type is {kind})",
            "externalName",
        )
    if ip == "None":
        if kind != "ClusterIP":
            out.error(
                "MG1092",
                f"Invalid value: \"None\": may not be set to 'None' for {kind} services",
                "clusterIP",
            )
    elif ip:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            out.error(
                "MG1092", f"Invalid value: {ip!r}: must be a valid IP address or None", "clusterIP"
            )
