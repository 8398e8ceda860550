"""Which Istio resource an Envoy object came from, read from the names and metadata the
translator gives it (never guessed from a second model of the configuration).

Rules:
- A route made from a VirtualService carries ``filter_metadata.istio.config``
  (``/apis/networking.istio.io/v1/namespaces/NS/virtual-service/NAME``).
- A cluster ``outbound|PORT|SUBSET|HOST`` names its host (the ServiceEntry or Service that
  registers it is looked up by the caller) and its DestinationRule subset.
- An RBAC policy ``ns[NS]-policy[NAME]-rule[N]`` is rule N of AuthorizationPolicy NS/NAME.
- ``block_all``/``allow_any`` routes and ``BlackHoleCluster``/``PassthroughCluster`` come from
  the outbound traffic policy (MeshConfig, or a Sidecar that overrides it).
"""

from __future__ import annotations

import re
from typing import Any

from meshgate.trace.result import Origin

_CONFIG = re.compile(r"/apis/([^/]+)/[^/]+/namespaces/([^/]+)/([^/]+)/([^/]+)$")
_POLICY = re.compile(r"^ns\[(?P<ns>[^\]]*)\]-policy\[(?P<name>[^\]]*)\]-rule\[(?P<rule>\d+)\]$")
_KINDS = {
    "virtual-service": "VirtualService",
    "destination-rule": "DestinationRule",
    "service-entry": "ServiceEntry",
    "gateway": "Gateway",
    "sidecar": "Sidecar",
}


def metadata_origin(metadata: Any) -> Origin | None:
    """The ``istio`` filter metadata's ``config`` path as an Origin."""
    if metadata is None or "istio" not in metadata.filter_metadata:
        return None
    fields = metadata.filter_metadata["istio"].fields
    if "config" not in fields:
        return None
    m = _CONFIG.search(fields["config"].string_value)
    if m is None:
        return None
    return Origin(_KINDS.get(m.group(3), m.group(3)), m.group(2), m.group(4))


def route_origin(route: Any) -> Origin | None:
    return metadata_origin(route.metadata) if route.HasField("metadata") else None


def parse_cluster(name: str) -> tuple[str, int, str, str] | None:
    """(direction, port, subset, host) of ``outbound|P|subset|host``; None otherwise."""
    parts = name.split("|")
    if len(parts) != 4 or not parts[1].isdigit():
        return None
    return parts[0], int(parts[1]), parts[2], parts[3]


def policy_origin(policy: str) -> Origin:
    m = _POLICY.match(policy)
    if m is None:
        return Origin("AuthorizationPolicy", "", policy)
    return Origin("AuthorizationPolicy", m["ns"], m["name"], f"rule {m['rule']}")
