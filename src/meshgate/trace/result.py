"""What a trace produces: the request, the hops and the verdict (plain data, JSON-ready).

Rules:
- ``verdict`` is one word: ``allowed``, ``blocked`` (REGISTRY_ONLY), ``denied``
  (AuthorizationPolicy), ``no-route`` (a gateway has no route for the host), ``reset`` (the
  connection is closed, no HTTP answer), ``no-cluster``/``no-endpoint`` (503), ``refused``
  (SSRF guard, enforced exit), ``direct-response``/``redirect`` (a route answers itself),
  ``unresolved`` (DNS has no answer).
- ``status`` is the HTTP status the client sees (int), the string ``reset`` when it gets no
  HTTP answer, or None when the upstream itself answers (``allowed``: the trace cannot
  know what a server out there says).
- Every hop names the Envoy object that decided it and, when one is known, the Istio
  resource it came from (``Origin``): the resource to change.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Origin:
    kind: str
    namespace: str = ""
    name: str = ""
    detail: str = ""  # e.g. "rule 0", "host aliyun.com"

    def text(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        out = f"{self.kind} {where}".strip()
        return f"{out} {self.detail}".strip()


@dataclass(frozen=True)
class Request:
    """One request as the client sends it."""

    protocol: str  # http | tls | tcp
    host: str  # name or address the client asked for
    port: int
    path: str = "/"
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    ip: str | None = None  # the destination address (resolved, or given)

    @property
    def sni(self) -> str | None:
        return self.host if self.protocol == "tls" and not _is_ip(self.host) else None

    @property
    def host_header(self) -> str:
        """The Host header curl sends: ``-H Host:`` if given, else host[:port]."""
        for k, v in self.headers:
            if k.lower() == "host":
                return v
        default = 443 if self.protocol == "tls" else 80
        return self.host if self.port == default else f"{self.host}:{self.port}"

    def header_map(self) -> dict[str, str]:
        return {k.lower(): v for k, v in self.headers}


def _is_ip(value: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Source:
    namespace: str
    pod: str
    ip: str
    service_account: str = "default"
    trust_domain: str = "cluster.local"

    @property
    def principal(self) -> str:
        return f"{self.trust_domain}/ns/{self.namespace}/sa/{self.service_account}"


@dataclass
class Hop:
    proxy: str  # ns/pod of the proxy (or "upstream")
    step: str  # listener | filter chain | virtual host | route | cluster | tls | rbac | endpoint
    name: str  # the Envoy object's name
    detail: str = ""
    origin: Origin | None = None


@dataclass
class Result:
    request: Request
    source: Source
    verdict: str = "allowed"
    status: int | str | None = None
    reason: str = ""
    fix: str = ""
    decided_by: Origin | None = None
    hops: list[Hop] = field(default_factory=list)
    timeout: dict[str, Any] | None = None  # {"seconds", "status": 504, "origin"}
    upstream: str | None = None  # host:port the request finally reaches
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        def origin(o: Origin | None) -> dict[str, str] | None:
            return None if o is None else asdict(o)

        return {
            "verdict": self.verdict,
            "status": self.status,
            "reason": self.reason,
            "fix": self.fix,
            "decidedBy": origin(self.decided_by),
            "request": {
                "protocol": self.request.protocol,
                "host": self.request.host,
                "port": self.request.port,
                "ip": self.request.ip,
                "method": self.request.method if self.request.protocol == "http" else None,
                "path": self.request.path if self.request.protocol == "http" else None,
                "headers": dict(self.request.headers),
            },
            "source": {
                "namespace": self.source.namespace,
                "pod": self.source.pod,
                "ip": self.source.ip,
                "principal": self.source.principal,
            },
            "upstream": self.upstream,
            "timeout": self.timeout,
            "notes": self.notes,
            "hops": [
                {
                    "proxy": h.proxy,
                    "step": h.step,
                    "name": h.name,
                    "detail": h.detail,
                    "origin": origin(h.origin),
                }
                for h in self.hops
            ],
        }
