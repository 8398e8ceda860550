"""The gateway's refusal words: SSRF guard local replies and refused TLS handshakes."""

from __future__ import annotations

import pytest
from envoy.extensions.access_loggers.stream.v3 import stream_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from google.protobuf import json_format
from tests.golden.envoyconf import by_name, envoy_path, envoy_validate
from tests.golden.seedworld import gateway_proxy, step_snapshot

from meshgate.translate import ssrf, translate
from meshgate.translate.accesslog import ACCESS_LOG_FIELDS, STDOUT_LOGGER, TCP_GRPC_LOGGER


def _hcm(listener: object) -> hcm_pb2.HttpConnectionManager:
    out = hcm_pb2.HttpConnectionManager()
    listener.filter_chains[0].filters[0].typed_config.Unpack(out)  # type: ignore[attr-defined]
    return out


def test_a_guard_refusal_is_named_by_its_range_then_generically() -> None:
    mappers = ssrf.refusal_mappers()
    values = [m.headers_to_add[0].header.value for m in mappers]
    assert (
        "SSRF guard: upstream %UPSTREAM_HOST% is link-local (from %DOWNSTREAM_REMOTE_ADDRESS%)"
        in values
    )
    assert (
        "SSRF guard: upstream %UPSTREAM_HOST% is loopback (from %DOWNSTREAM_REMOTE_ADDRESS%)"
        in values
    )
    assert values[-1] == (
        "SSRF guard: upstream %UPSTREAM_HOST% is an internal address"
        " (from %DOWNSTREAM_REMOTE_ADDRESS%)"
    )
    assert all(m.headers_to_add[0].header.key == "x-meshgate-refused" for m in mappers)
    link_local = mappers[
        values.index(
            "SSRF guard: upstream %UPSTREAM_HOST% is link-local (from %DOWNSTREAM_REMOTE_ADDRESS%)"
        )
    ]
    flags, cel = link_local.filter.and_filter.filters
    assert list(flags.response_flag_filter.flags) == ["UF"]
    assert cel.extension_filter.name == "envoy.access_loggers.extension_filters.cel"


def test_seed_gateway_hcm_names_guard_refusals_and_are_logged() -> None:
    snap = step_snapshot(4)
    cfg = translate(snap, gateway_proxy(snap))
    manager = _hcm(by_name(cfg.listeners, "0.0.0.0_80"))
    # The gateway's own 404 NR mapper, then the guard's.
    assert len(manager.local_reply_config.mappers) == 1 + len(ssrf.refusal_mappers())
    names = [f.name for f in manager.http_filters]
    assert names[0] == "envoy.filters.http.header_to_metadata"  # moves the reason to the log
    # A plain HTTP listener has no handshake to refuse: no listener-level log.
    assert not by_name(cfg.listeners, "0.0.0.0_80").access_log


def test_handshake_logs_keep_the_seed_keys_and_fire_only_on_a_failed_handshake() -> None:
    logs = ssrf.handshake_access_logs()
    # Two cases, each to stdout (the seed's line) and to the control plane (ALS).
    assert [log.name for log in logs] == [STDOUT_LOGGER, TCP_GRPC_LOGGER] * 2
    for log in logs:
        assert "connection.transport_failure_reason" in str(log.filter)


def test_guard_gateway_is_idempotent() -> None:
    snap = step_snapshot(4)
    cfg = translate(snap, gateway_proxy(snap))
    before = [listener.SerializeToString() for listener in cfg.listeners]
    ssrf.guard_gateway(cfg.listeners)
    assert [listener.SerializeToString() for listener in cfg.listeners] == before


def test_envoy_accepts_the_guarded_gateway_config() -> None:
    if envoy_path() is None:
        pytest.skip("no envoy binary")
    snap = step_snapshot(4)
    result = envoy_validate(translate(snap, gateway_proxy(snap)))
    assert result.returncode == 0, result.stderr + result.stdout


def test_handshake_logs_are_the_seed_24_keys_with_the_reason_in_policy_status() -> None:
    for log in ssrf.handshake_access_logs():
        if log.name != STDOUT_LOGGER:
            continue
        logger = stream_pb2.StdoutAccessLog()
        log.typed_config.Unpack(logger)
        fmt = json_format.MessageToDict(logger.log_format.json_format)
        assert sorted(fmt) == sorted(ACCESS_LOG_FIELDS) and len(fmt) == 24
        assert fmt["istio_policy_status"] != "%DYNAMIC_METADATA(istio.mixer:status)%"
