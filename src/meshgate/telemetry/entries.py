"""One access-log entry of the mesh-wide log: the seed's 24 keys, plus who reported it.

Rules of this module:
- An entry is the JSON line's 24 keys (``translate.accesslog.ACCESS_LOG_FIELDS``) plus
  ``pod``, ``namespace``, ``reporter`` (``gateway`` or ``sidecar``) and ``reason`` (the words
  of ``istio_policy_status``, null when nothing was refused). Sans-I/O: no store, no clock.
- Two sources make entries: a proxy's own JSON line (its log file, authoritative) and the
  gRPC entry it streamed (ALS), converted here field by field to the same JSON values.
  The reporting pod is always given by the caller (the authenticated stream, or the file's
  owner), never read from the entry.
- Both sources give one request the same ``key``, so the store keeps it once: the pod, the
  start time (milliseconds, as the line prints it), the downstream addresses and the
  request id (null for TCP, where the connection's addresses and start make it unique).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from envoy.config.core.v3 import address_pb2
from envoy.data.accesslog.v3 import accesslog_pb2 as al

from meshgate.translate.accesslog import (
    ACCESS_LOG_FIELDS,
    ALS_REQUEST_HEADERS,
    ALS_RESPONSE_HEADERS,
    REASON_KEY,
)

Fields = dict[str, Any]
REPORTERS = ("gateway", "sidecar")

# Envoy's short names of the response flags (source/common/stream_info/utility.h), in
# Envoy's order, for the gRPC entry's booleans.
_FLAGS: tuple[tuple[str, str], ...] = (
    ("failed_local_healthcheck", "LH"),
    ("no_healthy_upstream", "UH"),
    ("upstream_request_timeout", "UT"),
    ("local_reset", "LR"),
    ("upstream_remote_reset", "UR"),
    ("upstream_connection_failure", "UF"),
    ("upstream_connection_termination", "UC"),
    ("upstream_overflow", "UO"),
    ("no_route_found", "NR"),
    ("delay_injected", "DI"),
    ("fault_injected", "FI"),
    ("rate_limited", "RL"),
    ("rate_limit_service_error", "RLSE"),
    ("downstream_connection_termination", "DC"),
    ("upstream_retry_limit_exceeded", "URX"),
    ("stream_idle_timeout", "SI"),
    ("invalid_envoy_request_headers", "IH"),
    ("downstream_protocol_error", "DPE"),
    ("upstream_max_stream_duration_reached", "UMSDR"),
    ("response_from_cache_filter", "RFCF"),
    ("no_filter_config_found", "NFCF"),
    ("duration_timeout", "DT"),
    ("upstream_protocol_error", "UPE"),
    ("no_cluster_found", "NC"),
    ("overload_manager", "OM"),
    ("dns_resolution_failure", "DF"),
    ("downstream_remote_reset", "DR"),
)
_PROTOCOLS = {1: "HTTP/1.0", 2: "HTTP/1.1", 3: "HTTP/2", 4: "HTTP/3"}
_METHODS = {
    1: "GET", 2: "HEAD", 3: "POST", 4: "PUT", 5: "DELETE", 6: "CONNECT", 7: "OPTIONS",
    8: "TRACE", 9: "PATCH",
}  # fmt: skip
_OPERATOR = re.compile(r"%([A-Z_]+)%")


@dataclass(frozen=True)
class Reporter:
    """Who logged an entry: from the authenticated stream or the log file's pod."""

    pod: str
    namespace: str
    kind: str  # gateway | sidecar
    workload: str  # the Deployment / IstioGateway name (the pod name without its hashes)


@dataclass(frozen=True)
class Entry:
    reporter: Reporter
    fields: Fields  # the 24 keys
    source: str  # "file" | "als"

    @property
    def key(self) -> str:
        f = self.fields
        parts = [
            self.reporter.namespace,
            self.reporter.pod,
            str(f.get("start_time")),
            str(f.get("downstream_remote_address")),
            str(f.get("downstream_local_address")),
            str(f.get("request_id")),
        ]
        return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:32]

    @property
    def start_ms(self) -> int:
        return start_ms(self.fields.get("start_time"))

    @property
    def host(self) -> str:
        """The external host the entry is about: the authority without its port, else SNI."""
        authority = self.fields.get("authority") or ""
        if authority:
            return str(authority).rsplit(":", 1)[0] if "]" not in authority else str(authority)
        return str(self.fields.get("requested_server_name") or "")

    def to_json(self) -> Fields:
        out = {k: self.fields.get(k) for k in ACCESS_LOG_FIELDS}
        out.update(
            pod=self.reporter.pod,
            namespace=self.reporter.namespace,
            reporter=self.reporter.kind,
            reason=self.fields.get(REASON_KEY),
        )
        return out


def start_ms(value: Any) -> int:
    if not isinstance(value, str) or not value:
        return 0
    try:
        when = datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        return 0
    return int(when.timestamp() * 1000)


def workload_of(pod: str, labels: dict[str, str]) -> str:
    """A Deployment's pod is NAME-<template hash>-<suffix>; other pods are their own."""
    thash = labels.get("pod-template-hash")
    if thash and f"-{thash}-" in pod:
        return pod.rsplit(f"-{thash}-", 1)[0]
    return pod


def from_line(line: str | bytes, reporter: Reporter) -> Entry | None:
    """A proxy's own JSON line (only lines with the 24 keys; Envoy's other output is not)."""
    import json

    try:
        data = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict) or not all(k in data for k in ACCESS_LOG_FIELDS):
        return None
    return Entry(reporter, {k: data[k] for k in ACCESS_LOG_FIELDS}, "file")


def _addr(a: address_pb2.Address) -> str | None:
    if a.HasField("socket_address"):
        sa = a.socket_address
        host = f"[{sa.address}]" if ":" in sa.address else sa.address
        return f"{host}:{sa.port_value}"
    if a.HasField("pipe"):
        return a.pipe.path or None
    return None


def _ms(d: Any) -> int:
    return int(d.seconds * 1000 + d.nanos // 1_000_000)


def _start(common: al.AccessLogCommon) -> str | None:
    if not common.HasField("start_time"):
        return None
    ts = common.start_time
    when = datetime.fromtimestamp(ts.seconds, UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S") + f".{ts.nanos // 1_000_000:03d}Z"


def response_flags(flags: al.ResponseFlags) -> str:
    names = [short for attr, short in _FLAGS if getattr(flags, attr, False) is True]
    if flags.HasField("unauthorized_details"):
        names.append("UAEX")
    return ",".join(dict.fromkeys(names)) or "-"


def _reason(common: al.AccessLogCommon, fields: Fields) -> str | None:
    meta = common.metadata.filter_metadata.get("istio.mixer")
    if meta is not None and "status" in meta.fields:
        return str(meta.fields["status"].string_value)
    template = common.custom_tags.get(REASON_KEY)
    if not template:
        return None
    values = {
        "DOWNSTREAM_LOCAL_ADDRESS": fields.get("downstream_local_address"),
        "DOWNSTREAM_REMOTE_ADDRESS": fields.get("downstream_remote_address"),
        "REQUESTED_SERVER_NAME": fields.get("requested_server_name"),
        "CONNECTION_TERMINATION_DETAILS": common.connection_termination_details or None,
        "DOWNSTREAM_TRANSPORT_FAILURE_REASON": common.downstream_transport_failure_reason or None,
    }

    def sub(m: re.Match[str]) -> str:
        value = values.get(m.group(1))
        return "-" if value is None else str(value)

    text = _OPERATOR.sub(sub, template)
    # Envoy leaves a line's whole-value operator unset (null) when it has no value.
    return None if text == "-" else text


def _common(common: al.AccessLogCommon) -> Fields:
    return {
        "upstream_host": _addr(common.upstream_remote_address),
        "downstream_remote_address": _addr(common.downstream_remote_address),
        "requested_server_name": common.tls_properties.tls_sni_hostname or None,
        "route_name": common.route_name or None,
        "response_flags": response_flags(common.response_flags),
        "upstream_local_address": _addr(common.upstream_local_address),
        "duration": _ms(common.duration)
        if common.HasField("duration")
        else _ms(common.time_to_last_downstream_tx_byte),
        "upstream_cluster": common.upstream_cluster or None,
        "upstream_transport_failure_reason": common.upstream_transport_failure_reason or None,
        "downstream_local_address": _addr(common.downstream_local_address),
        "start_time": _start(common),
    }


def from_http(entry: al.HTTPAccessLogEntry, reporter: Reporter) -> Entry:
    req, resp = entry.request, entry.response
    fields: Fields = dict.fromkeys(ACCESS_LOG_FIELDS)
    fields.update(_common(entry.common_properties))
    fields.update(
        trace_id=req.request_headers.get(ALS_REQUEST_HEADERS[0]) or None,
        response_code=resp.response_code.value,
        upstream_service_time=resp.response_headers.get(ALS_RESPONSE_HEADERS[0]) or None,
        user_agent=req.user_agent or None,
        path=req.original_path or req.path or None,
        bytes_sent=resp.response_body_bytes,
        authority=req.authority or None,
        request_id=req.request_id or None,
        protocol=_PROTOCOLS.get(entry.protocol_version),
        bytes_received=req.request_body_bytes,
        method=_METHODS.get(req.request_method),
        x_forwarded_for=req.forwarded_for or None,
    )
    fields[REASON_KEY] = _reason(entry.common_properties, fields)
    return Entry(reporter, fields, "als")


def from_tcp(entry: al.TCPAccessLogEntry, reporter: Reporter) -> Entry:
    fields: Fields = dict.fromkeys(ACCESS_LOG_FIELDS)
    fields.update(_common(entry.common_properties))
    fields.update(
        response_code=0,
        bytes_sent=entry.connection_properties.sent_bytes,
        bytes_received=entry.connection_properties.received_bytes,
    )
    fields[REASON_KEY] = _reason(entry.common_properties, fields)
    return Entry(reporter, fields, "als")
