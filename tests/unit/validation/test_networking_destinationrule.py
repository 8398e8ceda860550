"""DestinationRule accept/reject table, modelled on Istio's TestValidateDestinationRule,
TestValidateTrafficPolicy, TestValidateConnectionPool, TestValidateLoadBalancer,
TestValidateOutlierDetection, TestValidateClientTLSSettings and TestValidateLocalityLbSetting."""

# Case tables keep each YAML case on one line, like Istio's test tables.

from __future__ import annotations

import pytest
from tests.unit.validation.cases import Case, check, params


def tp(policy: str) -> str:
    return f"host: reviews\ntrafficPolicy: {policy}"


CASES = [
    Case(
        "simple destination rule",
        None,
        "host: reviews\nsubsets: [{name: v1, labels: {version: v1}}]",
    ),
    Case("missing host", "MG0006", "subsets: [{name: v1}]"),
    Case("wildcard host", None, "host: '*.example.com'"),
    Case("bad host", "MG1001", "host: 'foo.*.example.com'"),
    Case("duplicate subsets", "MG1020", "host: reviews\nsubsets: [{name: v1}, {name: v1}]"),
    Case("subset name not a DNS label", "MG1081", "host: reviews\nsubsets: [{name: v_1}]"),
    Case("subset bad labels", "MG1048", "host: reviews\nsubsets: [{name: v1, labels: {'a b': c}}]"),
    Case("empty traffic policy", "MG1068", tp("{}")),
    Case(
        "empty subset traffic policy",
        "MG1068",
        "host: reviews\nsubsets: [{name: v1, trafficPolicy: {}}]",
    ),
    Case("simple load balancer", None, tp("{loadBalancer: {simple: ROUND_ROBIN}}")),
    Case(
        "consistent hash cookie without name",
        "MG0006",
        tp("{loadBalancer: {consistentHash: {httpCookie: {ttl: 0s}}}}"),
    ),
    Case(
        "maglev table size not prime",
        "MG1071",
        tp("{loadBalancer: {consistentHash: {httpHeaderName: x, maglev: {tableSize: 1000}}}}"),
    ),
    Case(
        "maglev table size prime",
        None,
        tp("{loadBalancer: {consistentHash: {httpHeaderName: x, maglev: {tableSize: 65537}}}}"),
    ),
    Case(
        "minimumRingSize with ringHash",
        "MG1071",
        tp(
            "{loadBalancer: {consistentHash: {httpHeaderName: x, minimumRingSize: 10, "
            "ringHash: {minimumRingSize: 10}}}}"
        ),
    ),
    Case(
        "warmup aggression below 1",
        "MG1071",
        tp("{loadBalancer: {simple: ROUND_ROBIN, warmup: {duration: 10s, aggression: 0.5}}}"),
    ),
    Case("connection pool empty", "MG1069", tp("{connectionPool: {}}")),
    Case(
        "connection pool",
        None,
        tp(
            "{connectionPool: {tcp: {maxConnections: 7, connectTimeout: 2s}, "
            "http: {http1MaxPendingRequests: 2, maxRetries: 3}}}"
        ),
    ),
    Case("connection pool negative", "MG1069", tp("{connectionPool: {tcp: {maxConnections: -1}}}")),
    Case(
        "connect timeout below 1ms",
        "MG1044",
        tp("{connectionPool: {tcp: {connectTimeout: 0.5ms}}}"),
    ),
    Case("tcp idleTimeout 0s disables", None, tp("{connectionPool: {tcp: {idleTimeout: 0s}}}")),
    Case(
        "UPGRADE with useClientProtocol",
        "MG1069",
        tp("{connectionPool: {http: {h2UpgradePolicy: UPGRADE, useClientProtocol: true}}}"),
    ),
    Case(
        "outlier detection",
        None,
        tp(
            "{outlierDetection: {consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 30s, "
            "maxEjectionPercent: 50}}"
        ),
    ),
    Case(
        "outlier max ejection percent > 100",
        "MG1033",
        tp("{outlierDetection: {maxEjectionPercent: 150}}"),
    ),
    Case(
        "outlier local origin failures without split",
        "MG1070",
        tp("{outlierDetection: {consecutiveLocalOriginFailures: 5}}"),
    ),
    Case(
        "outlier deprecated consecutiveErrors is warned",
        None,
        tp("{outlierDetection: {consecutiveErrors: 5}}"),
    ),
    Case("client tls SIMPLE", None, tp("{tls: {mode: SIMPLE, sni: a.com}}")),
    Case(
        "client tls MUTUAL without certificate",
        "MG1073",
        tp("{tls: {mode: MUTUAL, privateKey: k}}"),
    ),
    Case(
        "client tls MUTUAL with credentialName",
        None,
        tp("{tls: {mode: MUTUAL, credentialName: c}}"),
    ),
    Case(
        "client tls credentialName with files",
        "MG1073",
        tp("{tls: {mode: SIMPLE, credentialName: c, caCertificates: ca}}"),
    ),
    Case(
        "client tls insecureSkipVerify with CA",
        "MG1073",
        tp("{tls: {mode: SIMPLE, insecureSkipVerify: true, caCertificates: ca}}"),
    ),
    Case(
        "client tls ISTIO_MUTUAL with files is only warned",
        None,
        tp("{tls: {mode: ISTIO_MUTUAL, clientCertificate: c}}"),
    ),
    Case(
        "port level settings without port",
        "MG1068",
        tp("{portLevelSettings: [{tls: {mode: SIMPLE}}]}"),
    ),
    Case("port level settings empty", "MG1068", tp("{portLevelSettings: [{port: {number: 80}}]}")),
    Case(
        "port level settings",
        None,
        tp("{portLevelSettings: [{port: {number: 80}, loadBalancer: {simple: RANDOM}}]}"),
    ),
    Case(
        "tunnel and proxyProtocol",
        "MG1068",
        tp("{tunnel: {targetHost: a.com, targetPort: 443}, proxyProtocol: {version: V1}}"),
    ),
    Case("tunnel bad target host", "MG1068", tp("{tunnel: {targetHost: 'a b', targetPort: 443}}")),
    Case(
        "tunnel", None, tp("{tunnel: {protocol: CONNECT, targetHost: 10.0.0.1, targetPort: 443}}")
    ),
    Case(
        "locality distribute weights not 100",
        "MG1072",
        tp("{loadBalancer: {localityLbSetting: {distribute: [{from: a/b/c, to: {a/b/c: 80}}]}}}"),
    ),
    Case(
        "locality distribute and failover",
        "MG1072",
        tp(
            "{loadBalancer: {localityLbSetting: {distribute: [{from: a, to: {a: 100}}], "
            "failover: [{from: a, to: b}]}}}"
        ),
    ),
    Case(
        "locality failover same region",
        "MG1072",
        tp(
            "{loadBalancer: {localityLbSetting: {failover: [{from: a, to: a}]}}, "
            "outlierDetection: {consecutive5xxErrors: 5}}"
        ),
    ),
    Case(
        "locality failover",
        None,
        tp(
            "{loadBalancer: {localityLbSetting: {failover: [{from: us-east, to: eu-west}]}}, "
            "outlierDetection: {consecutive5xxErrors: 5}}"
        ),
    ),
    Case(
        "workloadSelector exported beyond its namespace",
        "MG1034",
        "host: reviews\nworkloadSelector: {matchLabels: {app: a}}\nexportTo: ['*']",
    ),
    Case(
        "workloadSelector exported to its namespace",
        None,
        "host: reviews\nworkloadSelector: {matchLabels: {app: a}}\nexportTo: ['.']",
    ),
]


@pytest.mark.parametrize("case", params(CASES))
def test_destination_rule(case: Case) -> None:
    check("DestinationRule", case)
