"""Refusals made visible: every request or connection a proxy refuses is logged with why.

Rules of this module:
- The reason goes in the access log's ``istio_policy_status`` key (Envoy dynamic metadata
  ``istio.mixer:status``, null on everything that was not refused), so the JSON line keeps
  the seed's 24 keys exactly. It is words, then the source: ``REGISTRY_ONLY: no ServiceEntry
  for x.example (from default/sleep-5d8f...)``.
- HTTP: a Lua filter, first in every connection manager, writes the reason on the response
  path. It reads it from
  - the response header ``x-meshgate-refused``, which only meshgate puts on local replies
    (REGISTRY_ONLY's ``block_all`` route, a gateway's ``local_reply_config`` for a host no
    route serves, i.e. 404 ``NR``) and which the filter removes, so a client sees the reply
    exactly as before; every route configuration strips that header from upstream
    responses first, so a server out in the world cannot write into a proxy's log;
  - the RBAC filter's dynamic metadata (``enforced_engine_result: denied``): ``denied by
    AuthorizationPolicy NS/NAME``, or ``no ALLOW AuthorizationPolicy matches``.
- TCP and TLS: a connection refused by a catch-all chain (REGISTRY_ONLY's BlackHoleCluster, a
  gateway's unknown SNI) is logged by that chain's tcp_proxy, whose ``istio_policy_status``
  is the reason written into its log format (the original destination and SNI filled in by
  Envoy). A connection closed by network RBAC logs Envoy's connection termination details
  (``rbac_access_denied_matched_policy[ns[NS]-policy[NAME]-rule[i]]``).
- The source is the refusing sidecar's own pod (``ns/name``), or on gateways and inbound
  sides the peer: its SPIFFE identity when it came over mTLS, else its address.
"""

from __future__ import annotations

from typing import Any

from envoy.config.core.v3 import base_pb2
from envoy.extensions.filters.http.lua.v3 import lua_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)

from meshgate.translate.accesslog import ACCESS_LOG_FORMAT
from meshgate.translate.pb import pack

LUA = "envoy.filters.http.lua"
REFUSED_HEADER = "x-meshgate-refused"
STATUS_KEY = "istio_policy_status"
REGISTRY_ONLY_HTTP = "REGISTRY_ONLY: no ServiceEntry for %REQ(:AUTHORITY)%"
NO_GATEWAY_ROUTE_HTTP = "no route on gateway for host %REQ(:AUTHORITY)%"
NETWORK_RBAC = "%CONNECTION_TERMINATION_DETAILS%"

_SCRIPT = """
local SOURCE = {source}
local function source(h)
  if SOURCE ~= nil then return SOURCE end
  local ssl = h:connection():ssl()
  if ssl ~= nil and ssl:peerCertificatePresented() then
    local uris = ssl:uriSanPeerCertificate()
    if uris ~= nil and uris[1] ~= nil then return uris[1] end
  end
  return h:streamInfo():downstreamRemoteAddress()
end
local function policy(id)
  if id == nil or id == "none" then return "no ALLOW AuthorizationPolicy matches" end
  local ns, name = string.match(id, "^ns%[(.-)%]%-policy%[(.-)%]%-rule%[")
  if ns ~= nil then return "denied by AuthorizationPolicy " .. ns .. "/" .. name end
  return "denied by " .. id
end
function envoy_on_response(h)
  local headers = h:headers()
  local reason = headers:get("{header}")
  if reason ~= nil then
    headers:remove("{header}")
  else
    local rbac = h:streamInfo():dynamicMetadata():get("envoy.filters.http.rbac")
    if rbac == nil or rbac["enforced_engine_result"] ~= "denied" then return end
    reason = policy(rbac["enforced_effective_policy_id"])
  end
  h:streamInfo():dynamicMetadata():set("istio.mixer", "status",
    reason .. " (from " .. source(h) .. ")")
end
"""


def _lua_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def lua_filter(source: str | None) -> Any:
    """The HTTP filter that logs refusals; ``source`` names the refusing sidecar's pod, None
    where the peer is the source (gateways, inbound sides)."""
    code = _SCRIPT.replace("{source}", "nil" if source is None else _lua_string(source))
    code = code.replace("{header}", REFUSED_HEADER)
    config = lua_pb2.Lua(default_source_code={"inline_string": code})
    return hcm_pb2.HttpFilter(name=LUA, typed_config=pack(config))


def refusal_header(reason: str) -> Any:
    """A response header option carrying ``reason`` (Envoy formatters allowed) to the filter."""
    return base_pb2.HeaderValueOption(
        header=base_pb2.HeaderValue(key=REFUSED_HEADER, value=reason),
        append_action=base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD,
    )


def no_route_mapper() -> Any:
    """A gateway's 404 ``NR`` (no route for the host) carries its reason to the filter."""
    config = hcm_pb2.LocalReplyConfig()
    mapper = config.mappers.add()
    mapper.filter.response_flag_filter.flags.append("NR")
    mapper.headers_to_add.append(refusal_header(NO_GATEWAY_ROUTE_HTTP))
    return config


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
