"""The incremental (delta) ADS protocol for one proxy stream, without I/O.

Rules:
- Input is a DeltaDiscoveryRequest or a new config; output is the list of
  DeltaDiscoveryResponses to send, in order. No clock, no sockets, no logging of secrets.
- Every resource has its own version (a hash of its bytes, ``resource_version``). Per type
  the session records the version of each resource the proxy holds (as sent, or as the
  proxy said in ``initial_resource_versions`` when it reconnected) and sends only those
  whose version differs, and ``removed_resources`` for held ones that are gone: what a push
  costs grows with the change, not with the mesh.
- Resume (a proxy reconnecting after a control-plane restart, or failing over to another
  replica): the versions are hashes of the bytes, the same in every process, so what the
  proxy lists in ``initial_resource_versions`` at the version the config has is not sent
  again; what it lists that the config no longer has is removed. When nothing differs the
  type still gets one response, empty, so that the proxy ACKs it and proxy-status knows
  (SYNCED) what it runs: the resources it kept are recorded as ACKed with that response.
  Clusters sent on a stream before its EDS subscription arrived bring their endpoints
  once it does (Envoy re-warms them, as below, whatever version it listed).
- Subscriptions: a type's first request naming nothing (neither subscribe nor
  unsubscribe), or subscribing to ``*``, is a wildcard subscription (Envoy's LDS and CDS);
  unsubscribing ``*`` ends it. Other names are explicit subscriptions. Subscription changes
  are honoured whatever nonce the request carries (the protocol: a nonce correlates an
  ACK/NACK, it never makes a request stale). A name subscribed after the type's first
  request is sent even if the proxy seemed to hold it (it may have forgotten it); an
  unsubscribed name is no longer held.
- ACK/NACK by nonce: each response has its own nonce; a request carrying it without
  ``error_detail`` ACKs that response, with ``error_detail`` NACKs it. A NACKed response's
  resources are recorded as rejected at their version and not sent again until they change
  (the proxy keeps its last good ones meanwhile). A request that only ACKs or NACKs gets
  no response.
- Removals go to names the proxy holds that the config no longer has (or that are no longer
  subscribed under a wildcard). Never for secrets: Envoy unsubscribes a secret once nothing
  refers to it (SotW has no removal for them either). A name subscribed but never provided
  is left waiting and listed as missing in proxy-status, as in SotW, rather than announced
  absent. A wildcard type gets a first response even when empty (as SotW's empty list):
  Envoy's initialization waits for one.
- Order as in SotW (``PUSH_ORDER``: clusters, endpoints, listeners, routes, secrets), make
  before break: clusters and endpoints that go away are removed last, after the listeners
  and routes that stopped using them. A response adding or changing a cluster whose
  endpoints the proxy fetches is followed by that cluster's ClusterLoadAssignment, even
  unchanged: Envoy re-warms a changed cluster and waits for it (istiod does the same).
- ``system_version_info`` is a hash of the versions the proxy should hold for the type;
  proxy-status shows it as the type's version (sent, and ACKed by nonce).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from envoy.config.core.v3.base_pb2 import ControlPlane
from envoy.service.discovery.v3.discovery_pb2 import (
    DeltaDiscoveryRequest,
    DeltaDiscoveryResponse,
    Resource,
)
from google.protobuf import any_pb2

from meshgate.translate.output import CLUSTER, ENDPOINT, SECRET, ProxyConfig
from meshgate.xds.resources import PUSH_ORDER, VERSION_LENGTH, PackedConfig, Packer
from meshgate.xds.session import KNOWN_TYPES, UnknownTypeError
from meshgate.xds.status import TypeStatus

WILDCARD = "*"
# Responses awaiting an ACK/NACK that are remembered (Envoy answers each one at once).
MAX_IN_FLIGHT = 256

Upsert = tuple[str, str, any_pb2.Any]  # name, version, resource


@dataclass
class _TypeState:
    subscribed: bool = False  # a request for this type arrived on this stream
    wildcard: bool = False
    explicit: set[str] = field(default_factory=set)
    explicit_changes: int = 0  # bumped whenever ``explicit`` changes (memo key)
    held: dict[str, str] = field(default_factory=dict)  # name -> version the proxy has
    rejected: dict[str, str] = field(default_factory=dict)  # name -> version it NACKed
    sent_version: str | None = None
    sent_nonce: str | None = None
    acked_version: str | None = None
    acked_nonce: str | None = None
    nack_error: str | None = None
    nacked_version: str | None = None
    # name -> resource (packed) as the proxy ACKed it: what it runs (`meshgate trace`).
    acked_items: dict[str, any_pb2.Any] = field(default_factory=dict)
    # The proxy listed initial_resource_versions; no response for this type has gone out.
    resumed: bool = False


@dataclass(frozen=True)
class _Sent:
    type_url: str
    system_version: str
    versions: Mapping[str, str]
    items: Mapping[str, any_pb2.Any] = field(default_factory=dict)
    removed: tuple[str, ...] = ()


class DeltaSession:
    """Protocol state of one delta ADS stream: subscriptions, held versions, ACK/NACK."""

    mode = "delta"

    def __init__(self, nonce_prefix: str, control_plane_id: str = "meshgate") -> None:
        self._nonce_prefix = nonce_prefix
        self._nonce_counter = 0
        self._control_plane = ControlPlane(identifier=control_plane_id)
        self._types: dict[str, _TypeState] = {url: _TypeState() for url in PUSH_ORDER}
        self._config: PackedConfig | None = None
        self._versions: dict[str, Mapping[str, str]] = {}  # per type, of self._config
        self._in_flight: dict[str, _Sent] = {}
        # Clusters sent while EDS was not subscribed on this stream (see the module rules).
        self._rewarm_later: set[str] = set()
        # Per type: (config, explicit_changes, missing names) of the last status asked for:
        # a listing polled often recomputes nothing while neither changed.
        self._missing: dict[str, tuple[PackedConfig, int, tuple[str, ...]]] = {}

    @property
    def has_config(self) -> bool:
        return self._config is not None

    # -- input -------------------------------------------------------------------------

    def handle_request(self, request: DeltaDiscoveryRequest) -> list[DeltaDiscoveryResponse]:
        """Apply one request from the proxy; return what to send back."""
        type_url = request.type_url
        if type_url not in KNOWN_TYPES:
            raise UnknownTypeError(f"unsupported type_url {type_url!r}")
        state = self._types[type_url]
        if request.response_nonce:
            self._answered(state, request)
        subscribe = list(request.resource_names_subscribe)
        unsubscribe = list(request.resource_names_unsubscribe)
        first = not state.subscribed
        if not first and not subscribe and not unsubscribe:
            return []  # an ACK or NACK alone
        state.subscribed = True
        state.explicit_changes += 1
        if first:
            state.wildcard = not subscribe and not unsubscribe
            state.held = dict(request.initial_resource_versions)
            state.resumed = bool(state.held)
        for name in subscribe:
            if name == WILDCARD:
                state.wildcard = True
                continue
            state.explicit.add(name)
            if not first:
                state.held.pop(name, None)  # asked again: send it again
        for name in unsubscribe:
            if name == WILDCARD:
                state.wildcard = False
                state.held = {n: v for n, v in state.held.items() if n in state.explicit}
                continue
            state.explicit.discard(name)
            state.held.pop(name, None)  # still wildcard-covered: sent again below
        force: set[str] = set()
        if first and type_url == ENDPOINT:
            force, self._rewarm_later = self._rewarm_later & state.explicit, set()
        return self._sync(type_url, defer_removals=False, force=force)

    def set_config(self, config: ProxyConfig | PackedConfig) -> list[DeltaDiscoveryResponse]:
        """Adopt a new config; return the responses carrying what changed."""
        if isinstance(config, ProxyConfig):
            config = Packer().pack_config(config)
        self._config = config
        self._versions = {}
        out: list[DeltaDiscoveryResponse] = []
        for type_url in PUSH_ORDER:
            if not self._types[type_url].subscribed:
                continue
            if type_url == ENDPOINT and self._types[CLUSTER].subscribed:
                continue  # sent right after the clusters (see _sync)
            # Listeners and routes that went away go with their type's update; clusters
            # and endpoints wait for the end (make before break).
            out.extend(self._sync(type_url, defer_removals=type_url in (CLUSTER, ENDPOINT)))
        # Make before break: clusters (and their endpoints) go once nothing uses them.
        for type_url in (CLUSTER, ENDPOINT):
            state = self._types[type_url]
            if state.subscribed:
                removed = self._removed(type_url)
                if removed:
                    out.append(self._response(type_url, [], removed))
        return out

    # -- status ------------------------------------------------------------------------

    def acked_resources(self) -> dict[str, tuple[any_pb2.Any, ...]]:
        """Per type URL, the resources (packed) the proxy holds by its ACKs, by name."""
        return {
            url: tuple(s.acked_items[n] for n in sorted(s.acked_items))
            for url, s in self._types.items()
            if s.acked_nonce
        }

    def type_statuses(self, names: bool = True) -> dict[str, TypeStatus]:
        """Per subscribed type: what was sent, acknowledged, rejected; explicit names only
        with ``names`` (a listing needs their count)."""
        out = {}
        for url, s in self._types.items():
            if not s.subscribed:
                continue
            explicit = None if s.wildcard and not s.explicit else s.explicit
            missing = self._missing_names(url, s)
            out[url] = TypeStatus(
                type_url=url,
                sent_version=s.sent_version,
                acked_version=s.acked_version,
                last_nonce=s.sent_nonce,
                acked_nonce=s.acked_nonce,
                nack_error=s.nack_error,
                nacked_version=s.nacked_version,
                resource_count=len(s.held),
                subscribed_names=None if explicit is None or not names else tuple(sorted(explicit)),
                subscribed_count=None if explicit is None else len(explicit),
                missing_names=missing,
            )
        return out

    # -- internals ---------------------------------------------------------------------

    def _missing_names(self, type_url: str, state: _TypeState) -> tuple[str, ...]:
        """Subscribed names the config does not have (once per config and subscription)."""
        if self._config is None or not state.explicit:
            return ()
        memo = self._missing.get(type_url)
        if memo is not None and memo[0] is self._config and memo[1] == state.explicit_changes:
            return memo[2]
        if type_url not in self._versions:
            self._versions[type_url] = self._config.versions_of(type_url)
        # Against the config's own (shared) mapping: nothing is copied.
        missing = tuple(sorted(state.explicit.difference(self._versions[type_url])))
        self._missing[type_url] = (self._config, state.explicit_changes, missing)
        return missing

    def _answered(self, state: _TypeState, request: DeltaDiscoveryRequest) -> None:
        sent = self._in_flight.pop(request.response_nonce, None)
        if sent is None or sent.type_url != request.type_url:
            return  # not ours (an older stream's) or forgotten: nothing to record
        if request.HasField("error_detail"):
            state.nack_error = request.error_detail.message or "rejected (no message)"
            state.nacked_version = sent.system_version
            for name, version in sent.versions.items():
                state.rejected[name] = version
                if state.held.get(name) == version:
                    del state.held[name]  # it keeps an older one we do not know
            return
        state.acked_version = sent.system_version
        state.acked_nonce = request.response_nonce
        state.nack_error = None
        state.nacked_version = None
        for name in sent.versions:
            state.rejected.pop(name, None)
        state.acked_items.update(sent.items)
        for name in sent.removed:
            state.acked_items.pop(name, None)

    def _sync(
        self, type_url: str, *, defer_removals: bool, force: Iterable[str] = ()
    ) -> list[DeltaDiscoveryResponse]:
        """One type's changes (its removals unless deferred); clusters bring endpoints."""
        if self._config is None:
            return []
        out: list[DeltaDiscoveryResponse] = []
        upserts = self._upserts(type_url, force)
        removed = [] if defer_removals else self._removed(type_url)
        state = self._types[type_url]
        # A wildcard type is answered once even when the config has none of it (a gateway
        # before its Gateway exists has no listener): Envoy's initialization waits for a
        # first response per type, and would sit out its initial-fetch timeout (15 s).
        first_wildcard = state.wildcard and state.sent_nonce is None
        if upserts or removed or state.resumed or first_wildcard:
            out.append(self._response(type_url, upserts, removed))
        eds = self._types[ENDPOINT]
        if type_url == CLUSTER and not eds.subscribed:
            self._rewarm_later.update(name for name, _, _ in upserts)
        if type_url == CLUSTER and eds.subscribed:
            rewarm = {name for name, _, _ in upserts if name in eds.explicit}
            eds_upserts = self._upserts(ENDPOINT, force=rewarm)
            eds_removed = [] if defer_removals else self._removed(ENDPOINT)
            if eds_upserts or eds_removed or eds.resumed:
                out.append(self._response(ENDPOINT, eds_upserts, eds_removed))
        return out

    def _desired_versions(self, type_url: str) -> Mapping[str, str]:
        """Name -> version of what the proxy should hold of this type (read-only: when
        the proxy wants every resource it is the config's own mapping, shared by every
        proxy given the same resources, so that a push to many costs one walk)."""
        assert self._config is not None
        if type_url not in self._versions:
            self._versions[type_url] = self._config.versions_of(type_url)
        every = self._versions[type_url]
        state = self._types[type_url]
        if state.wildcard or state.explicit.issuperset(every.keys()):
            return every
        return {n: v for n, v in every.items() if n in state.explicit}

    def _upserts(self, type_url: str, force: Iterable[str] = ()) -> list[Upsert]:
        """Resources to send, in the config's order: wanted ones whose version the proxy
        does not hold (or ``force``d), never one at a version it rejected."""
        assert self._config is not None
        state = self._types[type_url]
        versions = self._desired_versions(type_url)
        # Set arithmetic on dict views (in C): what a push sends grows with the change.
        names = {name for name, _ in versions.items() - state.held.items()}
        names.update(n for n in force if n in versions)
        names = {n for n in names if state.rejected.get(n) != versions[n]}
        if not names:
            return []
        named = self._config.by_type.get(type_url, ())
        positions = self._config.positions_of(type_url)
        out = []
        for k in sorted(positions[n] for n in names):
            name, item = named[k]
            out.append((name, versions[name], item))
        return out

    def _removed(self, type_url: str) -> list[str]:
        if type_url == SECRET:
            return []
        versions = self._desired_versions(type_url)
        return sorted(self._types[type_url].held.keys() - versions.keys())

    def _response(
        self, type_url: str, upserts: list[Upsert], removed: list[str]
    ) -> DeltaDiscoveryResponse:
        state = self._types[type_url]
        self._nonce_counter += 1
        nonce = f"{self._nonce_prefix}-{self._nonce_counter}"
        for name, version, _ in upserts:
            state.held[name] = version
        for name in removed:
            state.held.pop(name, None)
        desired = self._desired_versions(type_url)
        system = _system_version(type_url, desired)
        state.sent_version = system
        state.sent_nonce = nonce
        items = {n: item for n, _, item in upserts}
        if state.resumed:
            # The first response of a resumed type: what the proxy kept is ACKed with it.
            state.resumed = False
            kept = {n for n, v in state.held.items() if desired.get(n) == v} - items.keys()
            if kept:
                named = self._config.by_type.get(type_url, ()) if self._config else ()
                positions = self._config.positions_of(type_url) if self._config else {}
                items.update((n, named[positions[n]][1]) for n in kept)
        self._in_flight[nonce] = _Sent(
            type_url,
            system,
            {n: v for n, v, _ in upserts},
            items,
            tuple(removed),
        )
        while len(self._in_flight) > MAX_IN_FLIGHT:
            del self._in_flight[next(iter(self._in_flight))]
        return DeltaDiscoveryResponse(
            system_version_info=system,
            type_url=type_url,
            nonce=nonce,
            control_plane=self._control_plane,
            resources=[Resource(name=n, version=v, resource=item) for n, v, item in upserts],
            removed_resources=removed,
        )


_SYSTEM_MEMO: dict[tuple[str, int], tuple[Mapping[str, str], str]] = {}
_SYSTEM_MEMO_SIZE = 64


def _system_version(type_url: str, versions: Mapping[str, str]) -> str:
    """A short hash of every (name, version) the proxy should hold of one type; once per
    mapping object for the shared (read-only) ones every proxy of a push is given."""
    if not isinstance(versions, dict) or len(versions) < 64:
        return _hash_versions(type_url, versions)
    key = (type_url, id(versions))
    hit = _SYSTEM_MEMO.get(key)
    if hit is not None and hit[0] is versions:
        return hit[1]
    version = _hash_versions(type_url, versions)
    _SYSTEM_MEMO[key] = (versions, version)  # holding it keeps its id from being reused
    while len(_SYSTEM_MEMO) > _SYSTEM_MEMO_SIZE:
        del _SYSTEM_MEMO[next(iter(_SYSTEM_MEMO))]
    return version


def _hash_versions(type_url: str, versions: Mapping[str, str]) -> str:
    digest = hashlib.sha256(type_url.encode())
    for name in sorted(versions):
        digest.update(f"{name}\0{versions[name]}\n".encode())
    return digest.hexdigest()[:VERSION_LENGTH]
