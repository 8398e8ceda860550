"""The access-log contract: the seed's 24 JSON keys, written by Envoy's stdout logger.

Rules of this module:
- ``ACCESS_LOG_FORMAT`` is the single definition of the log line (key -> Envoy command
  operator). Telemetry parses by key, never by order.
- Envoy's typed ``json_format`` renders whole-value operators such as ``%RESPONSE_CODE%``
  and ``%DURATION%`` as JSON numbers and unavailable values as ``null`` (the seed's line).
- The stdout logger is used, not a file path: ``/dev/stdout`` fails for uid 1337 when stdout
  is a root-owned pipe (DESIGN §7).
"""

from __future__ import annotations

from typing import Any

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.config.core.v3 import substitution_format_string_pb2
from envoy.extensions.access_loggers.stream.v3 import stream_pb2
from google.protobuf import struct_pb2

from meshgate.translate.pb import pack

STDOUT_LOGGER = "envoy.access_loggers.stdout"

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


def access_log_config(fields: dict[str, str] | None = None) -> list[Any]:
    """The ``access_log`` list for an HTTP connection manager or tcp_proxy."""
    fmt = struct_pb2.Struct()
    fmt.update(fields if fields is not None else ACCESS_LOG_FORMAT)
    logger = stream_pb2.StdoutAccessLog(
        log_format=substitution_format_string_pb2.SubstitutionFormatString(json_format=fmt)
    )
    return [accesslog_pb2.AccessLog(name=STDOUT_LOGGER, typed_config=pack(logger))]
