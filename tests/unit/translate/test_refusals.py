"""Refusals carry their reason to the access log: the Lua filter first in every connection
manager, the block_all route's header, the gateway's NR mapper and unknown-SNI chain, and a
header from a server that is never trusted."""

from __future__ import annotations

import pytest
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from tests.golden.envoyconf import by_name, envoy_path, envoy_validate
from tests.golden.seedworld import decode, gateway_proxy, sleep_proxy, step_resources, step_snapshot
from tests.unit.security.rbackit import gateway, policy, seed_with
from tests.unit.security.test_authz_filters import PASSTHROUGH

from meshgate.model.snapshot import Snapshot
from meshgate.translate import translate
from meshgate.translate.refusals import REFUSED_HEADER


def _hcm(listener: object) -> hcm_pb2.HttpConnectionManager:
    hcm = hcm_pb2.HttpConnectionManager()
    listener.filter_chains[0].filters[0].typed_config.Unpack(hcm)  # type: ignore[attr-defined]
    return hcm


def _status_format(tcp_filter: object) -> str:
    proxy = tcp_proxy_pb2.TcpProxy()
    tcp_filter.typed_config.Unpack(proxy)  # type: ignore[attr-defined]
    from envoy.extensions.access_loggers.stream.v3 import stream_pb2

    logger = stream_pb2.StdoutAccessLog()
    proxy.access_log[0].typed_config.Unpack(logger)
    fields = logger.log_format.json_format.fields
    assert len(fields) == 24
    return str(fields["istio_policy_status"].string_value)


def _sidecar_world(mode: str) -> Snapshot:
    mesh = f"""apiVersion: meshgate.io/v1alpha1
kind: MeshConfig
metadata: {{name: default}}
spec: {{accessLogFile: /dev/stdout, outboundTrafficPolicy: {{mode: {mode}}}}}
"""
    return Snapshot.build(step_resources(1) + decode(mesh))


def test_sidecar_registry_only_refusals() -> None:
    snap = _sidecar_world("REGISTRY_ONLY")
    proxy = sleep_proxy(snap)
    config = translate(snap, proxy)
    hcm = _hcm(by_name(config.listeners, "0.0.0.0_80"))
    assert hcm.http_filters[0].name == "envoy.filters.http.header_to_metadata"
    routes = by_name(config.routes, "80")
    assert list(routes.response_headers_to_remove) == [REFUSED_HEADER]
    block = routes.virtual_hosts[-1].routes[0]
    assert block.name == "block_all"
    (header,) = block.response_headers_to_add
    assert header.header.key == REFUSED_HEADER
    assert header.header.value == (
        f"REGISTRY_ONLY: no ServiceEntry for %REQ(:AUTHORITY)% (from default/{proxy.pod})"
    )
    outbound = by_name(config.listeners, "virtualOutbound")
    catch_all = outbound.filter_chains[-1].filters[0]
    assert _status_format(catch_all).startswith("REGISTRY_ONLY: no ServiceEntry for %DOWNSTREAM")


def test_allow_any_logs_nothing_special() -> None:
    snap = _sidecar_world("ALLOW_ANY")
    outbound = by_name(translate(snap, sleep_proxy(snap)).listeners, "virtualOutbound")
    assert [f.name for f in outbound.listener_filters] == ["envoy.filters.listener.original_dst"]
    assert _status_format(outbound.filter_chains[-1].filters[0]) == (
        "%DYNAMIC_METADATA(istio.mixer:status)%"
    )


def test_gateway_no_route_and_unknown_sni() -> None:
    snap = step_snapshot(4)
    config = translate(snap, gateway_proxy(snap))
    hcm = _hcm(by_name(config.listeners, "0.0.0.0_80"))
    mapper = hcm.local_reply_config.mappers[0]  # before the SSRF guard's (translate.ssrf)
    assert list(mapper.filter.response_flag_filter.flags) == ["NR"]
    assert mapper.headers_to_add[0].header.value.startswith("no route on gateway for host")
    tls_snap = seed_with(PASSTHROUGH)
    listener = by_name(translate(tls_snap, gateway(tls_snap)).listeners, "0.0.0.0_443")
    default = listener.default_filter_chain.filters[0]
    assert _status_format(default).startswith("no route on gateway for SNI %REQUESTED_SERVER")


@pytest.mark.skipif(envoy_path() is None, reason="envoy binary not installed")
def test_envoy_accepts_the_refusal_config() -> None:
    for snap, proxy in (
        (_sidecar_world("REGISTRY_ONLY"), sleep_proxy),
        (step_snapshot(4), gateway_proxy),
    ):
        result = envoy_validate(translate(snap, proxy(snap)))
        assert result.returncode == 0, result.stderr[-2000:]
    tls_snap = seed_with(PASSTHROUGH)
    result = envoy_validate(translate(tls_snap, gateway(tls_snap)))
    assert result.returncode == 0, result.stderr[-2000:]


def test_network_rbac_denials_log_envoys_termination_details() -> None:
    deny = "{selector: {matchLabels: {istio: egressgateway}}, action: DENY, rules: [{}]}"
    snap = seed_with(PASSTHROUGH, policy("deny-all", "istio-system", deny))
    listener = by_name(translate(snap, gateway(snap)).listeners, "0.0.0.0_443")
    for chain in listener.filter_chains:
        assert _status_format(chain.filters[-1]) == "%CONNECTION_TERMINATION_DETAILS%"
    # The unknown-SNI chain keeps its own reason.
    default = listener.default_filter_chain.filters[-1]
    assert _status_format(default).startswith("no route on gateway for SNI")


def test_each_policy_gets_a_mapper_naming_it() -> None:
    deny = "{selector: {matchLabels: {istio: egressgateway}}, action: DENY, rules: [{}, {}]}"
    allow = "{selector: {matchLabels: {istio: egressgateway}}, rules: [{}]}"
    snap = seed_with(policy("deny-all", "istio-system", deny), policy("ok", "istio-system", allow))
    hcm = _hcm(by_name(translate(snap, gateway(snap)).listeners, "0.0.0.0_80"))
    reasons = [m.headers_to_add[0].header.value for m in hcm.local_reply_config.mappers]
    assert reasons[:3] == [
        "denied by AuthorizationPolicy istio-system/deny-all (from %DOWNSTREAM_REMOTE_ADDRESS%)",
        "denied by AuthorizationPolicy istio-system/ok (from %DOWNSTREAM_REMOTE_ADDRESS%)",
        "no ALLOW AuthorizationPolicy matches (from %DOWNSTREAM_REMOTE_ADDRESS%)",
    ]
    assert reasons[3].startswith("no route on gateway for host")
