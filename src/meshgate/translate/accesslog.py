"""The access-log contract: the seed's 24 JSON keys (or the mesh's own format), written by
Envoy's stdout logger, and the same entries streamed to the control plane.

Rules of this module:
- ``ACCESS_LOG_FORMAT`` is the single definition of the default log line (key -> Envoy
  command operator) and of the stream's entries. Telemetry parses by key, never by order.
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
- The mesh's ``accessLogEncoding`` and ``accessLogFormat`` (Istio's MeshConfig fields) are
  applied once, at the end of ``translate()``, by ``apply_mesh_format``: every log site is
  built with the JSON line above (so modules that read a chain's reason from it, such as
  ``filters.authorize``, see one shape), then each stdout logger's format is rewritten.
  No other module reads the mesh's log settings; a new log site needs nothing more.
  As Istio (``pilot/pkg/model/telemetry_logging.go``): ``TEXT`` writes ``accessLogFormat``
  (a newline added if missing) or Istio's default text line (``ISTIO_TEXT_FORMAT``);
  ``JSON`` with an ``accessLogFormat`` writes that JSON object (key -> operators).
  Unset encoding and format keep the seed's 24 keys byte for byte (meshgate's default: the
  config is not even touched). A JSON format that does not parse as an object is refused
  when applied (validation MG1095); should one reach here, the default line is kept, as
  Istio does after logging an error.
- Under any other format a refusal's reason stays reachable: the gRPC entry carries it as
  before (``meshgate logs``, the access-log API, the console), Istio's text line has
  Envoy's own ``%RESPONSE_CODE_DETAILS%`` and ``%CONNECTION_TERMINATION_DETAILS%``, and a
  custom format that names ``%DYNAMIC_METADATA(istio.mixer:status)%`` shows it in place
  (HTTP refusals fill that metadata; a refusing TCP chain's reason is written there).
"""

from __future__ import annotations

import json
from typing import Any, Literal

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.config.core.v3 import (
    base_pb2,
    config_source_pb2,
    extension_pb2,
    grpc_service_pb2,
    substitution_format_string_pb2,
)
from envoy.extensions.access_loggers.grpc.v3 import als_pb2
from envoy.extensions.access_loggers.stream.v3 import stream_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.extensions.formatter.req_without_query.v3 import req_without_query_pb2
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


# Istio's default text line (its EnvoyTextLogFormat, Istio 1.9 onwards): Envoy's default
# plus the response code details and connection termination details that say why a
# request was refused, and the upstream and downstream addresses.
ISTIO_TEXT_FORMAT = (
    '[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" '
    "%RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% "
    '"%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% '
    '%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" '
    '"%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER_RAW% '
    "%UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% "
    "%REQUESTED_SERVER_NAME% %ROUTE_NAME%\n"
)
# %REQ_WITHOUT_QUERY(...)% is an extension formatter: Envoy needs it named in the format.
REQ_WITHOUT_QUERY = "envoy.formatter.req_without_query"


def _json_object(text: str) -> dict[str, Any] | None:
    """``text`` read as Istio reads a JSON ``accessLogFormat`` (into a Struct), or None."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def mesh_format(
    encoding: str, fmt: str
) -> substitution_format_string_pb2.SubstitutionFormatString | None:
    """The stdout format the mesh's ``accessLogEncoding``/``accessLogFormat`` ask for;
    None for meshgate's default (the seed's 24-key JSON line, left as built)."""
    out = substitution_format_string_pb2.SubstitutionFormatString()
    if encoding == "TEXT":
        # Istio: "NOTE: Istio will insert a newline ('\n') on all formats (if missing)."
        text = ISTIO_TEXT_FORMAT if not fmt else fmt if fmt.endswith("\n") else fmt + "\n"
        out.text_format_source.CopyFrom(base_pb2.DataSource(inline_string=text))
    elif fmt and (fields := _json_object(fmt)) is not None:
        out.json_format.update(fields)
    else:
        return None
    if "%REQ_WITHOUT_QUERY(" in fmt:
        out.formatters.append(
            extension_pb2.TypedExtensionConfig(
                name=REQ_WITHOUT_QUERY, typed_config=pack(req_without_query_pb2.ReqWithoutQuery())
            )
        )
    return out


def _chain_reason(logger: stream_pb2.StdoutAccessLog) -> str | None:
    """A refusing chain's reason, as written into its JSON line (None: not one)."""
    value = logger.log_format.json_format.fields.get(REASON_KEY)
    if value is None or value.string_value == ACCESS_LOG_FORMAT[REASON_KEY]:
        return None
    return str(value.string_value)


def _with_reason(
    fmt: substitution_format_string_pb2.SubstitutionFormatString, reason: str
) -> substitution_format_string_pb2.SubstitutionFormatString:
    """``fmt`` with the reason operator replaced by a refusing chain's words."""
    operator = ACCESS_LOG_FORMAT[REASON_KEY]
    out = substitution_format_string_pb2.SubstitutionFormatString()
    out.CopyFrom(fmt)
    if out.HasField("text_format_source"):
        text = out.text_format_source.inline_string
        out.text_format_source.inline_string = text.replace(operator, reason)
    else:
        _replace_in_struct(out.json_format, operator, reason)
    return out


def _replace_in_struct(fields: struct_pb2.Struct, operator: str, reason: str) -> None:
    for key, value in fields.fields.items():
        if value.HasField("struct_value"):
            _replace_in_struct(value.struct_value, operator, reason)
        elif value.string_value:
            fields.fields[key].string_value = value.string_value.replace(operator, reason)


def _rewrite(logs: Any, fmt: substitution_format_string_pb2.SubstitutionFormatString) -> bool:
    changed = False
    for log in logs:
        if log.name != STDOUT_LOGGER:
            continue
        logger = stream_pb2.StdoutAccessLog()
        log.typed_config.Unpack(logger)
        reason = _chain_reason(logger)
        logger.log_format.CopyFrom(fmt if reason is None else _with_reason(fmt, reason))
        log.typed_config.CopyFrom(pack(logger))
        changed = True
    return changed


def apply_mesh_format(listeners: list[Any], encoding: str, fmt: str) -> None:
    """Give every stdout logger in ``listeners`` (in place) the mesh's log format: the
    listener's own logs and those of each HTTP connection manager and tcp_proxy."""
    wanted = mesh_format(encoding, fmt)
    if wanted is None:
        return
    for listener in listeners:
        _rewrite(listener.access_log, wanted)
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
                if _rewrite(inner.access_log, wanted):
                    f.typed_config.CopyFrom(pack(inner))
