"""What the egress traffic page shows, computed from access-log entries (pure, no I/O).

Rules of this module:
- An entry's external host is ``telemetry.top``'s: the authority without its port, else the
  TLS SNI, else the upstream cluster's host, else the dialed address. A sidecar's inbound
  entries are mesh-internal and left out, as ``meshgate top`` leaves them out.
- Errors follow ``telemetry.top.is_error`` (refusals, 5xx, 403, no response, failed TCP).
- Series are per host and per reporter (a request through a sidecar and the gateway is in
  both lines, never twice in one), in equal time buckets ending at ``now``; latency is the
  bucket's p50 ``duration`` (ms), None where the bucket had no request.
- Blocked: entries that carry a refusal ``reason`` (REGISTRY_ONLY, no gateway route,
  denied by policy...), newest first.
- A pod's workload is its name without the Deployment's hashes (``name-<hash>-<5>``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from meshgate.telemetry.entries import start_ms
from meshgate.telemetry.top import cluster_host, is_error, percentile

Entry = dict[str, Any]
_POD_HASHES = re.compile(r"^(?P<name>.+)-[a-z0-9]{5,10}-[a-z0-9]{5}$")


def workload_of(pod: str) -> str:
    m = _POD_HASHES.match(pod)
    return m.group("name") if m else pod


def is_inbound(entry: Entry) -> bool:
    cluster = str(entry.get("upstream_cluster") or "")
    return cluster.startswith("inbound|") or cluster == "InboundPassthroughCluster"


def host_of(entry: Entry) -> str:
    authority = str(entry.get("authority") or "")
    if authority:
        return authority if "]" in authority else authority.rsplit(":", 1)[0]
    sni = entry.get("requested_server_name")
    if sni:
        return str(sni)
    cluster = cluster_host(str(entry.get("upstream_cluster") or ""))
    return cluster or str(entry.get("downstream_local_address") or "unknown")


def entry_error(entry: Entry) -> bool:
    http = entry.get("method") is not None or entry.get("protocol") is not None
    code = entry.get("response_code")
    return is_error(
        http,
        code if isinstance(code, int) else 0,
        str(entry.get("response_flags") or "-"),
        entry.get("reason"),
    )


@dataclass
class Series:
    """One reporter's line of one host: per bucket requests, errors and p50 latency."""

    requests: list[int]
    errors: list[int]
    latency: list[float | None]


@dataclass
class HostSeries:
    host: str
    requests: int = 0
    errors: int = 0
    by_reporter: dict[str, Series] = field(default_factory=dict)


def series(
    entries: list[Entry], now_ms: int, window_s: float, buckets: int = 30
) -> list[HostSeries]:
    """Hosts busiest first (then by name), each with its lines over the window."""
    width = window_s * 1000 / buckets
    start = now_ms - window_s * 1000
    durations: dict[tuple[str, str], list[list[float]]] = {}
    hosts: dict[str, HostSeries] = {}
    for e in entries:
        if is_inbound(e):
            continue
        at = start_ms(e.get("start_time"))
        if not start <= at <= now_ms:
            continue
        index = min(buckets - 1, int((at - start) // width))
        host = host_of(e)
        reporter = str(e.get("reporter") or "sidecar")
        hs = hosts.setdefault(host, HostSeries(host))
        line = hs.by_reporter.setdefault(
            reporter, Series([0] * buckets, [0] * buckets, [None] * buckets)
        )
        error = entry_error(e)
        line.requests[index] += 1
        line.errors[index] += int(error)
        hs.requests += 1
        hs.errors += int(error)
        d = e.get("duration")
        cells = durations.setdefault((host, reporter), [[] for _ in range(buckets)])
        cells[index].append(float(d) if isinstance(d, int | float) else 0.0)
    for (host, reporter), cells in durations.items():
        line = hosts[host].by_reporter[reporter]
        line.latency = [percentile(sorted(c), 50) if c else None for c in cells]
    return sorted(hosts.values(), key=lambda h: (-h.requests, h.host))


@dataclass(frozen=True)
class Blocked:
    time: str
    pod: str
    namespace: str
    reporter: str
    host: str
    code: int | None
    flags: str
    reason: str


def blocked(entries: list[Entry], limit: int = 50) -> list[Blocked]:
    rows = [
        Blocked(
            time=str(e.get("start_time") or ""),
            pod=str(e.get("pod") or ""),
            namespace=str(e.get("namespace") or ""),
            reporter=str(e.get("reporter") or ""),
            host=host_of(e),
            code=e.get("response_code") if isinstance(e.get("response_code"), int) else None,
            flags=str(e.get("response_flags") or "-"),
            reason=str(e["reason"]),
        )
        for e in entries
        if e.get("reason")
    ]
    rows.sort(key=lambda b: b.time, reverse=True)
    return rows[:limit]


# -- the graph: workloads -> gateways -> external hosts ------------------------------------


@dataclass(frozen=True)
class Edge:
    source: str  # node ids: "w:ns/name", "g:ns/name", "h:host"
    target: str
    requests: int
    errors: int


@dataclass
class Graph:
    workloads: list[str]
    gateways: list[str]
    hosts: list[str]
    edges: list[Edge]


def _service_gateway(host: str, gateways: set[str]) -> str | None:
    """``istio-egressgateway.istio-system.svc.cluster.local`` -> the gateway's ``ns/name``."""
    parts = host.split(".")
    if len(parts) >= 2:
        key = f"{parts[1]}/{parts[0]}"
        if key in gateways:
            return key
    return None


def graph(entries: list[Entry], gateways: list[str]) -> Graph:
    """Who sent traffic where: a sidecar's request to a gateway's Service is an edge to that
    gateway, to anything else an edge to the host; a gateway's request, gateway -> host.
    ``gateways`` (``ns/name``) are the egress gateways configured, drawn even when idle."""
    known = set(gateways) | {
        f"{e.get('namespace')}/{workload_of(str(e.get('pod') or ''))}"
        for e in entries
        if e.get("reporter") == "gateway"
    }
    counts: dict[tuple[str, str], list[int]] = {}
    for e in entries:
        if is_inbound(e):
            continue
        ns = str(e.get("namespace") or "")
        me = f"{ns}/{workload_of(str(e.get('pod') or ''))}"
        cluster = cluster_host(str(e.get("upstream_cluster") or "")) or ""
        if e.get("reporter") == "gateway":
            source, target = f"g:{me}", f"h:{host_of(e)}"
        else:
            via = _service_gateway(cluster, known)
            source = f"w:{me}"
            target = f"g:{via}" if via else f"h:{host_of(e)}"
        cell = counts.setdefault((source, target), [0, 0])
        cell[0] += 1
        cell[1] += int(entry_error(e))
    edges = [Edge(s, t, n, err) for (s, t), (n, err) in sorted(counts.items())]
    nodes = {n for e in edges for n in (e.source, e.target)}
    return Graph(
        workloads=sorted(n[2:] for n in nodes if n.startswith("w:")),
        gateways=sorted(known | {n[2:] for n in nodes if n.startswith("g:")}),
        hosts=sorted(n[2:] for n in nodes if n.startswith("h:")),
        edges=edges,
    )
