"""DestinationRule rules (Istio's ValidateDestinationRule and traffic policy checks).

Rules of this module:
- ``host`` is a domain (a leading wildcard label, or ``*``); subsets have unique DNS-label
  names and valid labels.
- A traffic policy (top level, per subset, per port) sets at least one field; a tunnel
  excludes proxyProtocol; port-level settings name a port.
- Connection pools set http or tcp, with non-negative counts; UPGRADE excludes
  useClientProtocol. Outlier detection: consecutiveLocalOriginFailures needs
  splitExternalLocalOriginErrors. Load balancers: a cookie has a name, maglev's table
  size is a prime below 5000011, locality settings are consistent.
- Client TLS: MUTUAL needs a certificate and key unless credentialName; credentialName
  excludes file fields; insecureSkipVerify excludes CA and SANs.
- With a workloadSelector, exportTo may only name the rule's own namespace.
"""

from __future__ import annotations

import math
from collections import Counter

from meshgate.api.kinds import istio_networking as net
from meshgate.validation import common as c
from meshgate.validation import shared
from meshgate.validation.findings import Findings, rule

_REGION_LABELS = frozenset(
    {"topology.kubernetes.io/region", "topology.kubernetes.io/zone", "topology.istio.io/subzone"}
)


@rule(net.DestinationRule)
def _destination_rule(dr: net.DestinationRule, findings: Findings) -> None:
    out = findings.at("spec")
    spec = dr.spec
    out.check("MG1001", c.wildcard_domain_problem(spec.host), "host")
    if spec.traffic_policy is not None:
        traffic_policy(out.at("trafficPolicy"), spec.traffic_policy)
    subsets = spec.subsets or []
    counts = Counter(s.name for s in subsets)
    for i, subset in enumerate(subsets):
        at = out.at("subsets", i)
        if counts[subset.name] > 1:
            at.error("MG1020", f"duplicate subset name {subset.name!r}", "name")
        shared.subset_name(at, subset.name, "name")
        shared.labels(at, subset.labels, "labels")
        if subset.traffic_policy is not None:
            traffic_policy(at.at("trafficPolicy"), subset.traffic_policy)
    shared.export_to(out, dr.namespace, spec.export_to)
    selector = spec.workload_selector
    if selector is not None:
        shared.selector(out, selector.match_labels, "workloadSelector", "matchLabels")
        targets = {dr.namespace if e == "." else e for e in spec.export_to or []}
        if targets and targets != {dr.namespace}:
            out.error(
                "MG1034",
                "a DestinationRule with a workloadSelector can be exported only to its own "
                "namespace",
                "exportTo",
            )


def traffic_policy(out: Findings, policy: net.TrafficPolicy) -> None:
    fields = (
        policy.outlier_detection, policy.connection_pool, policy.load_balancer, policy.tls,
        policy.port_level_settings, policy.tunnel, policy.proxy_protocol,
    )  # fmt: skip
    if all(f is None for f in fields):
        out.error("MG1068", "a traffic policy must set at least one field")
        return
    if policy.tunnel is not None and policy.proxy_protocol is not None:
        out.error("MG1068", "tunnel and proxyProtocol must not be set together", "tunnel")
        return
    _outlier(out.at("outlierDetection"), policy.outlier_detection)
    connection_pool(out.at("connectionPool"), policy.connection_pool)
    _load_balancer(out.at("loadBalancer"), policy.load_balancer, policy.outlier_detection)
    _client_tls(out.at("tls"), policy.tls)
    for i, pls in enumerate(policy.port_level_settings or []):
        at = out.at("portLevelSettings", i)
        if pls.port is None:
            at.error("MG1068", "port-level settings need a port", "port")
        elif pls.port.number is not None:
            at.check("MG1003", c.port_problem(pls.port.number), "port", "number")
        parts = (pls.outlier_detection, pls.connection_pool, pls.load_balancer, pls.tls)
        if all(p is None for p in parts):
            at.error("MG1068", "port-level settings must set at least one field")
            continue
        _outlier(at.at("outlierDetection"), pls.outlier_detection)
        connection_pool(at.at("connectionPool"), pls.connection_pool)
        _load_balancer(at.at("loadBalancer"), pls.load_balancer, pls.outlier_detection)
        _client_tls(at.at("tls"), pls.tls)
    tunnel = policy.tunnel
    if tunnel is not None:
        if c.fqdn_problem(tunnel.target_host) and not c.is_ip(tunnel.target_host):
            out.error(
                "MG1068", "tunnel targetHost must be an FQDN or an IP", "tunnel", "targetHost"
            )
        out.check("MG1003", c.port_problem(tunnel.target_port), "tunnel", "targetPort")


def _outlier(out: Findings, od: net.OutlierDetection | None) -> None:
    if od is None:
        return
    shared.duration(out, od.base_ejection_time, "baseEjectionTime")
    shared.duration(out, od.interval, "interval")
    if od.consecutive_errors:
        out.warn(
            "MG1070",
            "consecutiveErrors is deprecated: use consecutiveGatewayErrors or consecutive5xxErrors",
            "consecutiveErrors",
        )
    if not od.split_external_local_origin_errors and (od.consecutive_local_origin_failures or 0):
        out.error(
            "MG1070",
            "consecutiveLocalOriginFailures needs splitExternalLocalOriginErrors: true",
            "consecutiveLocalOriginFailures",
        )
    for value, wire in (
        (od.max_ejection_percent, "maxEjectionPercent"),
        (od.min_health_percent, "minHealthPercent"),
    ):
        if value is not None:
            out.check("MG1033", c.percent_problem(value), wire)


def connection_pool(out: Findings, pool: net.ConnectionPoolSettings | None) -> None:
    if pool is None:
        return
    if pool.http is None and pool.tcp is None:
        out.error("MG1069", "a connection pool must set http or tcp")
        return
    http = pool.http
    if http is not None:
        for value, wire in (
            (http.http1_max_pending_requests, "http1MaxPendingRequests"),
            (http.http2_max_requests, "http2MaxRequests"),
            (http.max_requests_per_connection, "maxRequestsPerConnection"),
            (http.max_retries, "maxRetries"),
            (http.max_concurrent_streams, "maxConcurrentStreams"),
        ):
            if value is not None and value < 0:
                out.error("MG1069", f"{wire} must not be negative", "http", wire)
        shared.duration(out, http.idle_timeout, "http", "idleTimeout")
        if http.h2_upgrade_policy == "UPGRADE" and http.use_client_protocol:
            out.error(
                "MG1069",
                "useClientProtocol must not be true with h2UpgradePolicy UPGRADE",
                "http",
                "useClientProtocol",
            )
    tcp = pool.tcp
    if tcp is not None:
        if tcp.max_connections is not None and tcp.max_connections < 0:
            out.error("MG1069", "maxConnections must not be negative", "tcp", "maxConnections")
        shared.duration(out, tcp.connect_timeout, "tcp", "connectTimeout")
        shared.duration(out, tcp.max_connection_duration, "tcp", "maxConnectionDuration")
        shared.duration(out, tcp.idle_timeout, "tcp", "idleTimeout", allow_zero=True)
        if tcp.tcp_keepalive is not None:
            shared.duration(out, tcp.tcp_keepalive.time, "tcp", "tcpKeepalive", "time")
            shared.duration(out, tcp.tcp_keepalive.interval, "tcp", "tcpKeepalive", "interval")


def _is_prime(x: int) -> bool:
    """Envoy's primality test for maglev table sizes."""
    if 0 < x < 4:
        return True
    if x % 2 == 0:
        return False
    return all(x % f for f in range(3, math.isqrt(x) + 1, 2))


def _load_balancer(
    out: Findings, lb: net.LoadBalancerSettings | None, od: net.OutlierDetection | None
) -> None:
    if lb is None:
        return
    ch = lb.consistent_hash
    if ch is not None:
        if ch.http_cookie is not None and not ch.http_cookie.name:
            out.error("MG1071", "httpCookie needs a name", "consistentHash", "httpCookie", "name")
        if ch.minimum_ring_size:
            out.warn(
                "MG1071",
                "minimumRingSize is deprecated: use ringHash",
                "consistentHash",
                "minimumRingSize",
            )
            if ch.ring_hash is not None or ch.maglev is not None:
                out.error(
                    "MG1071",
                    "set only one of minimumRingSize or maglev/ringHash",
                    "consistentHash",
                    "minimumRingSize",
                )
        if ch.maglev is not None:
            size = ch.maglev.table_size or 0
            at = out.at("consistentHash", "maglev", "tableSize")
            if size == 0:
                at.error("MG1071", "tableSize must be set for maglev")
            if size >= 5000011:
                at.error("MG1071", "tableSize must be less than 5000011 for maglev")
            if size and size < 5000011 and not _is_prime(size):
                at.error("MG1071", f"tableSize {size} must be a prime number for maglev")
    _locality(out.at("localityLbSetting"), lb.locality_lb_setting, od)
    shared.duration(out, lb.warmup_duration_secs, "warmupDurationSecs")
    warm = lb.warmup
    if warm is not None:
        shared.duration(out, warm.duration, "warmup", "duration")
        if warm.minimum_percent is not None and warm.minimum_percent > 100:
            out.error("MG1071", "minimumPercent must be at most 100", "warmup", "minimumPercent")
        if warm.aggression is not None and warm.aggression < 1:
            out.error("MG1071", "aggression must be at least 1", "warmup", "aggression")


def _locality(
    out: Findings, lb: net.LocalityLoadBalancerSetting | None, od: net.OutlierDetection | None
) -> None:
    if lb is None:
        return
    distribute, failover = lb.distribute or [], lb.failover or []
    if distribute and failover:
        out.error("MG1072", "set either distribute or failover, not both")
        return
    if failover:
        for label in lb.failover_priority or []:
            if label in _REGION_LABELS:
                out.error(
                    "MG1072",
                    f"failover and topology label {label!r} in failoverPriority "
                    "cannot be set together",
                    "failoverPriority",
                )
                return
    for i, d in enumerate(distribute):
        weights = list((d.to or {}).values())
        if any(not 1 <= w <= 100 for w in weights):
            out.error("MG1072", "locality weights must be in range 1..100", "distribute", i, "to")
            return
        if sum(weights) != 100:
            out.error(
                "MG1072", f"locality weights sum to {sum(weights)}, not 100", "distribute", i, "to"
            )
            return
        out.check("MG1072", _localities_problem(list(d.to or {})), "distribute", i, "to")
    out.check("MG1072", _localities_problem([d.from_ or "" for d in distribute]), "distribute")
    if (failover or lb.failover_priority) and od is None:
        out.warn("MG1072", "failover needs an outlier detection policy to take effect")
    for i, f in enumerate(failover):
        src, dst = f.from_ or "", f.to or ""
        if src == dst:
            out.error("MG1072", "failover must name different regions", "failover", i)
        if "/" in src or "/" in dst:
            out.error("MG1072", "failover names regions only", "failover", i)
        if "*" in src or "*" in dst:
            out.error("MG1072", "failover regions must not contain '*'", "failover", i)


def _localities_problem(localities: list[str]) -> str | None:
    """Localities ``region[/zone[/subzone]]``, ``*`` only last, none overlapping."""
    seen: list[list[str]] = []
    for loc in localities:
        if loc.count("*") > 1 or ("*" in loc and not loc.endswith("*")):
            return f"locality {loc}: at most one '*', at the end"
        parts = loc.split("/", 2)
        if any(p == "" for p in parts):
            return f"locality {loc} must not have an empty region/zone/subzone"
        if any(_overlap(prev, parts) for prev in seen):
            return f"locality {loc} overlaps with a previous one"
        seen.append(parts)
    return None


def _overlap(a: list[str], b: list[str]) -> bool:
    for x, y in zip(a, b, strict=False):
        if "*" in (x, y):
            return True
        if x != y:
            return False
    return True


def _client_tls(out: Findings, tls: net.ClientTLSSettings | None) -> None:
    if tls is None:
        return
    mode = tls.effective_mode
    if tls.insecure_skip_verify:
        if mode == "SIMPLE" and (
            tls.ca_certificates or tls.credential_name or tls.subject_alt_names is not None
        ):
            out.error(
                "MG1073",
                "insecureSkipVerify excludes caCertificates, credentialName and subjectAltNames",
                "insecureSkipVerify",
            )
        if mode == "MUTUAL" and (tls.ca_certificates or tls.subject_alt_names is not None):
            out.error(
                "MG1073",
                "insecureSkipVerify excludes caCertificates and subjectAltNames",
                "insecureSkipVerify",
            )
    if mode in ("SIMPLE", "MUTUAL") and tls.credential_name:
        if tls.client_certificate or tls.ca_certificates or tls.private_key or tls.ca_crl:
            out.error(
                "MG1073",
                "with credentialName, set no clientCertificate, privateKey, caCertificates or "
                "caCrl",
                "credentialName",
            )
        return
    if mode == "MUTUAL":
        if not tls.client_certificate:
            out.error(
                "MG1073",
                "mode MUTUAL needs clientCertificate (or credentialName)",
                "clientCertificate",
            )
        if not tls.private_key:
            out.error("MG1073", "mode MUTUAL needs privateKey (or credentialName)", "privateKey")
    if mode == "ISTIO_MUTUAL" and (
        tls.client_certificate or tls.private_key or tls.ca_certificates or tls.credential_name
    ):
        out.warn(
            "MG1035", "mode ISTIO_MUTUAL uses mesh certificates: these fields are ignored", "mode"
        )
