"""The state-of-the-world ADS protocol for one proxy stream, without I/O.

Rules:
- Input is a DiscoveryRequest or a new ProxyConfig; output is the list of
  DiscoveryResponses to send, in order. No clock, no sockets, no logging of secrets.
- A request whose nonce is not the last one sent for its type is stale and ignored
  (the xDS protocol: the proxy will answer the newer response).
- ACK: nonce matches, no error_detail. NACK: nonce matches, error_detail set. A NACK is
  recorded with its message; the rejected version is not sent again until the content
  changes (the proxy keeps its last good config meanwhile). A type is SYNCED only when
  the proxy acknowledged the last response sent (its nonce), not merely some response
  that happened to carry the same version.
- A request carrying the last nonce is answered, although it looks like an ACK, when
  its resource names differ from the previous request's, when its version differs from
  the version sent, or when that nonce was already answered: in SotW the proxy sends a
  second request with the same nonce only because a new watch wants the resources (a
  re-warming cluster asks for its ClusterLoadAssignment again).
- LDS/CDS are wildcard; RDS/EDS/SDS carry the names the proxy asked for.
- A request without a nonce opens (or reopens) a subscription and is always answered
  when a config is known, whatever version the proxy says it has: resending the same
  version after a control-plane restart is harmless and keeps the logic simple.
- Pushes send only the types whose rendered content changed, in PUSH_ORDER, with one
  exception: Envoy re-warms every added or modified EDS cluster and keeps it (and its
  CDS ACK) waiting for a ClusterLoadAssignment, up to its 15 s initial fetch timeout. So
  a CDS response that changes a cluster the proxy already fetches endpoints for is
  followed by an EDS response, even if no endpoint changed (istiod does the same).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from envoy.config.core.v3.base_pb2 import ControlPlane
from envoy.service.discovery.v3.discovery_pb2 import (
    DeltaDiscoveryRequest,
    DiscoveryRequest,
    DiscoveryResponse,
)
from google.protobuf.json_format import MessageToDict

from meshgate.translate.output import CLUSTER, ENDPOINT, ProxyConfig
from meshgate.xds.resources import (
    PUSH_ORDER,
    WILDCARD_TYPES,
    PackedConfig,
    Packer,
    Rendered,
    digests,
    select,
)
from meshgate.xds.status import TypeStatus

KNOWN_TYPES: frozenset[str] = frozenset(PUSH_ORDER)


@dataclass
class _TypeState:
    subscribed: bool = False
    names: frozenset[str] | None = None
    sent_version: str | None = None
    sent_nonce: str | None = None
    sent_count: int = 0
    sent_names: frozenset[str] = frozenset()
    # CDS only: per cluster name, a digest of the bytes last sent (what re-warms).
    sent_digests: dict[str, bytes] = field(default_factory=dict)
    answered_nonce: str | None = None  # the last sent nonce the proxy ACKed or NACKed
    acked_version: str | None = None
    acked_nonce: str | None = None
    nack_error: str | None = None
    nacked_version: str | None = None
    # The resources of the last response sent, and of the last one the proxy ACKed:
    # what it runs (`meshgate trace` reads it, never a second model of the config).
    sent_items: tuple[Any, ...] = ()
    acked_items: tuple[Any, ...] = ()


class UnknownTypeError(ValueError):
    """The proxy asked for a type this server does not serve."""


class AdsSession:
    """Protocol state of one ADS stream: subscriptions, versions, nonces, ACK/NACK."""

    mode = "sotw"

    def __init__(self, nonce_prefix: str, control_plane_id: str = "meshgate") -> None:
        self._nonce_prefix = nonce_prefix
        self._nonce_counter = 0
        self._control_plane = ControlPlane(identifier=control_plane_id)
        self._types: dict[str, _TypeState] = {url: _TypeState() for url in PUSH_ORDER}
        self._config: PackedConfig | None = None

    @property
    def has_config(self) -> bool:
        return self._config is not None

    def handle_request(self, request: DiscoveryRequest) -> list[DiscoveryResponse]:
        """Apply one request from the proxy; return what to send back."""
        type_url = request.type_url
        if type_url not in KNOWN_TYPES:
            raise UnknownTypeError(f"unsupported type_url {type_url!r}")
        state = self._types[type_url]
        names = _requested_names(type_url, request)
        nonce = request.response_nonce
        if not nonce:
            state.subscribed = True
            state.names = names
            if request.version_info and state.acked_version is None:
                # The proxy already runs this version (it reconnected after our restart).
                state.acked_version = request.version_info
            return self._send(type_url, force=True)
        if nonce != state.sent_nonce:
            return []
        repeat = state.answered_nonce == nonce
        names_changed = names != state.names
        state.answered_nonce = nonce
        state.names = names
        if request.HasField("error_detail"):
            state.nack_error = request.error_detail.message or "rejected (no message)"
            state.nacked_version = state.sent_version
            return self._send(type_url, force=True) if names_changed else []
        if repeat:
            # Asked again for a response already answered: a new watch wants the data.
            # The proxy's version says nothing new (after a NACK it is the last good one).
            if not names_changed and self._rejected(state):
                return []
            return self._send(type_url, force=True)
        state.acked_version = request.version_info
        state.acked_nonce = nonce
        state.acked_items = state.sent_items
        state.nack_error = None
        state.nacked_version = None
        if names_changed or request.version_info != state.sent_version:
            return self._send(type_url, force=True)
        return []

    def set_config(self, config: ProxyConfig | PackedConfig) -> list[DiscoveryResponse]:
        """Adopt a new config; return the responses for the types whose content changed."""
        if isinstance(config, ProxyConfig):
            config = Packer().pack_config(config)
        self._config = config
        out: list[DiscoveryResponse] = []
        for type_url in PUSH_ORDER:
            if not self._types[type_url].subscribed:
                continue
            if type_url == ENDPOINT and self._types[CLUSTER].subscribed:
                continue  # sent by _send(CLUSTER), right after CDS, forced if CDS re-warms
            out.extend(self._send(type_url, force=False))
        return out

    def acked_resources(self) -> dict[str, tuple[Any, ...]]:
        """Per type URL, the resources (packed) of the last response the proxy ACKed."""
        return {url: s.acked_items for url, s in self._types.items() if s.acked_nonce}

    def type_statuses(self, names: bool = True) -> dict[str, TypeStatus]:
        """Per subscribed type: what was sent, acknowledged, rejected; the subscribed
        names themselves only with ``names`` (a listing needs only their count)."""
        return {
            url: TypeStatus(
                type_url=url,
                sent_version=s.sent_version,
                acked_version=s.acked_version,
                last_nonce=s.sent_nonce,
                acked_nonce=s.acked_nonce,
                nack_error=s.nack_error,
                nacked_version=s.nacked_version,
                resource_count=s.sent_count,
                subscribed_names=None if s.names is None or not names else tuple(sorted(s.names)),
                subscribed_count=None if s.names is None else len(s.names),
                missing_names=_missing(s),
            )
            for url, s in self._types.items()
            if s.subscribed
        }

    def _send(self, type_url: str, *, force: bool) -> list[DiscoveryResponse]:
        """One type's response (unchanged content only when forced); CDS brings EDS along."""
        if self._config is None:
            return []
        state = self._types[type_url]
        rendered = select(type_url, self._config.by_type[type_url], state.names)
        out: list[DiscoveryResponse] = []
        rewarm = False
        if force or rendered.version != state.sent_version:
            if type_url == CLUSTER:
                rewarm = self._rewarms_eds(state, rendered)
            out.append(self._response(state, rendered))
        eds = self._types[ENDPOINT]
        if type_url == CLUSTER and eds.subscribed:
            # A rejected EDS version is not forced out again (see the module rules).
            out.extend(self._send(ENDPOINT, force=rewarm and not self._rejected(eds)))
        return out

    def _rewarms_eds(self, cds: _TypeState, rendered: Rendered) -> bool:
        """Record what this CDS response sends; True if it adds or modifies a cluster the
        proxy fetches endpoints for (Envoy re-warms it and waits for its EDS)."""
        new = digests(rendered)
        old, cds.sent_digests = cds.sent_digests, new
        eds_names = self._types[ENDPOINT].names or frozenset()
        return any(old.get(name) != digest for name, digest in new.items() if name in eds_names)

    @staticmethod
    def _rejected(state: _TypeState) -> bool:
        return state.nack_error is not None and state.nacked_version == state.sent_version

    def _response(self, state: _TypeState, rendered: Rendered) -> DiscoveryResponse:
        self._nonce_counter += 1
        nonce = f"{self._nonce_prefix}-{self._nonce_counter}"
        state.sent_version = rendered.version
        state.sent_nonce = nonce
        state.sent_count = len(rendered.resources)
        state.sent_names = frozenset(rendered.names)
        state.sent_items = rendered.resources
        return DiscoveryResponse(
            version_info=rendered.version,
            resources=list(rendered.resources),
            type_url=rendered.type_url,
            nonce=nonce,
            control_plane=self._control_plane,
        )


def _missing(state: _TypeState) -> tuple[str, ...]:
    """Names the proxy asked for that the last response lacked: Envoy keeps whatever
    needs them warming (up to its 15 s initial fetch timeout), e.g. an SDS secret that
    nothing provides holds its cluster, and with it every CDS ACK."""
    if state.names is None or state.sent_version is None:
        return ()
    return tuple(sorted(state.names - state.sent_names))


def _requested_names(type_url: str, request: DiscoveryRequest) -> frozenset[str] | None:
    if type_url in WILDCARD_TYPES:
        return None
    return frozenset(name for name in request.resource_names if name != "*")


def node_metadata(request: DiscoveryRequest | DeltaDiscoveryRequest) -> dict[str, Any]:
    """The node's metadata Struct as plain JSON values."""
    if not request.node.HasField("metadata"):
        return {}
    result: dict[str, Any] = MessageToDict(request.node.metadata)
    return result
