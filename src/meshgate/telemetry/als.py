"""The control plane's access-log service (ALS): proxies stream their entries here.

Rules of this module:
- Served on the xDS gRPC server (same Unix socket, same proxies' group), and authenticated
  as the ADS stream is: the stream's credential header must prove the node id of its first
  message. A stream without a valid one is refused (PERMISSION_DENIED) and nothing of it
  is stored. The reporting pod comes from that authenticated node id, never from the
  entries themselves.
- The handler only converts and hands entries to the sink (``Sink.offer``), which never
  blocks: when its queue is full the entry is dropped and counted.
- ``authenticate_loggers`` puts a proxy's own credential on the gRPC loggers of the config
  it is served (translate emits them without one, being pure). ``serve_loggers`` does
  that, or, with MeshConfig ``enableEnvoyAccessLogService: false``, removes them: the
  control plane, which owns the service, decides whether proxies stream to it, and the
  translation (pure, cached, compared in golden files) stays one and the same.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.extensions.access_loggers.grpc.v3 import als_pb2 as als_config
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.service.accesslog.v3 import als_pb2, als_pb2_grpc

from meshgate.telemetry import entries
from meshgate.translate.accesslog import GRPC_LOGGERS, HTTP_GRPC_LOGGER, TCP_GRPC_LOGGER
from meshgate.translate.output import ProxyConfig

log = logging.getLogger(__name__)

# (node id, credential sent) -> whether it proves that node id
Authenticate = Callable[[str, str | None], bool]
# node id -> the reporting pod, or None when no such proxy is known
Identify = Callable[[str], entries.Reporter | None]
Offer = Callable[[list[entries.Entry]], None]


class AccessLogServicer(als_pb2_grpc.AccessLogServiceServicer):  # type: ignore[misc]
    def __init__(
        self,
        authenticate: Authenticate,
        identify: Identify,
        offer: Offer,
        credential_header: str,
    ) -> None:
        self._authenticate = authenticate
        self._identify = identify
        self._offer = offer
        self._header = credential_header

    async def StreamAccessLogs(
        self,
        request_iterator: AsyncIterator[als_pb2.StreamAccessLogsMessage],
        context: grpc.aio.ServicerContext,
    ) -> als_pb2.StreamAccessLogsResponse:
        sent = {k.lower(): v for k, v in (context.invocation_metadata() or ())}
        presented = sent.get(self._header)
        reporter: entries.Reporter | None = None
        async for message in request_iterator:
            if reporter is None:
                node = message.identifier.node.id
                if not self._authenticate(node, str(presented or "") or None):
                    log.warning("ALS: stream refused: no valid credential for node %s", node)
                    await context.abort(
                        grpc.StatusCode.PERMISSION_DENIED, f"no valid proxy credential for {node!r}"
                    )
                reporter = self._identify(node)
                if reporter is None:
                    await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown proxy {node!r}")
                assert reporter is not None
            batch = [entries.from_http(e, reporter) for e in message.http_logs.log_entry]
            batch += [entries.from_tcp(e, reporter) for e in message.tcp_logs.log_entry]
            self._offer(batch)
        return als_pb2.StreamAccessLogsResponse()


def add_to_server(servicer: AccessLogServicer) -> Callable[[grpc.aio.Server], None]:
    def add(server: grpc.aio.Server) -> None:
        als_pb2_grpc.add_AccessLogServiceServicer_to_server(servicer, server)

    return add


def _with_credential(logs: Any, header: str, value: str | None) -> bool:
    """Put the credential on the gRPC loggers of ``logs``; with ``value`` None, remove
    those loggers. Whether anything changed."""
    if value is None:
        grpc_loggers = [entry for entry in logs if entry.name in GRPC_LOGGERS]
        for logger in grpc_loggers:
            logs.remove(logger)
        return bool(grpc_loggers)
    changed = False
    for logger in logs:
        if logger.name == HTTP_GRPC_LOGGER:
            config: Any = als_config.HttpGrpcAccessLogConfig()
        elif logger.name == TCP_GRPC_LOGGER:
            config = als_config.TcpGrpcAccessLogConfig()
        else:
            continue
        logger.typed_config.Unpack(config)
        service = config.common_config.grpc_service
        del service.initial_metadata[:]
        service.initial_metadata.append(base_pb2.HeaderValue(key=header, value=value))
        logger.typed_config.Pack(config, deterministic=True)
        changed = True
    return changed


def serve_loggers(config: ProxyConfig, header: str, value: str, *, stream: bool) -> None:
    """With ``stream``, ``authenticate_loggers``; without, remove every gRPC access logger
    from ``config``'s listeners (the stdout loggers stay)."""
    _each_logger_list(config, header, value if stream else None)


def authenticate_loggers(config: ProxyConfig, header: str, value: str) -> None:
    """Give every gRPC access logger in ``config``'s listeners the proxy's credential."""
    _each_logger_list(config, header, value)


def _each_logger_list(config: ProxyConfig, header: str, value: str | None) -> None:
    for listener in config.listeners:
        _with_credential(listener.access_log, header, value)
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
                if _with_credential(inner.access_log, header, value):
                    f.typed_config.Pack(inner, deterministic=True)
