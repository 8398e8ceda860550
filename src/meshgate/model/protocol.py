"""Port protocols as Istio derives them.

Rules of this module:
- An explicit protocol wins (ServiceEntry ``protocol``; Kubernetes ``appProtocol``), then the
  port name's prefix before the first ``-`` (``http``, ``http-web``, ``grpc-api``...), then
  Kubernetes' ``protocol: UDP``. Anything else is ``TCP`` (meshgate does not sniff).
- Protocols are upper-case Istio names: HTTP, HTTP2, GRPC, GRPC-WEB, HTTPS, TLS, TCP, MONGO,
  MYSQL, REDIS, UDP.
"""

from __future__ import annotations

_BY_PREFIX = {
    "http": "HTTP",
    "http2": "HTTP2",
    "grpc": "GRPC",
    "grpc-web": "GRPC-WEB",
    "https": "HTTPS",
    "tls": "TLS",
    "tcp": "TCP",
    "mongo": "MONGO",
    "mysql": "MYSQL",
    "redis": "REDIS",
    "udp": "UDP",
}

# appProtocol values Kubernetes documents besides Istio's own names.
_APP_PROTOCOL = {
    "kubernetes.io/h2c": "HTTP2",
    "kubernetes.io/ws": "HTTP",
    "kubernetes.io/wss": "HTTPS",
}

HTTP_FAMILY = frozenset({"HTTP", "HTTP2", "GRPC", "GRPC-WEB"})
TLS_FAMILY = frozenset({"HTTPS", "TLS"})
H2_FAMILY = frozenset({"HTTP2", "GRPC", "GRPC-WEB"})


def from_name(name: str) -> str | None:
    lowered = name.lower()
    if lowered in _BY_PREFIX:
        return _BY_PREFIX[lowered]
    if lowered.startswith("grpc-web"):
        return "GRPC-WEB"
    prefix = lowered.split("-", 1)[0]
    return _BY_PREFIX.get(prefix)


def from_explicit(value: str) -> str | None:
    if not value:
        return None
    if value in _APP_PROTOCOL:
        return _APP_PROTOCOL[value]
    upper = value.upper()
    return upper if upper.lower() in _BY_PREFIX else None


def infer(explicit: str, name: str, l4: str = "") -> str:
    """The protocol of a port from its explicit protocol, its name, and its L4 protocol."""
    return from_explicit(explicit) or from_name(name) or ("UDP" if l4.upper() == "UDP" else "TCP")


def is_http(protocol: str) -> bool:
    return protocol in HTTP_FAMILY


def is_tls(protocol: str) -> bool:
    return protocol in TLS_FAMILY
