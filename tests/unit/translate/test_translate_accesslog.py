"""The mesh's accessLogEncoding and accessLogFormat reach every stdout logger, as Istio
applies them; the default stays the seed's 24-key JSON line, and a refusal's reason stays
reachable (the gRPC entry's custom tag, and the reason operator of a custom format)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from envoy.extensions.access_loggers.grpc.v3 import als_pb2
from envoy.extensions.access_loggers.stream.v3 import stream_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from google.protobuf import json_format
from tests.golden.envoyconf import by_name, envoy_path, envoy_validate
from tests.golden.seedworld import decode, gateway_proxy, sleep_proxy, step_resources
from tests.unit.security.rbackit import gateway, policy, seed_with
from tests.unit.security.test_authz_filters import PASSTHROUGH

from meshgate.model.snapshot import Snapshot
from meshgate.translate import translate
from meshgate.translate.accesslog import (
    ACCESS_LOG_FIELDS,
    ISTIO_TEXT_FORMAT,
    REASON_KEY,
    REQ_WITHOUT_QUERY,
    STDOUT_LOGGER,
)
from meshgate.translate.output import ProxyConfig

REASON_OP = "%DYNAMIC_METADATA(istio.mixer:status)%"
CUSTOM_JSON = {"code": "%RESPONSE_CODE%", "why": {"status": REASON_OP}, "host": "%UPSTREAM_HOST%"}


def _mesh(**fields: str) -> str:
    spec = {"accessLogFile": "/dev/stdout", "outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"}}
    spec.update(fields)
    return json.dumps(
        {
            "apiVersion": "meshgate.io/v1alpha1",
            "kind": "MeshConfig",
            "metadata": {"name": "default"},
            "spec": spec,
        }
    )


def _world(step: int, **fields: str) -> Snapshot:
    """The seed at ``step`` with the access log on, REGISTRY_ONLY and ``fields`` set."""
    resources = [r for r in step_resources(step) if r.kind != "MeshConfig"]
    return Snapshot.build(resources + decode(_mesh(**fields)))


def _configs(**fields: str) -> list[ProxyConfig]:
    snap = _world(4, **fields)
    return [translate(snap, sleep_proxy(snap)), translate(snap, gateway_proxy(snap))]


def _log_lists(config: ProxyConfig) -> list[Any]:
    """Every access_log list: listeners' own, then each HCM's and tcp_proxy's."""
    out = []
    for listener in config.listeners:
        out.append(listener.access_log)
        chains = [*listener.filter_chains]
        if listener.HasField("default_filter_chain"):
            chains.append(listener.default_filter_chain)
        for chain in chains:
            for f in chain.filters:
                inner: Any
                if f.typed_config.Is(hcm_pb2.HttpConnectionManager.DESCRIPTOR):
                    inner = hcm_pb2.HttpConnectionManager()
                elif f.typed_config.Is(tcp_proxy_pb2.TcpProxy.DESCRIPTOR):
                    inner = tcp_proxy_pb2.TcpProxy()
                else:
                    continue
                f.typed_config.Unpack(inner)
                out.append(inner.access_log)
    return [logs for logs in out if logs]


def _stdout(config: ProxyConfig) -> list[stream_pb2.StdoutAccessLog]:
    out = []
    for logs in _log_lists(config):
        for log in logs:
            if log.name == STDOUT_LOGGER:
                logger = stream_pb2.StdoutAccessLog()
                log.typed_config.Unpack(logger)
                out.append(logger)
    return out


def _grpc_reasons(config: ProxyConfig) -> list[str]:
    """The reason templates the gRPC entries carry (custom tag), one per refusing logger."""
    out = []
    for logs in _log_lists(config):
        for log in logs:
            common: Any = None
            for kind in (als_pb2.HttpGrpcAccessLogConfig, als_pb2.TcpGrpcAccessLogConfig):
                if log.typed_config.Is(kind.DESCRIPTOR):
                    msg = kind()
                    log.typed_config.Unpack(msg)
                    common = msg.common_config
            if common is not None:
                out.extend(t.literal.value for t in common.custom_tags if t.tag == REASON_KEY)
    return out


def _serialized(configs: list[ProxyConfig]) -> list[bytes]:
    return [m.SerializeToString() for c in configs for m in c.listeners]


def test_default_is_the_seed_line_and_explicit_json_changes_no_byte() -> None:
    default = _configs()
    loggers = [logger for c in default for logger in _stdout(c)]
    assert len(loggers) > 5
    for logger in loggers:
        assert sorted(json_format.MessageToDict(logger.log_format.json_format)) == sorted(
            ACCESS_LOG_FIELDS
        )
    assert _serialized(_configs(accessLogEncoding="JSON")) == _serialized(default)
    # A format Istio could not read as JSON keeps the default line (Istio logs an error;
    # meshgate refuses it when applied: MG1095).
    assert _serialized(_configs(accessLogFormat="[%START_TIME%] %PROTOCOL%")) == _serialized(
        default
    )


def test_text_without_a_format_is_istios_default_text_line() -> None:
    configs = _configs(accessLogEncoding="TEXT")
    loggers = [logger for c in configs for logger in _stdout(c)]
    assert len(loggers) == sum(len(_stdout(c)) for c in _configs())
    for logger in loggers:
        fmt = logger.log_format
        assert fmt.WhichOneof("format") == "text_format_source"
        assert fmt.text_format_source.inline_string == ISTIO_TEXT_FORMAT
        assert not fmt.formatters
    assert ISTIO_TEXT_FORMAT.startswith('[%START_TIME%] "%REQ(:METHOD)% ')
    assert ISTIO_TEXT_FORMAT.endswith(" %REQUESTED_SERVER_NAME% %ROUTE_NAME%\n")
    # The refusing chains' reasons still travel with the gRPC entries.
    reasons = [r for c in configs for r in _grpc_reasons(c)]
    assert [r for c in _configs() for r in _grpc_reasons(c)] == reasons
    assert any(r.startswith("REGISTRY_ONLY: no ServiceEntry for %DOWNSTREAM") for r in reasons)


def test_text_format_gets_a_newline_and_a_refusing_chain_its_reason() -> None:
    fmt = f"%REQ(:AUTHORITY)% %RESPONSE_CODE% {REASON_OP}"
    snap = _world(1, accessLogEncoding="TEXT", accessLogFormat=fmt)
    config = translate(snap, sleep_proxy(snap))
    texts = [logger.log_format.text_format_source.inline_string for logger in _stdout(config)]
    assert fmt + "\n" in texts
    refused = [t for t in texts if t != fmt + "\n"]
    assert refused == [
        "%REQ(:AUTHORITY)% %RESPONSE_CODE% REGISTRY_ONLY: no ServiceEntry for "
        "%DOWNSTREAM_LOCAL_ADDRESS% (SNI %REQUESTED_SERVER_NAME%) "
        f"(from default/{sleep_proxy(snap).pod})\n"
    ]
    # A newline already there is not doubled.
    snap = _world(1, accessLogEncoding="TEXT", accessLogFormat="%PROTOCOL%\n")
    texts = [
        logger.log_format.text_format_source.inline_string
        for logger in _stdout(translate(snap, sleep_proxy(snap)))
    ]
    assert set(texts) == {"%PROTOCOL%\n"}


def test_req_without_query_brings_its_formatter() -> None:
    snap = _world(1, accessLogEncoding="TEXT", accessLogFormat="%REQ_WITHOUT_QUERY(:PATH)%")
    for logger in _stdout(translate(snap, sleep_proxy(snap))):
        assert [f.name for f in logger.log_format.formatters] == [REQ_WITHOUT_QUERY]


def test_json_format_is_the_users_object() -> None:
    configs = _configs(accessLogEncoding="JSON", accessLogFormat=json.dumps(CUSTOM_JSON))
    formats = [
        json_format.MessageToDict(logger.log_format.json_format)
        for c in configs
        for logger in _stdout(c)
    ]
    assert CUSTOM_JSON in formats
    others = [f for f in formats if f != CUSTOM_JSON]
    assert others, "the refusing chains write their reason where the format has its operator"
    for f in others:
        assert f["code"] == "%RESPONSE_CODE%" and REASON_OP not in f["why"]["status"]
    assert any(f["why"]["status"].startswith("REGISTRY_ONLY: no ServiceEntry") for f in others)
    # Encoding unset is JSON (meshgate's default): the same format applies.
    unset = _configs(accessLogFormat=json.dumps(CUSTOM_JSON))
    assert _serialized(unset) == _serialized(configs)


def test_network_rbac_reason_survives_text() -> None:
    deny = "{selector: {matchLabels: {istio: egressgateway}}, action: DENY, rules: [{}]}"
    mesh = "---\n" + _mesh(accessLogEncoding="TEXT") + "\n"
    snap = seed_with(PASSTHROUGH, policy("deny-all", "istio-system", deny), mesh)
    config = translate(snap, gateway(snap))
    listener = by_name(config.listeners, "0.0.0.0_443")
    only = ProxyConfig(listeners=[listener], routes=[], clusters=[], endpoints=[], secrets=[])
    # The RBAC chains' entries name Envoy's termination details; the unknown-SNI chain its own.
    reasons = _grpc_reasons(only)
    assert reasons.count("%CONNECTION_TERMINATION_DETAILS%") == len(listener.filter_chains)
    assert any(r.startswith("no route on gateway for SNI") for r in reasons)
    for logger in _stdout(config):
        assert logger.log_format.text_format_source.inline_string == ISTIO_TEXT_FORMAT


@pytest.mark.skipif(envoy_path() is None, reason="envoy binary not installed")
@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"accessLogEncoding": "JSON", "accessLogFormat": json.dumps(CUSTOM_JSON)},
        {"accessLogEncoding": "TEXT"},
        {
            "accessLogEncoding": "TEXT",
            "accessLogFormat": f"[%START_TIME%] %REQ_WITHOUT_QUERY(:PATH)% {REASON_OP}",
        },
    ],
    ids=["json-default", "json-custom", "text-default", "text-custom"],
)
def test_envoy_accepts_each_encoding(fields: dict[str, str]) -> None:
    for config in _configs(**fields):
        result = envoy_validate(config)
        assert result.returncode == 0, result.stderr[-2000:]
