"""A sidecar's inbound side and auto mTLS: chains per PeerAuthentication mode, the identity
handed to the app, RBAC on the inbound listener only, and clients that send mTLS only to
endpoints with a proxy."""

from __future__ import annotations

from typing import Any

import pytest
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2
from tests.golden.envoyconf import envoy_path, envoy_validate
from tests.golden.seedworld import decode, pod, sleep_proxy, step_resources

from meshgate.model.snapshot import Snapshot
from meshgate.translate import translate

WEB = """
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}, {name: tcp-db, port: 5432}]
"""
WEB_IP = "10.34.0.9"
TLS_LABEL = {"security.istio.io/tlsMode": "istio"}


def _snapshot(
    extra: str = "", *, web_labels: dict[str, str] | None = None, step: int = 4
) -> Snapshot:
    labels = {"app": "web", **(TLS_LABEL if web_labels is None else web_labels)}
    resources = step_resources(step) + decode(WEB + extra, "extra.yaml")
    resources.append(pod("web-1", "default", WEB_IP, labels, service_account="web"))
    return Snapshot.build(resources)


def _web(snap: Snapshot) -> Any:
    proxy = snap.proxy_for(f"sidecar~{WEB_IP}~web-1.default~default.svc.cluster.local")
    assert proxy is not None
    return translate(snap, proxy)


def _inbound(config: Any) -> listener_pb2.Listener:
    (listener,) = [x for x in config.listeners if x.name == "virtualInbound"]
    return listener  # type: ignore[no-any-return]


def _chains(listener: Any, port: int) -> dict[str, Any]:
    return {
        c.name: c
        for c in listener.filter_chains
        if c.filter_chain_match.destination_port.value == port
    }


def _pa(name: str, namespace: str, body: str) -> str:
    return f"""---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {{name: {name}, namespace: {namespace}}}
spec: {body}
"""


def test_permissive_by_default_mtls_plaintext_and_app_tls() -> None:
    chains = _chains(_inbound(_web(_snapshot())), 8080)
    assert set(chains) == {"inbound|8080||-mtls", "inbound|8080||-tls", "inbound|8080||-plaintext"}
    mtls = chains["inbound|8080||-mtls"]
    assert mtls.filter_chain_match.transport_protocol == "tls"
    assert "istio-http/1.1" in mtls.filter_chain_match.application_protocols
    ctx = tls_pb2.DownstreamTlsContext()
    mtls.transport_socket.typed_config.Unpack(ctx)
    assert ctx.require_client_certificate.value
    assert [s.name for s in ctx.common_tls_context.tls_certificate_sds_secret_configs] == [
        "default"
    ]
    # HTTP ports get a connection manager, so the app sees the caller's identity.
    assert [f.name for f in mtls.filters] == ["envoy.filters.network.http_connection_manager"]
    tcp = _chains(_inbound(_web(_snapshot())), 5432)
    assert [f.name for f in tcp["inbound|5432||-mtls"].filters] == [
        "envoy.filters.network.tcp_proxy"
    ]


def test_inbound_never_hands_off_to_an_outbound_listener_of_the_same_port() -> None:
    # Istio's httpbin: a Service 8000 -> 80, on a pod whose own sidecar has an outbound
    # listener 0.0.0.0_80 (the web Service's port 80). A hand-off by original destination
    # (use_original_dst) would give the inbound connection to that outbound listener.
    extra = """---
apiVersion: v1
kind: Service
metadata: {name: web-80, namespace: default}
spec:
  selector: {app: web}
  ports: [{name: http, port: 8000, targetPort: 80}]
"""
    config = _web(_snapshot(extra))
    outbound = {x.name: x for x in config.listeners}
    assert not outbound["0.0.0.0_80"].bind_to_port.value
    inbound = _inbound(config)
    assert not inbound.HasField("use_original_dst")
    assert inbound.listener_filters[0].name == "envoy.filters.listener.original_dst"
    assert set(_chains(inbound, 80)) == {
        "inbound|80||-mtls",
        "inbound|80||-tls",
        "inbound|80||-plaintext",
    }


def test_strict_namespace_policy_keeps_only_mtls() -> None:
    snap = _snapshot(_pa("strict", "default", "{mtls: {mode: STRICT}}"))
    listener = _inbound(_web(snap))
    assert set(_chains(listener, 8080)) == {"inbound|8080||-mtls"}
    passthrough = [
        c.name for c in listener.filter_chains if not c.filter_chain_match.destination_port.value
    ]
    assert passthrough == ["virtualInbound-mtls"]


def test_workload_port_level_overrides_the_mesh() -> None:
    extra = _pa("mesh", "istio-system", "{mtls: {mode: STRICT}}") + _pa(
        "web",
        "default",
        "{selector: {matchLabels: {app: web}}, portLevelMtls: {5432: {mode: DISABLE}}}",
    )
    listener = _inbound(_web(_snapshot(extra)))
    assert set(_chains(listener, 8080)) == {"inbound|8080||-mtls"}  # UNSET: inherits STRICT
    assert set(_chains(listener, 5432)) == {"inbound|5432||-tls", "inbound|5432||-plaintext"}


def _client_cluster(snap: Snapshot, name: str) -> Any:
    config = translate(snap, sleep_proxy(snap))
    (cluster,) = [c for c in config.clusters if c.name == name]
    (cla,) = [a for a in config.endpoints if a.cluster_name == name] or [None]
    return cluster, cla


def test_auto_mtls_to_endpoints_with_a_proxy() -> None:
    cluster, cla = _client_cluster(_snapshot(), "outbound|80||web.default.svc.cluster.local")
    assert [m.name for m in cluster.transport_socket_matches] == [
        "tlsMode-istio",
        "tlsMode-disabled",
    ]
    ctx = tls_pb2.UpstreamTlsContext()
    cluster.transport_socket_matches[0].transport_socket.typed_config.Unpack(ctx)
    assert ctx.sni == "outbound_.80_._.web.default.svc.cluster.local"
    assert list(ctx.common_tls_context.alpn_protocols) == ["istio-http/1.1"]
    (endpoint,) = cla.endpoints[0].lb_endpoints
    assert endpoint.metadata.filter_metadata["envoy.transport_socket_match"]["tlsMode"] == "istio"


def test_no_mtls_to_pods_without_the_label_or_where_disabled() -> None:
    _, cla = _client_cluster(_snapshot(web_labels={}), "outbound|80||web.default.svc.cluster.local")
    assert not cla.endpoints[0].lb_endpoints[0].HasField("metadata")
    snap = _snapshot(_pa("no-mtls", "default", "{mtls: {mode: DISABLE}}"))
    cluster, _ = _client_cluster(snap, "outbound|80||web.default.svc.cluster.local")
    assert not cluster.transport_socket_matches


def test_a_destination_rule_tls_setting_wins_over_auto_mtls() -> None:
    dr = """---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: default}
spec:
  host: web.default.svc.cluster.local
  trafficPolicy: {tls: {mode: DISABLE}}
"""
    cluster, _ = _client_cluster(_snapshot(dr), "outbound|80||web.default.svc.cluster.local")
    assert not cluster.transport_socket_matches
    assert not cluster.HasField("transport_socket")


def test_the_seed_gateway_hop_stays_plaintext() -> None:
    snap = Snapshot.build(step_resources(4))
    name = "outbound|80||istio-egressgateway.istio-system.svc.cluster.local"
    cluster, cla = _client_cluster(snap, name)
    # The gateway pod has no tlsMode label: matches exist, but its endpoint takes plaintext.
    for ep in cla.endpoints[0].lb_endpoints:
        assert not ep.HasField("metadata")
    assert not cluster.HasField("transport_socket")


def test_authorization_policy_guards_the_inbound_side_only() -> None:
    ap = """---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: web-allow, namespace: default}
spec:
  selector: {matchLabels: {app: web}}
  rules: [{from: [{source: {namespaces: [default]}}]}]
"""
    config = _web(_snapshot(ap))
    for listener in config.listeners:
        names = {f.name for c in listener.filter_chains for f in c.filters}
        if listener.name == "virtualInbound":
            assert "envoy.filters.network.rbac" in names  # before the passthrough tcp_proxy
        else:
            assert "envoy.filters.network.rbac" not in names


def test_auto_mtls_can_be_turned_off_mesh_wide() -> None:
    mesh = """---
apiVersion: meshgate.io/v1alpha1
kind: MeshConfig
metadata: {name: default}
spec: {enableAutoMtls: false}
"""
    # Step 1: the walkthrough's own MeshConfig (step 2) is not there yet.
    name = "outbound|80||web.default.svc.cluster.local"
    assert _client_cluster(_snapshot(step=1), name)[0].transport_socket_matches
    cluster, _ = _client_cluster(_snapshot(mesh, step=1), name)
    assert not cluster.transport_socket_matches


@pytest.mark.skipif(envoy_path() is None, reason="envoy binary not installed")
@pytest.mark.parametrize("mode", ["PERMISSIVE", "STRICT", "DISABLE"])
def test_envoy_accepts_the_inbound_side(mode: str) -> None:
    extra = (
        _pa("mode", "default", f"{{mtls: {{mode: {mode}}}}}")
        + """---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: web-allow, namespace: default}
spec:
  selector: {matchLabels: {app: web}}
  rules:
  - from: [{source: {principals: [cluster.local/ns/default/sa/sleep]}}]
    to: [{operation: {paths: [/ok]}}]
"""
    )
    result = envoy_validate(_web(_snapshot(extra)))
    assert result.returncode == 0, result.stderr[-2000:]
    result = envoy_validate(translate(_snapshot(extra), sleep_proxy(_snapshot(extra))))
    assert result.returncode == 0, result.stderr[-2000:]
