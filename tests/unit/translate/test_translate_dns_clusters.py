"""DNS clusters re-resolve at Istio's rate (60 s, respecting the record's TTL), not Envoy's
5 s default; other cluster types carry no DNS settings."""

from __future__ import annotations

from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.extensions.network.dns_resolver.cares.v3 import cares_dns_resolver_pb2
from tests.golden.envoyconf import by_name
from tests.golden.seedworld import decode, sleep_proxy, step_resources

from meshgate.model.snapshot import Snapshot
from meshgate.translate import translate
from meshgate.translate.clusters import absolute_name

Cluster = cluster_pb2.Cluster

ENTRIES = """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: strict}
spec:
  hosts: [strict.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}, {number: 443, name: tls, protocol: TLS}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: logical}
spec:
  hosts: [logical.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS_ROUND_ROBIN
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: static}
spec:
  hosts: [static.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 192.0.2.1}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: strict}
spec:
  host: strict.example.com
  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
  subsets: [{name: v1, labels: {v: "1"}}]
"""


def _clusters() -> dict[str, object]:
    snap = Snapshot.build(step_resources(2) + decode(ENTRIES, "entries.yaml"))
    config = translate(snap, sleep_proxy(snap))
    return {c.name: c for c in config.clusters}


def test_strict_and_logical_dns_clusters_refresh_every_60s_and_respect_ttl() -> None:
    clusters = _clusters()
    for name, kind in [
        ("outbound|80||strict.example.com", Cluster.STRICT_DNS),
        ("outbound|443||strict.example.com", Cluster.STRICT_DNS),
        ("outbound|80|v1|strict.example.com", Cluster.STRICT_DNS),
        ("outbound|80||logical.example.com", Cluster.LOGICAL_DNS),
    ]:
        cluster = by_name(list(clusters.values()), name)
        assert cluster.type == kind, name
        assert cluster.dns_refresh_rate.seconds == 60, name
        assert cluster.dns_refresh_rate.nanos == 0, name
        assert cluster.respect_dns_ttl is True, name


def test_other_cluster_types_have_no_dns_settings() -> None:
    clusters = list(_clusters().values())
    for name in ["outbound|80||static.example.com", "PassthroughCluster", "BlackHoleCluster"]:
        cluster = by_name(clusters, name)
        assert not cluster.HasField("dns_refresh_rate"), name
        assert cluster.respect_dns_ttl is False, name


def _resolver(cluster: Any) -> Any:
    assert cluster.typed_dns_resolver_config.name == "envoy.network.dns_resolver.cares"
    config = cares_dns_resolver_pb2.CaresDnsResolverConfig()
    assert cluster.typed_dns_resolver_config.typed_config.Unpack(config)
    return config


def test_dns_clusters_use_cares_and_skip_search_domains_for_absolute_names() -> None:
    clusters = list(_clusters().values())
    strict = _resolver(by_name(clusters, "outbound|443||strict.example.com"))
    assert strict.udp_max_queries.value == 100
    assert strict.dns_resolver_options.no_default_search_domain is True
    assert not by_name(clusters, "outbound|80||static.example.com").HasField(
        "typed_dns_resolver_config"
    )


def test_names_that_may_need_a_search_domain_keep_it() -> None:
    extra = """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: short}
spec:
  hosts: [short.example]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
  endpoints: [{address: db.prod}, {address: web.prod.svc}]
"""
    snap = Snapshot.build(step_resources(2) + decode(extra, "extra.yaml"))
    config = translate(snap, sleep_proxy(snap))
    resolver = _resolver(by_name(config.clusters, "outbound|80||short.example"))
    assert resolver.udp_max_queries.value == 100
    assert resolver.dns_resolver_options.no_default_search_domain is False


def test_absolute_name_rule() -> None:
    assert absolute_name("svc-1.example.com")
    assert absolute_name("edition.cnn.com.")
    assert absolute_name("10.0.0.1")
    assert not absolute_name("aliyun.com")
    assert not absolute_name("web.prod.svc")
    assert not absolute_name("localhost")
