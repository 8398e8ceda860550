"""The access-log contract: the seed's 24 JSON keys, written by Envoy's stdout logger.

Rules of this module:
- ``ACCESS_LOG_FORMAT`` is the single definition of the log line (key -> Envoy command
  operator). Telemetry parses by key, never by order.
- Envoy's typed ``json_format`` renders whole-value operators such as ``%RESPONSE_CODE%``
  and ``%DURATION%`` as JSON numbers and unavailable values as ``null`` (the seed's line).
- The stdout logger is used, not a file path: ``/dev/stdout`` fails for uid 1337 when stdout
  is a root-owned pipe (DESIGN §7). It stays exactly as it is: it is ``kubectl logs``' twin.
- Beside it, every log site also streams to the control plane's access-log service (ALS,
  ``envoy.service.accesslog.v3``) over the ``xds-grpc`` bootstrap cluster: ``http_grpc``
  in HTTP connection managers, ``tcp_grpc`` elsewhere (tcp_proxy, listener logs). The gRPC
  entry is structured, not formatted, so what the JSON line adds in its format is sent as
  data: the request id, the trace id and upstream service time as extra headers, and a
  reason written into the format (a refusing chain's ``istio_policy_status``) as the custom
  tag of that name, operators unexpanded (telemetry expands them from the entry).
- Entries are sent as soon as they are logged (buffer size 0): Envoy's gRPC logger keeps
  its buffer in memory only, and a proxy killed with SIGKILL loses it. The stream carries
  no credential here (translate is pure): the control plane adds the proxy's own header
  when it serves the config (``meshgate.telemetry.als.authenticate_loggers``).
"""

from __future__ import annotations

from typing import Any, Literal

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.config.core.v3 import config_source_pb2, grpc_service_pb2, substitution_format_string_pb2
from envoy.extensions.access_loggers.grpc.v3 import als_pb2
from envoy.extensions.access_loggers.stream.v3 import stream_pb2
from envoy.type.tracing.v3 import custom_tag_pb2
from google.protobuf import duration_pb2, struct_pb2, wrappers_pb2

from meshgate.translate.pb import pack

STDOUT_LOGGER = "envoy.access_loggers.stdout"
HTTP_GRPC_LOGGER = "envoy.access_loggers.http_grpc"
TCP_GRPC_LOGGER = "envoy.access_loggers.tcp_grpc"
GRPC_LOGGERS = (HTTP_GRPC_LOGGER, TCP_GRPC_LOGGER)
# The bootstrap's cluster to the control plane (meshgate.xds.bootstrap.XDS_CLUSTER).
ALS_CLUSTER = "xds-grpc"
ALS_LOG_NAME = "meshgate"
# What the JSON line takes from headers that the gRPC entry does not carry by itself.
ALS_REQUEST_HEADERS = ("x-b3-traceid",)
ALS_RESPONSE_HEADERS = ("x-envoy-upstream-service-time",)
REASON_KEY = "istio_policy_status"

GrpcKind = Literal["http", "tcp"]

ACCESS_LOG_FORMAT: dict[str, str] = {
    "trace_id": "%REQ(X-B3-TRACEID)%",
    "upstream_host": "%UPSTREAM_HOST%",
    "downstream_remote_address": "%DOWNSTREAM_REMOTE_ADDRESS%",
    "requested_server_name": "%REQUESTED_SERVER_NAME%",
    "response_code": "%RESPONSE_CODE%",
    "upstream_service_time": "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%",
    "user_agent": "%REQ(USER-AGENT)%",
    "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
    "route_name": "%ROUTE_NAME%",
    "bytes_sent": "%BYTES_SENT%",
    "response_flags": "%RESPONSE_FLAGS%",
    "upstream_local_address": "%UPSTREAM_LOCAL_ADDRESS%",
    "duration": "%DURATION%",
    "upstream_cluster": "%UPSTREAM_CLUSTER_RAW%",
    "upstream_transport_failure_reason": "%UPSTREAM_TRANSPORT_FAILURE_REASON%",
    "authority": "%REQ(:AUTHORITY)%",
    "request_id": "%REQ(X-REQUEST-ID)%",
    "protocol": "%PROTOCOL%",
    "bytes_received": "%BYTES_RECEIVED%",
    "method": "%REQ(:METHOD)%",
    "downstream_local_address": "%DOWNSTREAM_LOCAL_ADDRESS%",
    "start_time": "%START_TIME(%Y-%m-%dT%H:%M:%E3SZ)%",
    "istio_policy_status": "%DYNAMIC_METADATA(istio.mixer:status)%",
    "x_forwarded_for": "%REQ(X-FORWARDED-FOR)%",
}

ACCESS_LOG_FIELDS: tuple[str, ...] = tuple(ACCESS_LOG_FORMAT)


def access_log_config(
    fields: dict[str, str] | None = None, *, grpc: GrpcKind | None = None
) -> list[Any]:
    """The ``access_log`` list for an HTTP connection manager or tcp_proxy: the stdout
    JSON logger, then with ``grpc`` the stream to the control plane (``grpc_access_log``)."""
    fmt = struct_pb2.Struct()
    fmt.update(fields if fields is not None else ACCESS_LOG_FORMAT)
    logger = stream_pb2.StdoutAccessLog(
        log_format=substitution_format_string_pb2.SubstitutionFormatString(json_format=fmt)
    )
    logs = [accesslog_pb2.AccessLog(name=STDOUT_LOGGER, typed_config=pack(logger))]
    if grpc is not None:
        logs.append(grpc_access_log(grpc, fields))
    return logs


def grpc_access_log(kind: GrpcKind, fields: dict[str, str] | None = None) -> Any:
    """The gRPC access logger (ALS) beside a stdout logger of format ``fields``."""
    common = als_pb2.CommonGrpcAccessLogConfig(
        log_name=ALS_LOG_NAME,
        grpc_service=grpc_service_pb2.GrpcService(
            envoy_grpc=grpc_service_pb2.GrpcService.EnvoyGrpc(cluster_name=ALS_CLUSTER)
        ),
        transport_api_version=config_source_pb2.V3,
        buffer_size_bytes=wrappers_pb2.UInt32Value(value=0),
        buffer_flush_interval=duration_pb2.Duration(nanos=100_000_000),
    )
    reason = (fields or ACCESS_LOG_FORMAT).get(REASON_KEY, ACCESS_LOG_FORMAT[REASON_KEY])
    if reason != ACCESS_LOG_FORMAT[REASON_KEY]:
        common.custom_tags.append(
            custom_tag_pb2.CustomTag(
                tag=REASON_KEY, literal=custom_tag_pb2.CustomTag.Literal(value=reason)
            )
        )
    if kind == "tcp":
        return accesslog_pb2.AccessLog(
            name=TCP_GRPC_LOGGER,
            typed_config=pack(als_pb2.TcpGrpcAccessLogConfig(common_config=common)),
        )
    config = als_pb2.HttpGrpcAccessLogConfig(
        common_config=common,
        additional_request_headers_to_log=list(ALS_REQUEST_HEADERS),
        additional_response_headers_to_log=list(ALS_RESPONSE_HEADERS),
    )
    return accesslog_pb2.AccessLog(name=HTTP_GRPC_LOGGER, typed_config=pack(config))
