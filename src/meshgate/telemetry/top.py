"""``meshgate top``: external hosts by request rate, error rate and latency over a time window.

Rules of this module:
- Input is the mesh-wide access log (``store.py``): the requests that *started* in the last
  ``window`` seconds (``start_ms``), filtered by the reporting pod's namespace, a gateway's
  name (its replicas' entries) or the reporter kind. The store already holds each request
  once per proxy that logged it.
- Host: what the client asked for, so the sidecar's hop to the egress gateway and the
  gateway's own request both name ``aliyun.com``, and a REGISTRY_ONLY refusal (no cluster of
  its own) keeps the host it refused. That is the access log's ``authority`` without its
  port, else (TCP) the TLS SNI; a TCP connection with neither is named by the upstream
  cluster's host (``outbound|PORT||HOST``), else the address the client dialed
  (``downstream_local_address``, the original destination under capture).
- One row per (host, reporter kind, protocol): a request through a logging sidecar and the
  gateway is one request in each reporter's row, never two in one row. Inbound entries
  (``inbound|`` clusters) are a sidecar's view of mesh-internal calls, not external hosts,
  and are left out.
- Errors: HTTP responses 5xx (REGISTRY_ONLY's 502 included), 403 (AuthorizationPolicy and
  the gateway's refusals), no response at all (code 0); any entry carrying a refusal
  ``reason``; TCP connections with a failure response flag (``UF``, ``UH``, ``NR``, ...).
- Rates are per second of the whole window (requests / window), as Prometheus' ``rate()``.
  Latency is the entry's ``duration`` in ms (a TCP connection's lifetime), p50/p99 by
  nearest rank. ``aggregate`` is pure; ``top_hosts`` reads the store.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from meshgate.telemetry.entries import REPORTERS

MAX_WINDOW = 30 * 86400.0
UNKNOWN = "unknown"

# Envoy's short flags that mean a TCP connection failed (Envoy gives HTTP a status for them).
TCP_FAILURE_FLAGS = frozenset(
    {"UH", "UF", "UO", "NR", "URX", "UT", "NC", "DF", "UPE", "LH", "OM", "RL", "UAEX", "UMSDR"}
)

# The columns of a row as top reads it (json_extract: the body is the entry's JSON object).
_COLUMNS = (
    "reporter",
    "host",
    "response_code",
    "json_extract(body, '$.duration')",
    "json_extract(body, '$.response_flags')",
    "json_extract(body, '$.upstream_cluster')",
    "json_extract(body, '$.reason')",
    "json_extract(body, '$.method')",
    "json_extract(body, '$.protocol')",
    "json_extract(body, '$.downstream_local_address')",
)


@dataclass(frozen=True)
class TopQuery:
    window: float  # seconds
    namespace: str | None = None
    gateway: str | None = None  # a gateway's name: its replicas' entries only
    reporter: str | None = None  # gateway | sidecar


@dataclass(frozen=True)
class Sample:
    """One request (or TCP connection) as top counts it."""

    host: str
    reporter: str
    protocol: str  # http | tcp
    error: bool
    duration_ms: float


@dataclass(frozen=True)
class HostRow:
    host: str
    reporter: str
    protocol: str
    requests: int
    errors: int
    rate: float  # requests per second over the window
    error_rate: float  # errors / requests, 0..1
    p50_ms: float
    p99_ms: float

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "reporter": self.reporter,
            "protocol": self.protocol,
            "requests": self.requests,
            "errors": self.errors,
            "requestsPerSecond": round(self.rate, 4),
            "errorRate": round(self.error_rate, 4),
            "p50Ms": self.p50_ms,
            "p99Ms": self.p99_ms,
        }


def parse_params(params: Any) -> TopQuery:
    """The API's query parameters; ValueError with the reason on a malformed one."""

    def opt(name: str) -> str | None:
        value = params.get(name)
        return str(value) if value not in (None, "") else None

    text = opt("window") or "60"
    try:
        window = float(text)
    except ValueError:
        raise ValueError(f"window {text!r}: want seconds, e.g. 60") from None
    if not 0 < window <= MAX_WINDOW:
        raise ValueError(f"window {text!r}: want more than 0 and at most {MAX_WINDOW:g} seconds")
    reporter = opt("reporter")
    if reporter is not None and reporter not in REPORTERS:
        raise ValueError(f"reporter {reporter!r}: want one of {', '.join(REPORTERS)}")
    return TopQuery(window, opt("namespace"), opt("gateway"), reporter)


def _num(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and value >= 0 else 0.0


def cluster_host(cluster: str) -> str | None:
    """``outbound|443||aliyun.com`` -> ``aliyun.com``; None for other clusters."""
    parts = cluster.split("|")
    return parts[3] if len(parts) == 4 and parts[0] == "outbound" and parts[3] else None


def is_error(http: bool, code: int, flags: str, reason: str | None) -> bool:
    """The module's error rule: refusals, 5xx, 403, no response; failed TCP connections."""
    if reason:
        return True
    if http:
        return code == 0 or code == 403 or code >= 500
    return any(f in TCP_FAILURE_FLAGS for f in flags.split(","))


def sample(row: tuple[Any, ...]) -> Sample | None:
    """One store row (``_COLUMNS``) -> a Sample; None for a sidecar's inbound entry."""
    reporter, host, code, duration, flags, cluster, reason, method, protocol, dialed = row
    cluster = str(cluster or "")
    if cluster.startswith("inbound|") or cluster == "InboundPassthroughCluster":
        return None
    http = method is not None or protocol is not None
    if not host:
        host = cluster_host(cluster) or (str(dialed) if dialed else UNKNOWN)
    return Sample(
        host=str(host),
        reporter=str(reporter),
        protocol="http" if http else "tcp",
        error=is_error(http, code if isinstance(code, int) else 0, str(flags or "-"), reason),
        duration_ms=_num(duration),
    )


def percentile(ordered: list[float], p: float) -> float:
    """Nearest rank of ``ordered`` (ascending, not empty)."""
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def aggregate(samples: Iterable[Sample], window: float) -> list[HostRow]:
    """Rows by (host, reporter, protocol), busiest first, then by host."""
    groups: dict[tuple[str, str, str], list[Sample]] = {}
    for s in samples:
        groups.setdefault((s.host, s.reporter, s.protocol), []).append(s)
    rows = []
    for (host, reporter, protocol), group in groups.items():
        durations = sorted(s.duration_ms for s in group)
        errors = sum(1 for s in group if s.error)
        rows.append(
            HostRow(
                host=host,
                reporter=reporter,
                protocol=protocol,
                requests=len(group),
                errors=errors,
                rate=len(group) / window,
                error_rate=errors / len(group),
                p50_ms=percentile(durations, 50),
                p99_ms=percentile(durations, 99),
            )
        )
    rows.sort(key=lambda r: (-r.requests, r.host, r.reporter, r.protocol))
    return rows


def top_hosts(conn: sqlite3.Connection, q: TopQuery, now: float) -> list[HostRow]:
    """The window's rows from the store (filters are parameters, never spliced text)."""
    where = ["start_ms >= ?"]
    args: list[Any] = [int((now - q.window) * 1000)]
    if q.namespace is not None:
        where.append("namespace = ?")
        args.append(q.namespace)
    if q.gateway is not None:
        where.append("workload = ? AND reporter = 'gateway'")
        args.append(q.gateway)
    if q.reporter is not None:
        where.append("reporter = ?")
        args.append(q.reporter)
    sql = f"SELECT {', '.join(_COLUMNS)} FROM entries WHERE {' AND '.join(where)}"
    samples = (s for row in conn.execute(sql, args) if (s := sample(tuple(row))) is not None)
    return aggregate(samples, q.window)
