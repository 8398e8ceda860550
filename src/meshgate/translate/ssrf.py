"""The gateway's words for what its SSRF guard and its mTLS handshake refuse.

Rules:
- A connection the SSRF guard (``runtime.ssrfguard``) refuses fails in the proxy with a
  reject type nothing else produces (``REFUSED_ERRORS``), and Envoy answers 503 ``UF``.
  ``refusal_mappers`` turn that local reply into the refusal contract: response header
  ``x-meshgate-refused: SSRF guard: upstream <ip:port> is <class>``, the class chosen by
  the upstream address against ``model.ssrf.GUARDED`` (the same table the rules come
  from), so the log says which address and why. The refusal logger
  (``translate.refusals``) moves that header into ``istio.mixer:status`` (the log's
  ``istio_policy_status``) and strips it.
- A TLS handshake a gateway listener refuses (an ``ISTIO_MUTUAL`` server's peer without a
  mesh certificate, a certificate the mesh did not sign) reaches no HTTP filter: it is
  logged by the listener itself (``handshake_access_logs``), only when the handshake
  failed, in the same 24-key JSON line with the reason in ``istio_policy_status``.
- ``guard_gateway`` applies both to a gateway's listeners in place, once (idempotent).
"""

from __future__ import annotations

import json
from typing import Any

from envoy.config.accesslog.v3 import accesslog_pb2 as al
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)

from meshgate.model import ssrf
from meshgate.translate.accesslog import ACCESS_LOG_FORMAT, access_log_config
from meshgate.translate.filters import HCM
from meshgate.translate.pb import pack
from meshgate.translate.refusals import PEER, cel_filter, refusal_header

STATUS_KEY = "istio_policy_status"
NO_CLIENT_CERT = "PEER_DID_NOT_RETURN_A_CERTIFICATE"


def _any_of(attribute: str, method: str, values: list[str]) -> str:
    return "(" + " || ".join(f"{attribute}.{method}({json.dumps(v)})" for v in values) + ")"


def refused_by_guard() -> str:
    """CEL: the upstream connect failed the way only the SSRF guard makes it fail."""
    return _any_of("upstream.transport_failure_reason", "endsWith", list(ssrf.REFUSED_ERRORS))


def _mapper(condition: str, what: str) -> hcm_pb2.ResponseMapper:
    flags = al.AccessLogFilter(response_flag_filter=al.ResponseFlagFilter(flags=["UF"]))
    value = f"SSRF guard: upstream %UPSTREAM_HOST% is {what} (from {PEER})"
    return hcm_pb2.ResponseMapper(
        filter=al.AccessLogFilter(and_filter=al.AndFilter(filters=[flags, cel_filter(condition)])),
        headers_to_add=[refusal_header(value)],
    )


def refusal_mappers() -> list[hcm_pb2.ResponseMapper]:
    """Local-reply mappers naming the SSRF guard's refusals (first match wins)."""
    guard = refused_by_guard()
    out = []
    for r in ssrf.GUARDED:
        prefixes = _any_of("upstream.address", "startsWith", ssrf.host_prefixes(r.cidr))
        out.append(_mapper(f"{guard} && {prefixes}", r.what))
    out.append(_mapper(guard, ssrf.GENERIC))
    return out


def handshake_access_logs() -> list[al.AccessLog]:
    """Listener access logs for refused TLS handshakes (the seed's 24 keys)."""
    failure = "connection.transport_failure_reason"
    cases = [
        (
            f"{failure}.contains({json.dumps(NO_CLIENT_CERT)})",
            "mTLS required: the peer presented no client certificate (no mesh identity)",
        ),
        (
            f"{failure} != '' && !{failure}.contains({json.dumps(NO_CLIENT_CERT)})",
            "TLS handshake refused: %DOWNSTREAM_TRANSPORT_FAILURE_REASON%",
        ),
    ]
    out = []
    for condition, reason in cases:
        for log in access_log_config({**ACCESS_LOG_FORMAT, STATUS_KEY: reason}, grpc="tcp"):
            log.filter.CopyFrom(cel_filter(condition))
            out.append(log)
    return out


def _guard_hcm(f: Any) -> None:
    hcm = hcm_pb2.HttpConnectionManager()
    if not f.typed_config.Unpack(hcm):
        return
    if any(
        h.header.value.startswith("SSRF guard:")
        for m in hcm.local_reply_config.mappers
        for h in m.headers_to_add
    ):
        return
    hcm.local_reply_config.mappers.extend(refusal_mappers())
    f.typed_config.CopyFrom(pack(hcm))


def guard_gateway(listeners: list[Any]) -> None:
    """Give a gateway's listeners the refusal words above (in place, idempotent)."""
    for listener in listeners:
        tls = False
        for chain in listener.filter_chains:
            tls = tls or chain.HasField("transport_socket")
            for f in chain.filters:
                if f.name == HCM:
                    _guard_hcm(f)
        if tls and not listener.access_log:
            listener.access_log.extend(handshake_access_logs())
