"""Refusals made visible: every request or connection a proxy refuses is logged with why.

Rules of this module:
- The reason goes in the access log's ``istio_policy_status`` key (Envoy dynamic metadata
  ``istio.mixer:status``, null on everything that was not refused), so the JSON line keeps
  the seed's 24 keys exactly. It is words, then the source: ``REGISTRY_ONLY: no ServiceEntry
  for x.example (from default/sleep-5d8f...)``.
- HTTP: every refusal is a local reply, and every local reply meshgate refuses with carries
  its reason in the response header ``x-meshgate-refused``; Envoy's native header-to-metadata
  filter, first in every connection manager, moves it into ``istio.mixer:status`` and
  removes it, so a client sees the reply exactly as before. Nothing runs per request but
  that one header lookup (a Lua filter did this before and cost about 5% of proxy CPU).
  The header comes from
  - REGISTRY_ONLY's ``block_all`` route (``response_headers_to_add``, the sidecar's pod
    written in);
  - ``local_reply_config`` mappers: a gateway's 404 ``NR`` (no route for the host), and,
    where AuthorizationPolicies apply, one mapper per policy matching the RBAC filter's
    response code details (``denied by AuthorizationPolicy NS/NAME``), plus ALLOW's
    no-match (``no ALLOW AuthorizationPolicy matches``).
  Every route configuration strips that header from upstream responses first (its own
  level applied first), so a server out in the world cannot write into a proxy's log.
- TCP and TLS: a connection refused by a catch-all chain (REGISTRY_ONLY's BlackHoleCluster, a
  gateway's unknown SNI, a gateway TCP server no ``tcp`` route applies to) is logged by
  that chain's tcp_proxy, whose ``istio_policy_status`` is the reason written into its log
  format (the original destination and SNI filled in by Envoy). A connection closed by
  network RBAC logs Envoy's connection termination details
  (``rbac_access_denied_matched_policy[ns[NS]-policy[NAME]-rule[i]]``).
- The source is the refusing sidecar's own pod (``ns/name``), or on gateways and inbound
  sides the peer's address.
"""

from __future__ import annotations

import json
import re
from typing import Any

from envoy.config.accesslog.v3 import accesslog_pb2 as al
from envoy.config.core.v3 import base_pb2
from envoy.extensions.access_loggers.filters.cel.v3 import cel_pb2
from envoy.extensions.filters.http.header_to_metadata.v3 import header_to_metadata_pb2 as h2m
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)

from meshgate.translate.accesslog import ACCESS_LOG_FORMAT
from meshgate.translate.pb import pack

REFUSED_HEADER = "x-meshgate-refused"
STATUS_KEY = "istio_policy_status"
NO_GATEWAY_ROUTE_HTTP = (
    "no route on gateway for host %REQ(:AUTHORITY)% (from %DOWNSTREAM_REMOTE_ADDRESS%)"
)
NETWORK_RBAC = "%CONNECTION_TERMINATION_DETAILS%"

HEADER_TO_METADATA = "envoy.filters.http.header_to_metadata"
CEL_FILTER = "envoy.access_loggers.extension_filters.cel"
PEER = "%DOWNSTREAM_REMOTE_ADDRESS%"
_POLICY_ID = re.compile(r"^ns\[(?P<ns>[^\]]*)\]-policy\[(?P<name>[^\]]*)\]-rule\[\d+\]$")


def registry_only_http(source: str) -> str:
    return f"REGISTRY_ONLY: no ServiceEntry for %REQ(:AUTHORITY)% (from {source})"


def header_mover() -> Any:
    """The HTTP filter that moves a refusal's reason into the log and off the response."""
    rule = h2m.Config.Rule(
        header=REFUSED_HEADER,
        on_header_present=h2m.Config.KeyValuePair(
            metadata_namespace="istio.mixer", key="status", type=h2m.Config.STRING
        ),
        remove=True,
    )
    config = h2m.Config(response_rules=[rule])
    return hcm_pb2.HttpFilter(name=HEADER_TO_METADATA, typed_config=pack(config))


def refusal_header(reason: str) -> Any:
    """A response header option carrying ``reason`` (Envoy formatters allowed) to the filter."""
    return base_pb2.HeaderValueOption(
        header=base_pb2.HeaderValue(key=REFUSED_HEADER, value=reason),
        append_action=base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD,
    )


def _mapper(match: Any, reason: str) -> Any:
    mapper = hcm_pb2.ResponseMapper(filter=match)
    mapper.headers_to_add.append(refusal_header(reason))
    return mapper


def cel_filter(expression: str) -> Any:
    """An access-log (and local-reply mapper) filter: a CEL expression over the request."""
    cel = cel_pb2.ExpressionFilter(expression=expression)
    return al.AccessLogFilter(
        extension_filter=al.ExtensionFilter(name=CEL_FILTER, typed_config=pack(cel))
    )


def no_route_mapper() -> Any:
    """A gateway's 404 ``NR`` (no route for the host) carries its reason."""
    match = al.AccessLogFilter(response_flag_filter=al.ResponseFlagFilter(flags=["NR"]))
    return _mapper(match, NO_GATEWAY_ROUTE_HTTP)


def rbac_mappers(policy_ids: list[str]) -> list[Any]:
    """One mapper per AuthorizationPolicy among the RBAC filters' policy names (Envoy names
    the matched one in the response code details), and one for ALLOW's no-match."""
    prefix = "rbac_access_denied_matched_policy["
    policies: dict[str, str] = {}
    for pid in policy_ids:
        m = _POLICY_ID.match(pid)
        if m is not None:
            key = f"{prefix}ns[{m['ns']}]-policy[{m['name']}]-rule["
            policies[key] = f"denied by AuthorizationPolicy {m['ns']}/{m['name']} (from {PEER})"
        else:  # a fail-closed CUSTOM policy keeps its own long name
            policies[f"{prefix}{pid}]"] = f"denied by {pid} (from {PEER})"
    out = [
        _mapper(cel_filter(f"response.code_details.startsWith({json.dumps(key)})"), reason)
        for key, reason in sorted(policies.items())
    ]
    none = json.dumps(f"{prefix}none]")
    out.append(
        _mapper(
            cel_filter(f"response.code_details == {none}"),
            f"no ALLOW AuthorizationPolicy matches (from {PEER})",
        )
    )
    return out


def tcp_log_fields(reason: str) -> dict[str, str]:
    """The access-log format of a chain that refuses every connection it gets."""
    return {**ACCESS_LOG_FORMAT, STATUS_KEY: reason}


def registry_only_tcp(source: str) -> str:
    return (
        "REGISTRY_ONLY: no ServiceEntry for %DOWNSTREAM_LOCAL_ADDRESS%"
        f" (SNI %REQUESTED_SERVER_NAME%) (from {source})"
    )


NO_GATEWAY_ROUTE_TCP = (
    "no route on gateway for SNI %REQUESTED_SERVER_NAME% (from %DOWNSTREAM_REMOTE_ADDRESS%)"
)


def no_gateway_route_tcp_port(port: int) -> str:
    """A plain TCP gateway server with no ``tcp`` route for it."""
    return f"no tcp route on gateway for port {port} (from %DOWNSTREAM_REMOTE_ADDRESS%)"
