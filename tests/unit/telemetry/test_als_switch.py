"""MeshConfig ``enableEnvoyAccessLogService``: the gRPC access loggers a proxy is served, with
its credential when on, none at all when off; the stdout loggers stay either way."""

from __future__ import annotations

from typing import Any

from envoy.extensions.access_loggers.grpc.v3 import als_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from tests.golden.seedworld import gateway_proxy, step_snapshot

from meshgate.telemetry.als import serve_loggers
from meshgate.translate import translate
from meshgate.translate.accesslog import GRPC_LOGGERS, HTTP_GRPC_LOGGER, STDOUT_LOGGER


def _loggers(config: Any) -> list[Any]:
    """Every access logger of the config's HTTP connection managers."""
    out = []
    for listener in config.listeners:
        for chain in listener.filter_chains:
            for f in chain.filters:
                if f.typed_config.Is(hcm_pb2.HttpConnectionManager.DESCRIPTOR):
                    hcm = hcm_pb2.HttpConnectionManager()
                    f.typed_config.Unpack(hcm)
                    out.extend(hcm.access_log)
    return out


def _gateway_config() -> Any:
    snap = step_snapshot(4)
    return translate(snap, gateway_proxy(snap))


def test_stream_on_carries_the_proxys_credential() -> None:
    config = _gateway_config()
    serve_loggers(config, "x-proof", "secret", stream=True)
    grpc = [log for log in _loggers(config) if log.name == HTTP_GRPC_LOGGER]
    assert grpc
    for log in grpc:
        cfg = als_pb2.HttpGrpcAccessLogConfig()
        log.typed_config.Unpack(cfg)
        meta = cfg.common_config.grpc_service.initial_metadata
        assert [(m.key, m.value) for m in meta] == [("x-proof", "secret")]


def test_stream_off_leaves_only_the_stdout_loggers() -> None:
    config = _gateway_config()
    before = [log.name for log in _loggers(config)]
    assert HTTP_GRPC_LOGGER in before and STDOUT_LOGGER in before
    serve_loggers(config, "x-proof", "secret", stream=False)
    after = [log.name for log in _loggers(config)]
    assert after == [name for name in before if name not in GRPC_LOGGERS]
    assert STDOUT_LOGGER in after
    for listener in config.listeners:
        assert all(log.name not in GRPC_LOGGERS for log in listener.access_log)
