"""Syntax of the names users write: hostnames, ``namespace/host`` references, IPs and
CIDRs, Kubernetes object names, port numbers.

Rules of this module:
- Every checker returns ``None`` when the value is valid and a short reason otherwise,
  so callers attach it to the field path they know.
- Hostnames follow RFC 1123 (labels of letters, digits and inner hyphens, at most 63
  characters; at most 253 in all). A wildcard is allowed only as the whole leftmost
  label (``*.example.com``); ``*`` alone only where the caller allows it.
- IPs and CIDRs are parsed by ``ipaddress`` (v4 and v6).
"""

from __future__ import annotations

import ipaddress
import re

_LABEL = re.compile(r"^[A-Za-z0-9](?:[-A-Za-z0-9]{0,61}[A-Za-z0-9])?$")
_DNS1123_LABEL = re.compile(r"^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*$"
)
_IANA_SVC_NAME = re.compile(r"^(?=.*[a-z])[a-z0-9](?:-?[a-z0-9])*$")


def hostname_problem(host: str, *, allow_star: bool = False, allow_ip: bool = True) -> str | None:
    """Why ``host`` is not a hostname (wildcard only as the leftmost label), or None."""
    if host == "*":
        return (
            None if allow_star else '"*" alone is not allowed here; use a domain like *.example.com'
        )
    if not host:
        return "empty hostname"
    if allow_ip and is_ip(host):
        return None
    name = host[2:] if host.startswith("*.") else host
    if "*" in name:
        return (
            f"invalid hostname {host!r}: a wildcard is allowed only as the leftmost label "
            "(*.example.com)"
        )
    if len(host) > 253:
        return f"invalid hostname {host!r}: longer than 253 characters"
    for label in name.split("."):
        if not _LABEL.match(label):
            return (
                f"invalid hostname {host!r}: label {label!r} must be 1-63 letters, digits or "
                "inner hyphens (RFC 1123)"
            )
    return None


def namespaced_host_problem(
    value: str, *, require_namespace: bool, extra_namespaces: tuple[str, ...] = ("*", ".")
) -> str | None:
    """Check ``[namespace/]dnsName`` as Gateway servers and Sidecar egress hosts use it."""
    namespace, slash, host = value.partition("/")
    if not slash:
        if require_namespace:
            return f"invalid host {value!r}: expected namespace/dnsName, e.g. ./* or istio-system/*"
        namespace, host = "", value
    if namespace and namespace not in extra_namespaces:
        bare = namespace[1:] if namespace.startswith("~") else namespace
        if not (namespace == "~" or _DNS1123_LABEL.match(bare)):
            return f"invalid namespace {namespace!r} in host {value!r}"
    return hostname_problem(host, allow_star=True)


def is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def address_problem(value: str) -> str | None:
    """An IP address or CIDR block."""
    try:
        if "/" in value:
            ipaddress.ip_network(value, strict=False)
        else:
            ipaddress.ip_address(value)
    except ValueError:
        return f"invalid IP address or CIDR {value!r}"
    return None


def port_problem(number: int) -> str | None:
    if 1 <= number <= 65535:
        return None
    return f"port number {number} is out of range 1..65535"


def object_name_problem(name: str) -> str | None:
    """A Kubernetes object name (DNS-1123 subdomain)."""
    if not name:
        return "name is required"
    if len(name) > 253 or not _DNS1123_SUBDOMAIN.match(name):
        return (
            f"invalid name {name!r}: use lowercase letters, digits, '-' and '.', starting and "
            "ending with a letter or digit"
        )
    return None


def label_name_problem(name: str) -> str | None:
    """A DNS-1123 label: namespaces, port names of Kubernetes Services."""
    if not _DNS1123_LABEL.match(name):
        return (
            f"invalid name {name!r}: use at most 63 lowercase letters, digits and '-', "
            "starting and ending with a letter or digit"
        )
    return None


def port_name_problem(name: str) -> str | None:
    """An IANA service name, as a Kubernetes ``targetPort`` string must be."""
    if len(name) > 15 or not _IANA_SVC_NAME.match(name):
        return f"invalid port name {name!r}: at most 15 lowercase letters, digits and '-'"
    return None
