"""Istio's syntax rules for the values its kinds share: hostnames, IPs, ports, protocols,
durations, labels, selectors, ``exportTo``, header names and values, percentages.

Rules of this module:
- Each checker returns ``None`` when the value is valid and a short reason otherwise;
  callers attach the reason to the field path they know, with their own code.
- The rules are Istio's (``pkg/config/validation``, ``agent``, ``labels``), not stricter:
  DNS labels allow upper case as Istio's do, a top-level domain may not be all digits, a
  trailing dot is allowed, a wildcard is allowed only in the first label.
- IPs follow Go's ``netip``: dotted IPv4 or IPv6; a CIDR is ``address/bits``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping

from meshgate.api.kinds.types import parse_duration

_LABEL = r"[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?"
_DNS1123_LABEL = re.compile(rf"^{_LABEL}$")
_WILDCARD_LABEL = re.compile(rf"^(?:\*|(?:\*|\*-)?{_LABEL})$")
_QUALIFIED_NAME = r"(?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_KEY = re.compile(rf"^({_LABEL}(?:\.{_LABEL})*/)?({_QUALIFIED_NAME})$")
_LABEL_VALUE = re.compile(rf"^(?:{_QUALIFIED_NAME})?$")
# RFC 7230 token characters, as Istio's validHeaderNameRegex. Istio writes them as the Go
# class "[!#$%&'*+-.^_`|~A-Za-z0-9]", where "+-." is a range that also takes ",".
_HEADER_NAME = re.compile(r"^[!#$%&'*+,\-.^_`|~A-Za-z0-9]+$")
_HEADER_VALUE_BAD = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_PSEUDO_HEADERS = frozenset({":method", ":scheme", ":authority", ":path", ":status"})
_JWT_CLAIM_PREFIX = "@request.auth.claims."

# Istio's protocol.Parse (case-insensitive); anything else is "unsupported".
PROTOCOLS = frozenset(
    {"tcp", "udp", "grpc", "grpc-web", "http", "http_proxy", "http2", "https", "tls", "mongo"}
    | {"redis", "mysql"}
)
_HTTP = frozenset({"http", "http2", "http_proxy", "grpc", "grpc-web"})
_TLS = frozenset({"https", "tls"})
_TCP = frozenset({"tcp", "https", "tls", "mongo", "redis", "mysql"})
UNIX_PREFIX = "unix://"


# --- hostnames -------------------------------------------------------------------------


def is_dns1123_label(value: str) -> bool:
    return len(value) <= 63 and bool(_DNS1123_LABEL.match(value))


def _preconditions(name: str) -> str | None:
    if len(name) > 255:
        return f"domain name {name!r} too long (max 255)"
    if not name:
        return "empty domain name not allowed"
    return None


def _labels_problem(domain: str) -> str | None:
    parts = domain.split(".")
    if parts[-1].isdigit() and parts[-1].isascii():
        return f"domain name {domain!r} invalid (top level domain {parts[-1]!r} is all digits)"
    for i, label in enumerate(parts):
        if i == len(parts) - 1 and label == "":
            return None  # a trailing dot, as in "istio.io."
        if not is_dns1123_label(label):
            return f"domain name {domain!r} invalid (label {label!r} invalid)"
    return None


def fqdn_problem(name: str) -> str | None:
    """A fully qualified name: no wildcard at all."""
    return _preconditions(name) or _labels_problem(name)


def wildcard_domain_problem(domain: str) -> str | None:
    """A domain that may have a wildcard first label (``*``, ``*.a.com``, ``*-a.com``)."""
    bad = _preconditions(domain)
    if bad:
        return bad
    first, dot, rest = domain.partition(".")
    if len(first) > 63 or not _WILDCARD_LABEL.match(first):
        return f"domain name {domain!r} invalid (label {first!r} invalid)"
    return _labels_problem(rest) if dot else None


def partial_wildcard_problem(host: str) -> str | None:
    if "*" in host and host != "*" and not host.startswith("*."):
        return f"partial wildcard {host!r} not allowed"
    return None


def gateway_sni_domain_problem(domain: str) -> str | None:
    """Hosts of a gateway-bound VirtualService with SNI: also ``outbound_.PORT_._.HOST``."""
    bad = _preconditions(domain)
    if bad:
        return bad
    if domain.startswith("outbound_"):
        parts = domain.split("_")
        if len(parts) < 4:
            return f"domain name {domain!r} invalid, should follow outbound_.<PORT>_._.<HOSTNAME>"
        if not re.search(r"[0-9]", parts[1].strip(".")) or not re.search(
            r"[a-zA-Z]", parts[3].strip(".")
        ):
            return f"domain name {domain!r} invalid, should follow outbound_.<PORT>_._.<HOSTNAME>"
        return None
    return wildcard_domain_problem(domain)


def _host_part_problem(host: str, gateway: bool) -> str | None:
    """The ``dnsName`` of a Gateway server host or a Sidecar egress host."""
    if host != "*" and "." not in host:
        return f"invalid host {host!r}: short names (non FQDN) are not allowed"
    bad = wildcard_domain_problem(host)
    if bad and not (gateway and is_ip(host)):
        return bad
    return partial_wildcard_problem(host)


def namespaced_host_problem(
    value: str, *, gateway: bool, gateway_semantics: bool = False
) -> str | None:
    """``namespace/dnsName`` (Sidecar egress, Gateway servers; a Gateway may omit ``ns/``).

    ``gateway_semantics``: a Gateway converted from the Kubernetes Gateway API, whose
    servers may use ``~/`` (no attached routes), as Istio allows for such Gateways.
    """
    namespace, slash, host = value.partition("/")
    if not slash:
        if gateway:
            return _host_part_problem(value, gateway=True)
        return f"invalid host {value!r}: must be of form namespace/dnsName"
    if not namespace or not host:
        return f"invalid host {value!r}: namespace and dnsName cannot be empty"
    allowed = ("*", ".") if gateway and not gateway_semantics else ("*", ".", "~")
    if namespace not in allowed and not is_dns1123_label(namespace):
        where = "gateway" if gateway else "sidecar"
        return f"invalid namespace value {namespace!r} in {where}"
    return _host_part_problem(host, gateway)


def host_matches(a: str, b: str) -> bool:
    """Istio's ``host.Name.Matches``: either name matches the other (wildcards both ways)."""
    aw, bw = a.startswith("*"), b.startswith("*")
    if aw and bw:
        return b.endswith(a[1:]) if len(a) < len(b) else a.endswith(b[1:])
    if aw:
        return b.endswith(a[1:])
    if bw:
        return a.endswith(b[1:])
    return a == b


def host_subset_of(a: str, b: str) -> bool:
    """Istio's ``host.Name.SubsetOf``: every name ``a`` matches is matched by ``b``."""
    if b.startswith("*"):
        if a.startswith("*"):
            return len(a) >= len(b) and a.endswith(b[1:])
        return a.endswith(b[1:])
    return a == b


# --- addresses, ports, protocols -------------------------------------------------------


def is_ip(value: str) -> bool:
    if "/" in value or value.strip() != value:
        return False
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def ip_problem(value: str) -> str | None:
    return None if is_ip(value) else f"{value} is not a valid IP"


def subnet_problem(value: str) -> str | None:
    """An IP, or a CIDR ``address/bits`` (the address need not be the network's first)."""
    if value.count("/") == 1:
        address, _, bits = value.partition("/")
        ok = is_ip(address) and bits.isdigit() and bits.isascii() and "%" not in address
        if ok:
            limit = 32 if ipaddress.ip_address(address).version == 4 else 128
            ok = int(bits) <= limit and (bits == "0" or not bits.startswith("0"))
        return None if ok else f"{value} is not a valid CIDR block"
    return ip_problem(value)


def unix_path_problem(path: str) -> str | None:
    if not path:
        return "unix address must not be empty"
    if path.startswith("@"):
        return None
    if not path.startswith("/") or path.endswith("/"):
        return f"{path} is not an absolute path to a file"
    return None


def port_problem(number: int) -> str | None:
    if 1 <= number <= 65535:
        return None
    return f"port number {number} must be in the range 1..65535"


def port_name_problem(name: str) -> str | None:
    return None if is_dns1123_label(name) else f"invalid port name: {name!r}"


def protocol_of(protocol: str | None) -> str:
    """Istio's parsed protocol (lower case) or ``"unsupported"``."""
    value = (protocol or "").lower()
    return value if value in PROTOCOLS else "unsupported"


def protocol_problem(protocol: str | None) -> str | None:
    """Empty means "sniff"; anything else must be a protocol Istio knows."""
    if not protocol or protocol_of(protocol) != "unsupported":
        return None
    return (
        f"unsupported protocol {protocol!r}: use HTTP, HTTPS, HTTP2, GRPC, GRPC-WEB, TCP, TLS, "
        "MONGO, MYSQL, REDIS or UDP"
    )


def is_http(protocol: str | None) -> bool:
    return protocol_of(protocol) in _HTTP


def is_tls(protocol: str | None) -> bool:
    return protocol_of(protocol) in _TLS


def is_tcp(protocol: str | None) -> bool:
    return protocol_of(protocol) in _TCP


# --- durations, percentages ------------------------------------------------------------


def duration_problem(value: str, *, allow_zero: bool = False) -> str | None:
    """Istio's ValidateDuration: at least 1ms, in whole milliseconds."""
    seconds = parse_duration(value)
    if allow_zero and seconds == 0:
        return None
    millis = seconds * 1000
    if millis < 1 - 1e-9:
        return f"duration {value!r} must be at least 1ms"
    if abs(millis - round(millis)) > 1e-6:
        return f"duration {value!r}: only durations to ms precision are supported"
    return None


def percent_problem(value: float) -> str | None:
    if 0 <= value <= 100:
        return None
    return f"percentage {value} is not in range 0..100"


def fraction_problem(value: float) -> str | None:
    """A fractional Percent: 0, or within [0.0001, 100]."""
    if value < 0 or value > 100 or 0 < value < 0.0001:
        return f"percentage {value} is neither 0.0, nor in range [0.0001, 100.0]"
    return None


# --- labels, selectors, exportTo -------------------------------------------------------


def labels_problems(labels: Mapping[str, str] | None) -> list[str]:
    """Kubernetes label syntax for keys and values (Istio's labels.Instance.Validate)."""
    problems: list[str] = []
    for key, value in (labels or {}).items():
        match = _LABEL_KEY.match(key)
        if match is None or len(match.group(2)) > 63 or len(match.group(1) or "") - 1 > 253:
            problems.append(f"invalid label key: {key!r}")
        if not _LABEL_VALUE.match(value):
            problems.append(f"invalid label value: {value!r}")
    return problems


def selector_problems(labels: Mapping[str, str] | None) -> list[str]:
    """A workload selector: no empty keys, no wildcards."""
    problems: list[str] = []
    for key, value in (labels or {}).items():
        if not key:
            problems.append(f"empty key is not supported in selector: {key}={value}")
        if "*" in key or "*" in value:
            problems.append(f"wildcard is not supported in selector: {key}={value}")
    return problems


def export_to_problems(
    namespace: str, export_to: Iterable[str], *, service_entry: bool = False
) -> list[str]:
    """Istio's validateExportTo: ``.``, ``*``, namespaces (``~`` only for a ServiceEntry),
    no duplicates, ``*`` and ``~`` alone."""
    entries = list(export_to)
    problems: list[str] = []
    seen: set[str] = set()
    for entry in entries:
        key = namespace if entry == "." else entry
        if key in seen:
            problems.append(f"duplicate entries in exportTo for entry {entry!r}")
            continue
        if entry == "~" and service_entry:
            seen.add(key)
        elif key == "~":
            problems.append("exportTo ~ (none) is not allowed for Istio configuration objects")
        elif key not in ("*", ".") and not is_dns1123_label(key):
            problems.append(f"invalid exportTo {entry!r}: use '.', '*' or a namespace")
        else:
            seen.add(key)
    if "*" in seen and len(entries) > 1:
        problems.append("cannot have both public (*) and non-public exportTo values")
    if "~" in seen and len(entries) > 1:
        problems.append("cannot export service entry to no one (~) and someone")
    return problems


# --- HTTP headers ----------------------------------------------------------------------


def is_jwt_claim_header(name: str) -> bool:
    return name.startswith(_JWT_CLAIM_PREFIX) and len(name) > len(_JWT_CLAIM_PREFIX)


def header_match_name_problem(name: str) -> str | None:
    if not name:
        return "header name cannot be empty"
    if is_jwt_claim_header(name) or name in _PSEUDO_HEADERS or _HEADER_NAME.match(name):
        return None
    return f"header name {name!r} is not a valid header name"


def cors_header_name_problem(name: str) -> str | None:
    if not name:
        return "header name cannot be empty"
    if name == "*" or _HEADER_NAME.match(name):
        return None
    return f"header name {name!r} is not a valid header name"


def _internal_header(name: str) -> bool:
    return name.startswith(":") or name.lower() == "host"


def is_authority_header(name: str) -> bool:
    return name.lower() in (":authority", "host")


def request_set_header_problem(name: str) -> str | None:
    """A header a route adds or sets on requests (``:authority``/``host`` allowed)."""
    if not name:
        return "header name cannot be empty"
    if _internal_header(name) and not is_authority_header(name):
        return f'invalid header {name!r}: header cannot have ":" prefix'
    return None


def header_operation_problem(name: str) -> str | None:
    """A header removed from requests or changed on responses."""
    if not name:
        return "header name cannot be empty"
    if name.lower() == "host":
        return f"invalid header {name!r}: cannot set Host header"
    if name.startswith(":"):
        return f'invalid header {name!r}: header cannot have ":" prefix'
    return None


def header_value_problem(value: str) -> str | None:
    """Envoy's custom header value: no control characters; ``%VAR%`` pairs, ``%%`` escapes."""
    if _HEADER_VALUE_BAD.search(value):
        return f"header value {value!r} has control characters"
    i = 0
    while i < len(value):
        if value[i] != "%":
            i += 1
            continue
        end = value.find("%", i + 1)
        if end < 0:
            return f"header value {value!r}: unterminated %VARIABLE%"
        inner = value[i + 1 : end]
        if inner and not (inner[0].isalpha() and inner[0].isupper()):
            return f"header value {value!r}: invalid %VARIABLE% {inner!r}"
        i = end + 1
    return None
