"""The table of resource kinds meshgate understands, and name lookup as kubectl does it.

Rules: every kind is registered exactly once with its group, accepted versions (the
first is the preferred version we emit), plural/singular/short names, scope and typed
model. Lookup accepts kind, plural, singular or short name, case-insensitively, with an
optional ``.group`` suffix (``serviceentries.networking.istio.io``).
"""

from __future__ import annotations

from dataclasses import dataclass

from meshgate.api.meta import Resource, group_of


@dataclass(frozen=True)
class KindInfo:
    group: str
    kind: str
    versions: tuple[str, ...]
    plural: str
    singular: str
    short_names: tuple[str, ...]
    namespaced: bool
    model: type[Resource]

    @property
    def api_version(self) -> str:
        v = self.versions[0]
        return f"{self.group}/{v}" if self.group else v

    def accepts(self, api_version: str) -> bool:
        version = api_version.rsplit("/", 1)[-1]
        return group_of(api_version) == self.group and version in self.versions


_KINDS: dict[tuple[str, str], KindInfo] = {}


def register(info: KindInfo) -> KindInfo:
    key = (info.group, info.kind)
    if key in _KINDS:
        raise ValueError(f"kind registered twice: {info.group}/{info.kind}")
    _KINDS[key] = info
    return info


def _ensure_loaded() -> None:
    if _KINDS:
        return
    # Importing the kind modules registers them; deferred so `import registry` is cheap.
    from meshgate.api import kinds  # noqa: F401


def all_kinds() -> list[KindInfo]:
    _ensure_loaded()
    return sorted(_KINDS.values(), key=lambda k: (k.group, k.kind))


def kind_for(api_version: str, kind: str) -> KindInfo | None:
    """The registered kind for a document's apiVersion and kind, or None."""
    _ensure_loaded()
    info = _KINDS.get((group_of(api_version), kind))
    if info is None or not info.accepts(api_version):
        return None
    return info


def by_group_kind(group: str, kind: str) -> KindInfo | None:
    _ensure_loaded()
    return _KINDS.get((group, kind))


def lookup(name: str) -> KindInfo | None:
    """Resolve what a user typed after `get`: `se`, `serviceentries`, `ServiceEntry`..."""
    _ensure_loaded()
    base, _, group = name.lower().partition(".")
    for info in _KINDS.values():
        if group and info.group != group:
            continue
        names = {info.kind.lower(), info.plural, info.singular, *info.short_names}
        if base in names:
            return info
    return None
