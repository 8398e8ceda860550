"""Envoy resources as the xDS wire sees them: names, packing and content versions.

Rules: pure functions, no I/O (``Packer`` only caches within one push). A version is a
short hash of exactly the bytes sent (deterministic protobuf serialisation, in the order
given), so the same content always gets the same version, across processes and
control-plane restarts; that lets a proxy that reconnects with its last version be
recognised as already up to date. A resource's own version (delta xDS) is a short hash of
its bytes alone, so a resource that did not change keeps its version whatever else did.
Hashing keeps the GIL: ``hashlib`` lets it go for every buffer of 2 KiB or more, and
getting it back in the xDS worker while the event loop is busy costs up to a switch
interval (5 ms) each time, which for a push to 50 proxies was most of its packing time;
bytes are therefore fed in smaller slices (same digest).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from envoy.config.endpoint.v3.endpoint_pb2 import ClusterLoadAssignment
from google.protobuf import any_pb2

from meshgate.translate.cache import Serialized, SharedConfig
from meshgate.translate.output import CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET, ProxyConfig

# Envoy's ADS guidance ("eventual consistency considerations"): clusters before the
# endpoints that warm them, both before the listeners and routes that refer to them.
# Secrets last: they are fetched by name while a cluster or listener warms.
PUSH_ORDER: tuple[str, ...] = (CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET)

# LDS and CDS are wildcard subscriptions (the proxy gets every resource); the others are
# fetched by the names the proxy asks for.
WILDCARD_TYPES: frozenset[str] = frozenset({LISTENER, CLUSTER})

SHORT_NAMES: dict[str, str] = {
    LISTENER: "LDS",
    ROUTE: "RDS",
    CLUSTER: "CDS",
    ENDPOINT: "EDS",
    SECRET: "SDS",
}

VERSION_LENGTH = 12
RESOURCE_VERSION_BYTES = 8


def resource_name(resource: Any) -> str:
    """The xDS name of a resource (a ClusterLoadAssignment is named by its cluster)."""
    if isinstance(resource, ClusterLoadAssignment):
        return str(resource.cluster_name)
    return str(resource.name)


def pack(resource: Any) -> any_pb2.Any:
    """Wrap a message in Any with deterministic bytes (a ``Serialized`` one's as kept)."""
    if isinstance(resource, Serialized):
        full_name = resource.message_type.DESCRIPTOR.full_name
        return any_pb2.Any(type_url=f"type.googleapis.com/{full_name}", value=resource.data)
    packed = any_pb2.Any()
    packed.Pack(resource, deterministic=True)
    return packed


_GIL_SLICE = 2047  # below hashlib's HASHLIB_GIL_MINSIZE (2048): the GIL is kept


def _blake2b(data: bytes, digest_size: int) -> hashlib.blake2b:
    """blake2b of ``data``, fed in slices that never release the GIL (module rules)."""
    if len(data) <= _GIL_SLICE:
        return hashlib.blake2b(data, digest_size=digest_size)
    digest = hashlib.blake2b(digest_size=digest_size)
    _update(digest, data)
    return digest


def _update(digest: Any, data: bytes) -> None:
    view = memoryview(data)
    for start in range(0, len(data), _GIL_SLICE):
        digest.update(view[start : start + _GIL_SLICE])


def content_version(type_url: str, packed: Sequence[any_pb2.Any]) -> str:
    """A short deterministic hash of a response's resources (empty content included)."""
    digest = hashlib.sha256(type_url.encode())
    for item in packed:
        digest.update(item.type_url.encode())
        digest.update(len(item.value).to_bytes(8, "big"))
        _update(digest, item.value)
    return digest.hexdigest()[:VERSION_LENGTH]


def resource_version(packed: any_pb2.Any) -> str:
    """One resource's version: a short hash of exactly its bytes (delta xDS)."""
    return _blake2b(packed.value, RESOURCE_VERSION_BYTES).hexdigest()


@dataclass(frozen=True)
class Rendered:
    """One type's resources as they would go out to one proxy."""

    type_url: str
    version: str
    resources: tuple[any_pb2.Any, ...]
    names: tuple[str, ...]


def digests(rendered: Rendered) -> dict[str, bytes]:
    """Per resource name, a digest of its bytes: tells which resources a new response changes."""
    return {
        name: _blake2b(item.value, 16).digest()
        for name, item in zip(rendered.names, rendered.resources, strict=True)
    }


Named = tuple[tuple[str, any_pb2.Any], ...]


@dataclass(frozen=True)
class PackedConfig:
    """One proxy's resources packed: per type URL, (name, Any) in the config's order.
    Packing is the costly part of rendering, so it happens once, in the xDS worker;
    selecting by subscribed names and hashing is left to the session."""

    by_type: Mapping[str, Named]
    # Per type URL, each resource's version (resource_version), in by_type's order; may be
    # left empty (the delta session then hashes itself). Hashed once per packed object.
    versions: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # Per type URL, name -> version and name -> position in by_type: one shared (read-only)
    # mapping for every proxy given the same resources (Packer), so a push to many proxies
    # builds them once; may be left empty (then made here, per call).
    version_maps: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    positions: Mapping[str, Mapping[str, int]] = field(default_factory=dict)

    def versions_of(self, type_url: str) -> Mapping[str, str]:
        """Name -> version of one type's resources (do not modify: it may be shared)."""
        shared = self.version_maps.get(type_url)
        if shared is not None:
            return shared
        named = self.by_type.get(type_url, ())
        known = self.versions.get(type_url)
        if known is None or len(known) != len(named):
            known = tuple(resource_version(item) for _, item in named)
        return {name: version for (name, _), version in zip(named, known, strict=True)}

    def positions_of(self, type_url: str) -> Mapping[str, int]:
        """Name -> position in ``by_type[type_url]`` (do not modify: it may be shared)."""
        shared = self.positions.get(type_url)
        if shared is not None:
            return shared
        return {name: k for k, (name, _) in enumerate(self.by_type.get(type_url, ()))}


class Packer:
    """Packs configs, each message object once: proxies that share a resource object (a
    translation shared between proxies) share its bytes. Keep one per push: it holds
    every message it saw, which is what makes ``id`` a safe key meanwhile."""

    def __init__(self) -> None:
        self._seen: dict[int, tuple[Any, any_pb2.Any]] = {}
        self._versions: dict[int, tuple[any_pb2.Any, str]] = {}
        # One config list (the same list object: a shared translation's) packed once.
        self._lists: dict[int, tuple[list[Any], _PackedList]] = {}

    def pack(self, message: Any, known: SharedConfig | None = None) -> any_pb2.Any:
        hit = self._seen.get(id(message))
        if hit is not None and hit[0] is message:
            return hit[1]
        data = None if known is None else known.serialized(message)
        if data is not None:
            full_name = message.DESCRIPTOR.full_name
            packed = any_pb2.Any(type_url=f"type.googleapis.com/{full_name}", value=data)
        else:
            packed = pack(message)
        self._seen[id(message)] = (message, packed)
        return packed

    def version(self, packed: any_pb2.Any) -> str:
        """resource_version, once per packed object (shared ones are hashed once)."""
        hit = self._versions.get(id(packed))
        if hit is not None and hit[0] is packed:
            return hit[1]
        version = resource_version(packed)
        self._versions[id(packed)] = (packed, version)
        return version

    def named(
        self, type_url: str, resources: Iterable[Any], known: SharedConfig | None = None
    ) -> Named:
        out = []
        for resource in resources:
            if isinstance(resource, any_pb2.Any):
                raise TypeError(f"{type_url}: pass messages, not Any, so names can be read")
            out.append((resource_name(resource), self.pack(resource, known)))
        return tuple(out)

    def pack_list(
        self, type_url: str, items: list[Any], known: SharedConfig | None = None
    ) -> _PackedList:
        """One type's resources packed, with their versions and name maps; a list packed
        before in this push (the very object) is not walked again."""
        hit = self._lists.get(id(items))
        if hit is not None and hit[0] is items and hit[1].type_url == type_url:
            return hit[1]
        named = self.named(type_url, items, known)
        versions = tuple(self.version(item) for _, item in named)
        names = [name for name, _ in named]
        packed = _PackedList(
            type_url,
            named,
            versions,
            dict(zip(names, versions, strict=True)),
            {name: k for k, name in enumerate(names)},
        )
        self._lists[id(items)] = (items, packed)
        return packed

    def pack_config(self, config: ProxyConfig) -> PackedConfig:
        known = config if isinstance(config, SharedConfig) else None
        lists = {url: self.pack_list(url, items, known) for url, items in config.by_type().items()}
        return PackedConfig(
            {url: p.named for url, p in lists.items()},
            {url: p.versions for url, p in lists.items()},
            {url: p.version_map for url, p in lists.items()},
            {url: p.positions for url, p in lists.items()},
        )


@dataclass(frozen=True)
class _PackedList:
    type_url: str
    named: Named
    versions: tuple[str, ...]
    version_map: Mapping[str, str]
    positions: Mapping[str, int]


def render(type_url: str, resources: Iterable[Any], wanted: frozenset[str] | None) -> Rendered:
    """Select (by name, unless ``wanted`` is None) and pack one type's resources."""
    return select(type_url, Packer().named(type_url, resources), wanted)


def select(type_url: str, named: Named, wanted: frozenset[str] | None) -> Rendered:
    """Select already packed resources by name (all of them when ``wanted`` is None)."""
    chosen = [(name, item) for name, item in named if wanted is None or name in wanted]
    packed = tuple(item for _, item in chosen)
    return Rendered(
        type_url=type_url,
        version=content_version(type_url, packed),
        resources=packed,
        names=tuple(name for name, _ in chosen),
    )
