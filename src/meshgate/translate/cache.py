"""One translation per group of proxies that would receive the same resources (Istio's push
context idea): the others get it with their own few personal strings put in.

Rules of this module:
- Output is byte-identical to translating each proxy on its own; sharing is a shortcut,
  never a change. A sidecar's translation depends on its pod name and IP only through a
  few personal strings (``own_strings``: the refusals' ``(from ns/pod)`` and the
  metadata-exchange headers; and what the caller adds, e.g. the access-log credential),
  on its IP only when it is an endpoint of a headless service, and on its pod only
  through the ports it is dialled on: ``share_key`` holds everything else
  translation reads of a proxy, so proxies with one key differ only in those strings.
- A shared config (``SharedConfig``) carries its messages' bytes, so they are serialized
  once per snapshot, not again when packed.
- The strings are substituted in the serialized bytes, only in resources that hold the
  template's; a proxy joins a group only when its strings have the template's lengths, so
  every length prefix stays right. Such a resource stays bytes (``Serialized``: parsed
  only if something reads it; the xDS packer sends the bytes as they are). Resources
  without personal strings are the template's very message objects (packed once per push
  by ``xds.resources.Packer``).
- Trust, but verify: the first proxy derived in a group is also translated on its own and
  compared byte for byte; on any difference (say a user's config that contains the
  template's pod name) the group is marked unshared and its proxies are translated one by
  one. So a derivation is only ever made from a template whose personal strings were shown
  to occur where the translator put them and nowhere else.
- A verification is carried over to the next snapshot when the group (same share key and
  template proxy) has byte-identical personal resources: the substitutions it proved right
  are the same ones. What the next snapshot changed is elsewhere (an endpoint, a cluster),
  so a change to one ServiceEntry costs one translation per group, not two. A change that
  touches a personal resource (a listener, a route that holds a personal string) is
  verified again.
- Routers (gateways: few, and their listeners depend on the pod's ports) are never shared.
- Everything is kept for one snapshot (an immutable value): a new snapshot starts afresh.
  Not thread-safe: one worker thread uses it (the xDS server's). Pure as the rest of
  ``translate``: no I/O (``unshared_groups`` counts verifications that failed).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from meshgate.model.proxy import Proxy
from meshgate.model.snapshot import Snapshot
from meshgate.translate import peer_metadata
from meshgate.translate.output import ProxyConfig

# (snapshot, proxy, the node id its stream uses) -> its config
Translate = Callable[[Snapshot, Proxy, str], ProxyConfig]
# (proxy, node id) -> the strings of its translation that are its own (each proxy's distinct)
Personal = Callable[[Proxy, str], Sequence[str]]

_FIELDS = ("listeners", "routes", "clusters", "endpoints", "secrets")


def source_marker(proxy: Proxy) -> str:
    """How a sidecar names itself in its refusals (``translate.refusals``: ``(from ns/pod)``)."""
    return f"(from {proxy.namespace}/{proxy.pod})"


def own_strings(proxy: Proxy) -> tuple[str, ...]:
    """The strings a sidecar's translation holds that are its own: its refusals' source
    marker and its metadata-exchange headers (``translate.peer_metadata``: the encoded
    node metadata and the node id). Replicas' values have equal lengths when their pod
    names and IPs do, so they share."""
    return (source_marker(proxy), peer_metadata.encoded(proxy), proxy.node_id)


def _headless_addresses(snapshot: Snapshot) -> frozenset[str]:
    """Endpoint addresses of headless services: a sidecar that is one binds the others."""
    return frozenset(
        e.address
        for svc in snapshot.services
        if svc.is_headless
        for endpoints in svc.endpoints.values()
        for e in endpoints
    )


@dataclass
class SharedConfig(ProxyConfig):
    """A shared translation's config, with the deterministic bytes of its messages
    (``id`` -> the message, held so the id stays its own, and its bytes): the xDS packer
    sends those rather than serializing the same messages again."""

    known: Mapping[int, tuple[Any, bytes]] = field(default_factory=dict)

    def serialized(self, message: Any) -> bytes | None:
        held = self.known.get(id(message))
        return held[1] if held is not None and held[0] is message else None


class Serialized:
    """A resource held as its deterministic bytes; reading any field parses it (once)."""

    __slots__ = ("_message", "data", "message_type", "name")

    def __init__(self, message_type: Any, data: bytes, name: str) -> None:
        self.message_type = message_type
        self.data = data
        self.name = name  # the xDS name (a ClusterLoadAssignment's cluster name)
        self._message: Any = None

    def message(self) -> Any:
        if self._message is None:
            self._message = self.message_type.FromString(self.data)
        return self._message

    def SerializeToString(self, deterministic: bool = False) -> bytes:
        return self.data

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.message(), attr)


def _xds_name(message: Any) -> str:
    if message.DESCRIPTOR.name == "ClusterLoadAssignment":
        return str(message.cluster_name)
    return str(message.name)


@dataclass
class _Group:
    template: tuple[Proxy, str]
    personal: tuple[bytes, ...]
    config: ProxyConfig
    # Per field, per resource: its bytes, and whether they hold a personal string.
    data: dict[str, list[bytes]]
    marked: dict[str, list[bool]]
    verified: bool = False
    unshared: bool = False
    digest: bytes = b""  # of the personal resources' bytes (see the module rules)


class SharedTranslations:
    """Translations of one snapshot, shared between proxies as the module rules say."""

    def __init__(
        self, translate: Translate | None = None, personal: Personal | None = None
    ) -> None:
        self._translate = translate or _plain
        self._personal = personal or (lambda p, _node: own_strings(p))
        self._snapshot: Snapshot | None = None
        self._groups: dict[Hashable, _Group] = {}
        self._headless: frozenset[str] = frozenset()
        # share key -> (template's node id, digest of its personal resources) of groups
        # verified under the previous snapshot, and of those verified under this one.
        self._verified_before: dict[Hashable, tuple[str, bytes]] = {}
        self._verified_now: dict[Hashable, tuple[str, bytes]] = {}
        self.translations = 0  # translate() calls (verification ones included)
        self.derivations = 0  # configs made from a group's template instead
        self.unshared_groups = 0  # groups whose verification found a difference

    def config(self, snapshot: Snapshot, proxy: Proxy, node_id: str = "") -> ProxyConfig:
        """``proxy``'s config under ``snapshot``, as ``translate`` would make it."""
        node_id = node_id or proxy.node_id
        if snapshot is not self._snapshot:
            self._snapshot, self._groups = snapshot, {}
            self._headless = _headless_addresses(snapshot)
            self._verified_before, self._verified_now = self._verified_now, {}
        personal = tuple(s.encode() for s in self._personal(proxy, node_id))
        key = self.share_key(snapshot, proxy, personal)
        if key is None:
            return self._own(snapshot, proxy, node_id)
        group = self._groups.get(key)
        if group is None or group.template == (proxy, node_id):
            if group is None:
                own = self._own(snapshot, proxy, node_id)
                data = _serialized(own)
                marked = {
                    name: [any(p in item for p in personal) for item in items]
                    for name, items in data.items()
                }
                known = {
                    id(m): (m, item)
                    for name in _FIELDS
                    for m, item in zip(getattr(own, name), data[name], strict=True)
                }
                config = SharedConfig(**{name: getattr(own, name) for name in _FIELDS}, known=known)
                group = _Group((proxy, node_id), personal, config, data, marked)
                group.digest = _personal_digest(data, marked)
                if self._verified_before.get(key) == (node_id, group.digest):
                    group.verified = True  # the same substitutions, proved last snapshot
                    self._verified_now[key] = (node_id, group.digest)
                self._groups[key] = group
                return config
            return group.config
        if group.unshared:
            return self._own(snapshot, proxy, node_id)
        derived, derived_data = _derive(group, personal)
        if not group.verified:
            own = self._own(snapshot, proxy, node_id)
            if _serialized(own) != derived_data:
                group.unshared = True
                self.unshared_groups += 1
                return own
            group.verified = True
            self._verified_now[key] = (group.template[1], group.digest)
        self.derivations += 1
        return derived

    def share_key(
        self, snapshot: Snapshot, proxy: Proxy, personal: tuple[bytes, ...]
    ) -> Hashable | None:
        """What of ``proxy`` its translation reads, but for its personal strings (None:
        not shared)."""
        if proxy.is_router:
            return None
        # Imported here: inbound imports the snapshot's helpers this module's callers use.
        from meshgate.translate.inbound import pod_ports

        ports = pod_ports(snapshot).get(f"{proxy.namespace}/{proxy.pod}", {})
        return (
            proxy.kind,
            proxy.namespace,
            tuple(sorted(proxy.labels.items())),
            proxy.service_account,
            tuple(len(s) for s in personal),
            tuple(sorted(ports.items())),
            proxy.ip if proxy.ip in self._headless else "",
        )

    def _own(self, snapshot: Snapshot, proxy: Proxy, node_id: str) -> ProxyConfig:
        self.translations += 1
        return self._translate(snapshot, proxy, node_id)


def _plain(snapshot: Snapshot, proxy: Proxy, _node_id: str) -> ProxyConfig:
    from meshgate.translate import translate

    return translate(snapshot, proxy)


def _derive(
    group: _Group, personal: tuple[bytes, ...]
) -> tuple[ProxyConfig, dict[str, list[bytes]]]:
    """The template's config with ``personal`` strings in place of its own, and its bytes."""
    fields: dict[str, list[Any]] = {}
    data: dict[str, list[bytes]] = {}
    for name in _FIELDS:
        originals = getattr(group.config, name)
        marked = group.marked[name]
        if not any(marked):
            fields[name] = originals  # the very list: nothing in it is personal
            data[name] = group.data[name]
            continue
        out = []
        out_data = []
        for message, item, personal_here in zip(originals, group.data[name], marked, strict=True):
            if not personal_here:
                out.append(message)
                out_data.append(item)
                continue
            xds_name = _xds_name(message)
            for old, new in zip(group.personal, personal, strict=True):
                item = item.replace(old, new)
                xds_name = xds_name.replace(old.decode(), new.decode())
            out.append(Serialized(type(message), item, xds_name))
            out_data.append(item)
        fields[name] = out
        data[name] = out_data
    assert isinstance(group.config, SharedConfig)
    return SharedConfig(**fields, known=group.config.known), data


def _serialized(config: ProxyConfig) -> dict[str, list[bytes]]:
    return {
        name: [m.SerializeToString(deterministic=True) for m in getattr(config, name)]
        for name in _FIELDS
    }


def _personal_digest(data: dict[str, list[bytes]], marked: dict[str, list[bool]]) -> bytes:
    """A digest of the resources that hold personal strings, in order, by field."""
    h = hashlib.sha256()
    for name in _FIELDS:
        for item, personal_here in zip(data[name], marked[name], strict=True):
            if personal_here:
                h.update(len(item).to_bytes(8, "big"))
                h.update(item)
        h.update(b"|")
    return h.digest()
