"""Prometheus metrics: the control plane's own figures, and the mesh's traffic as Istio names it.

Rules of this module:
- Traffic metrics are derived from the de-duplicated access-log stream (``Sink(on_new=...)``
  hands each request over once, whichever source brought it first), never from the
  proxies' own stats: one request is counted once even when its replica died or the
  control plane restarted (the backfill brings it), and never twice.
- Istio's standard names and labels (``istio_requests_total``,
  ``istio_request_duration_milliseconds``, ...). ``derive`` is pure: an entry and the
  reporter's principal in, one ``Observation`` out.
- ``reporter``: ``source`` for a client's view (a sidecar's outbound, and every gateway,
  as Istio's gateways report), ``destination`` for a sidecar's inbound (``inbound|``
  clusters). ``connection_security_policy`` is ``unknown`` on the source side, as Istio
  has it; on the destination side it is ``mutual_tls`` when the connection named an Istio
  mTLS SNI (``outbound_.``), else ``none``.
- Approximate, and said so in docs/observability.md: request/response sizes are body bytes
  (``bytes_received``/``bytes_sent``, headers not counted); a TCP connection is counted
  opened and closed when its log entry arrives, at its close; counters start at zero with
  each control-plane process (Prometheus handles the reset); entries pruned or lost
  before they were stored are not counted.
- Cardinality is bounded: labels come from workloads, response codes and flags, and the
  destination service; at most ``max_services`` distinct ``destination_service`` values,
  later ones fold into ``other`` (counted in ``meshgate_metrics_folded_total``). No path,
  no pod name, no request id is ever a label.
- The control plane's own figures are read when scraped (a collector over callables), so
  nothing else has to count them; what is counted as it happens (store writes, config
  generation time, the traffic) is counted under a lock-free prometheus_client metric.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from meshgate.telemetry.entries import Entry
from meshgate.telemetry.sink import Counters

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
UNKNOWN = "unknown"
OTHER = "other"
MAX_SERVICES = 1000

# Istio's default buckets (its stats extension): milliseconds, and bytes.
DURATION_BUCKETS_MS = (
    0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000,
    600000, 1800000, 3600000,
)  # fmt: skip
SIZE_BUCKETS = (1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000)
PUSH_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

TCP_LABELS = (
    "reporter",
    "source_workload",
    "source_workload_namespace",
    "source_principal",
    "destination_service",
    "destination_service_name",
    "request_protocol",
    "response_flags",
    "connection_security_policy",
)
HTTP_LABELS = (*TCP_LABELS, "response_code")

_PASSTHROUGH = "PassthroughCluster"
_BLACKHOLE = "BlackHoleCluster"
_CLUSTER_DOMAIN = ".svc.cluster.local"

T = TypeVar("T")

# No ``*_created`` series: Istio's metrics have none, and they would double every series.
# (A process-wide setting of prometheus_client; the control plane's process is ours.)
disable_created_metrics()  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class Observation:
    """What one access-log entry adds to the Istio metrics."""

    http: bool
    labels: dict[str, str]  # HTTP_LABELS, or TCP_LABELS for a connection
    duration_ms: float
    request_bytes: int
    response_bytes: int


def _int(value: Any) -> int:
    return value if isinstance(value, int) and value >= 0 else 0


def destination(entry: Entry) -> tuple[str, str]:
    """(destination_service, destination_service_name) as Istio derives them: the host of
    the upstream cluster (``outbound|80||aliyun.com``); for the passthrough, the blackhole
    (REGISTRY_ONLY's ``block_all`` route included) and no cluster at all, the host the
    client asked for, named by the catch-all cluster."""
    f = entry.fields
    cluster = str(f.get("upstream_cluster") or "")
    parts = cluster.split("|")
    if len(parts) == 4 and parts[0] == "outbound" and parts[3]:
        host = parts[3]
        in_cluster = host.endswith(_CLUSTER_DOMAIN)
        return host, host.split(".")[0] if in_cluster else host
    host = entry.host or UNKNOWN
    if cluster == _PASSTHROUGH:
        return host, _PASSTHROUGH
    if cluster == _BLACKHOLE or f.get("route_name") == "block_all":
        return host, _BLACKHOLE
    return host, host if host != UNKNOWN else UNKNOWN


def derive(entry: Entry, principal: str | None) -> Observation:
    """One entry -> its labels and values (pure)."""
    f = entry.fields
    cluster = str(f.get("upstream_cluster") or "")
    inbound = cluster.startswith("inbound|") or cluster == "InboundPassthroughCluster"
    reporter = "destination" if inbound else "source"
    http = f.get("method") is not None or f.get("protocol") is not None
    if reporter == "source":
        security = UNKNOWN
    else:
        sni = str(f.get("requested_server_name") or "")
        security = "mutual_tls" if sni.startswith("outbound_.") else "none"
    service, service_name = destination(entry)
    labels = {
        "reporter": reporter,
        "source_workload": entry.reporter.workload or UNKNOWN,
        "source_workload_namespace": entry.reporter.namespace or UNKNOWN,
        "source_principal": principal or UNKNOWN,
        "destination_service": service,
        "destination_service_name": service_name,
        "request_protocol": "http" if http else "tcp",
        "response_flags": str(f.get("response_flags") or "-"),
        "connection_security_policy": security,
    }
    if http:
        labels["response_code"] = str(_int(f.get("response_code")))
    duration = f.get("duration")
    return Observation(
        http=http,
        labels=labels,
        duration_ms=float(duration) if isinstance(duration, int | float) else 0.0,
        # Envoy's body bytes: Istio's sizes also count headers (approximate, documented).
        request_bytes=_int(f.get("bytes_received")),
        response_bytes=_int(f.get("bytes_sent")),
    )


class _Timed:
    """A callable that observes how long each call of ``fn`` took."""

    def __init__(self, fn: Callable[..., T], histogram: Histogram) -> None:
        self._fn = fn
        self._histogram = histogram

    def __call__(self, *args: Any) -> Any:
        start = time.perf_counter()
        try:
            return self._fn(*args)
        finally:
            self._histogram.observe(time.perf_counter() - start)


@dataclass(frozen=True)
class Sources:
    """Where the scrape-time figures come from (all read on the event loop)."""

    push_count: Callable[[], int]
    statuses: Callable[[], Sequence[Any]]  # xds.status.ProxyStatus
    accesslog: Callable[[], Counters]


class _ControlPlaneCollector(Collector):
    def __init__(self, sources: Sources) -> None:
        self._s = sources

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "meshgate_xds_pushes", "xDS pushes: regenerations of every connected proxy's config.",
            value=self._s.push_count(),
        )  # fmt: skip
        statuses = list(self._s.statuses())
        connected = GaugeMetricFamily(
            "meshgate_xds_connected_proxies",
            "Proxies with an open xDS stream, by proxy type.",
            labels=["proxy_type"],
        )
        by_type: dict[str, int] = {"sidecar": 0, "router": 0}
        rejected: dict[str, int] = {}
        for st in statuses:
            if not st.connected:
                continue
            kind = "router" if str(st.node_id).startswith("router~") else "sidecar"
            by_type[kind] = by_type.get(kind, 0) + 1
            for url, t in st.types.items():
                if str(t.state) == "NACKED":
                    short = url.rsplit(".", 1)[-1]
                    rejected[short] = rejected.get(short, 0) + 1
        for kind, n in sorted(by_type.items()):
            connected.add_metric([kind], n)
        yield connected
        nacks = GaugeMetricFamily(
            "meshgate_xds_rejected_configs",
            "Connected proxies whose last config of a type was rejected (NACK), by type.",
            labels=["type"],
        )
        for short, n in sorted(rejected.items()):
            nacks.add_metric([short], n)
        yield nacks
        c = self._s.accesslog()
        received = CounterMetricFamily(
            "meshgate_accesslog_entries_received",
            "Access-log entries received, by source (als: the gRPC stream, file: the backfill "
            "from proxies' own logs, replica: pulled from another control-plane replica; one "
            "request usually arrives from several).",
            labels=["source"],
        )
        received.add_metric(["als"], c.received_als)
        received.add_metric(["file"], c.received_file)
        received.add_metric(["replica"], c.received_replica)
        yield received
        dropped = CounterMetricFamily(
            "meshgate_accesslog_entries_dropped",
            "Streamed entries dropped because the writer's queue was full (the backfill "
            "stores them from the proxy's own log).",
            labels=["reason"],
        )
        dropped.add_metric(["queue_full"], c.dropped_queue_full)
        yield dropped
        yield GaugeMetricFamily(
            "meshgate_accesslog_replicas_unanswered",
            "Other control-plane replicas whose access-log entries could not be pulled at "
            "the last attempt (their requests are missing from this replica's figures).",
            value=c.replicas_unanswered,
        )
        yield CounterMetricFamily(
            "meshgate_accesslog_entries_stored", "Requests stored (each once).", value=c.stored
        )
        yield CounterMetricFamily(
            "meshgate_accesslog_entries_pruned",
            "Stored entries removed by the store's age and size bounds.",
            value=c.pruned,
        )


class Metrics:
    """One registry per control plane (never the process-global one: tests run several)."""

    def __init__(
        self,
        sources: Sources,
        principal: Callable[[Entry], str | None] = lambda _e: None,
        *,
        max_services: int = MAX_SERVICES,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._principal = principal
        self._max_services = max_services
        self._services: set[str] = set()
        self._lock = threading.Lock()
        r = self.registry
        r.register(_ControlPlaneCollector(sources))
        self.generate_seconds = Histogram(
            "meshgate_xds_push_generate_seconds",
            "Time to build one proxy's config for a push or its first request (translation, "
            "credentials, secrets): the control plane's share of push latency.",
            buckets=PUSH_BUCKETS_S, registry=r,
        )  # fmt: skip
        self.store_writes = Counter(
            "meshgate_store_writes",
            "Committed store writes, by event type and resource kind.",
            ["type", "kind"], registry=r,
        )  # fmt: skip
        self.folded = Counter(
            "meshgate_metrics_folded",
            "Traffic observations whose destination_service was folded into 'other' "
            "(beyond the distinct services the metrics keep).",
            registry=r,
        )
        self.requests = Counter(
            "istio_requests", "Requests, from the mesh-wide access log.", HTTP_LABELS, registry=r
        )
        self.duration = Histogram(
            "istio_request_duration_milliseconds", "Request duration (ms).",
            HTTP_LABELS, buckets=DURATION_BUCKETS_MS, registry=r,
        )  # fmt: skip
        self.request_bytes = Histogram(
            "istio_request_bytes", "Request body size (bytes received).",
            HTTP_LABELS, buckets=SIZE_BUCKETS, registry=r,
        )  # fmt: skip
        self.response_bytes = Histogram(
            "istio_response_bytes", "Response body size (bytes sent).",
            HTTP_LABELS, buckets=SIZE_BUCKETS, registry=r,
        )  # fmt: skip
        self.tcp_opened = Counter(
            "istio_tcp_connections_opened", "TCP connections opened (counted at their close).",
            TCP_LABELS, registry=r,
        )  # fmt: skip
        self.tcp_closed = Counter(
            "istio_tcp_connections_closed", "TCP connections closed.", TCP_LABELS, registry=r
        )
        self.tcp_sent = Counter(
            "istio_tcp_sent_bytes", "Bytes sent to the client over TCP connections.",
            TCP_LABELS, registry=r,
        )  # fmt: skip
        self.tcp_received = Counter(
            "istio_tcp_received_bytes", "Bytes received from the client over TCP connections.",
            TCP_LABELS, registry=r,
        )  # fmt: skip

    # -- inputs ------------------------------------------------------------------------

    def timed(self, fn: Callable[..., T]) -> Callable[..., T]:
        """``fn`` with each call's duration observed in the config-generation histogram."""
        return _Timed(fn, self.generate_seconds)

    def on_store_events(self, events: Iterable[Any]) -> None:
        """The store's watch callback: one count per committed write."""
        for e in events:
            self.store_writes.labels(e.type, e.key.kind).inc()

    def on_entries(self, new: Iterable[Entry]) -> None:
        """The sink's ``on_new``: each request once."""
        for entry in new:
            self.observe(derive(entry, self._principal(entry)))

    def observe(self, o: Observation) -> None:
        labels = dict(o.labels)
        labels["destination_service"] = self._bounded(labels["destination_service"])
        if o.http:
            self.requests.labels(**labels).inc()
            self.duration.labels(**labels).observe(o.duration_ms)
            self.request_bytes.labels(**labels).observe(o.request_bytes)
            self.response_bytes.labels(**labels).observe(o.response_bytes)
            return
        self.tcp_opened.labels(**labels).inc()
        self.tcp_closed.labels(**labels).inc()
        self.tcp_sent.labels(**labels).inc(o.response_bytes)
        self.tcp_received.labels(**labels).inc(o.request_bytes)

    def _bounded(self, service: str) -> str:
        with self._lock:
            if service in self._services:
                return service
            if len(self._services) < self._max_services:
                self._services.add(service)
                return service
        self.folded.inc()
        return OTHER

    # -- output ------------------------------------------------------------------------

    def exposition(self) -> bytes:
        """One scrape, Prometheus text format 0.0.4."""
        return generate_latest(self.registry)
