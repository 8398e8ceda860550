"""The table of resource kinds meshgate understands, and name lookup as kubectl does it.

Rules: every kind is registered exactly once with its group, accepted versions (the
first is the preferred version we emit), plural/singular/short names, scope and typed
model. Lookup accepts kind, plural, singular or short name, case-insensitively, with an
optional ``.group`` suffix (``serviceentries.networking.istio.io``).

Names are static, models are loaded on demand: ``_TABLE`` below holds every kind's names
and the module that defines its model, so resolving ``get se`` imports no model module
(building the pydantic models is most of a short CLI command's start-up). A kind module
still calls ``register`` when imported; that attaches the model to the table entry and
refuses names that disagree with the table, so the two cannot drift apart. A kind not in
the table is found after the kind modules have been imported.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from meshgate.api.meta import group_of

if TYPE_CHECKING:
    from meshgate.api.meta import Resource

_NET = ("networking.istio.io", ("v1", "v1beta1", "v1alpha3"), "istio_networking")
_SEC = ("security.istio.io", ("v1", "v1beta1"), "istio_security")
_ASM = ("istio.alibabacloud.com", ("v1beta1", "v1"), "alibabacloud")
_MG = ("meshgate.io", ("v1alpha1",), "meshgate_kinds")
_CORE = ("", ("v1",), "kubernetes")
_APPS = ("apps", ("v1",), "kubernetes")
_NETWORKING_K8S = ("networking.k8s.io", ("v1",), "kubernetes")
_DISCOVERY = ("discovery.k8s.io", ("v1",), "kubernetes")
_RBAC = ("rbac.authorization.k8s.io", ("v1",), "rbac")

# (group, versions, module), kind, plural, short names, namespaced
_TABLE: tuple[tuple[tuple[str, tuple[str, ...], str], str, str, tuple[str, ...], bool], ...] = (
    (_NET, "ServiceEntry", "serviceentries", ("se",), True),
    (_NET, "Gateway", "gateways", ("gw",), True),
    (_NET, "VirtualService", "virtualservices", ("vs",), True),
    (_NET, "DestinationRule", "destinationrules", ("dr",), True),
    (_NET, "Sidecar", "sidecars", (), True),
    (_SEC, "AuthorizationPolicy", "authorizationpolicies", ("ap",), True),
    (_SEC, "PeerAuthentication", "peerauthentications", ("pa",), True),
    (_SEC, "RequestAuthentication", "requestauthentications", ("ra",), True),
    (_ASM, "IstioGateway", "istiogateways", (), True),
    (_ASM, "ASMEgressTrafficPolicy", "asmegresstrafficpolicies", (), True),
    (_MG, "MeshConfig", "meshconfigs", (), False),
    (_CORE, "Namespace", "namespaces", ("ns",), False),
    (_CORE, "ServiceAccount", "serviceaccounts", ("sa",), True),
    (_CORE, "Service", "services", ("svc",), True),
    (_CORE, "Pod", "pods", ("po",), True),
    (_CORE, "ConfigMap", "configmaps", ("cm",), True),
    (_CORE, "Secret", "secrets", (), True),
    (_CORE, "Endpoints", "endpoints", ("ep",), True),
    (_CORE, "Node", "nodes", ("no",), False),
    (_DISCOVERY, "EndpointSlice", "endpointslices", (), True),
    (_APPS, "Deployment", "deployments", ("deploy",), True),
    (_NETWORKING_K8S, "NetworkPolicy", "networkpolicies", ("netpol",), True),
    (_RBAC, "Role", "roles", (), True),
    (_RBAC, "ClusterRole", "clusterroles", (), False),
    (_RBAC, "RoleBinding", "rolebindings", (), True),
    (_RBAC, "ClusterRoleBinding", "clusterrolebindings", (), False),
)


class KindInfo:
    """One kind: its names and scope now, its model class when first asked for."""

    __slots__ = (
        "_model",
        "_module",
        "group",
        "kind",
        "namespaced",
        "plural",
        "short_names",
        "singular",
        "versions",
    )

    def __init__(
        self,
        *,
        group: str,
        kind: str,
        versions: tuple[str, ...],
        plural: str,
        singular: str,
        short_names: tuple[str, ...],
        namespaced: bool,
        model: type[Resource] | None = None,
        module: str = "",
    ) -> None:
        self.group = group
        self.kind = kind
        self.versions = versions
        self.plural = plural
        self.singular = singular
        self.short_names = short_names
        self.namespaced = namespaced
        self._model = model
        self._module = module

    @property
    def model(self) -> type[Resource]:
        if self._model is None:
            importlib.import_module(self._module)  # its register() attaches the model
        if self._model is None:
            raise LookupError(f"{self._module} did not register {self.group}/{self.kind}")
        return self._model

    @property
    def api_version(self) -> str:
        v = self.versions[0]
        return f"{self.group}/{v}" if self.group else v

    def accepts(self, api_version: str) -> bool:
        version = api_version.rsplit("/", 1)[-1]
        return group_of(api_version) == self.group and version in self.versions

    def names(self) -> tuple[str, ...]:
        """Identity and names, as compared when a module registers a tabled kind."""
        return (
            self.group,
            self.kind,
            *self.versions,
            "|",
            self.plural,
            self.singular,
            *self.short_names,
            str(self.namespaced),
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, KindInfo) and (self.group, self.kind) == (other.group, other.kind)

    def __hash__(self) -> int:
        return hash((self.group, self.kind))

    def __repr__(self) -> str:
        return f"KindInfo({self.group or 'core'}/{self.kind})"


def _tabled() -> dict[tuple[str, str], KindInfo]:
    out: dict[tuple[str, str], KindInfo] = {}
    for (group, versions, module), kind, plural, shorts, namespaced in _TABLE:
        out[(group, kind)] = KindInfo(
            group=group,
            kind=kind,
            versions=versions,
            plural=plural,
            singular=kind.lower(),
            short_names=shorts,
            namespaced=namespaced,
            module=f"meshgate.api.kinds.{module}",
        )
    return out


_KINDS: dict[tuple[str, str], KindInfo] = _tabled()
_loaded = False


def register(info: KindInfo) -> KindInfo:
    """Attach a kind module's model to its table entry (or add a kind the table lacks)."""
    key = (info.group, info.kind)
    known = _KINDS.get(key)
    if known is None:
        _KINDS[key] = info
        return info
    if known._model is not None:
        raise ValueError(f"kind registered twice: {info.group}/{info.kind}")
    if known.names() != info.names():
        raise ValueError(
            f"{info.group}/{info.kind} is registered as {info.names()} but the registry's "
            f"table says {known.names()}: fix one of them"
        )
    known._model = info._model
    return known


def _ensure_loaded() -> None:
    """Import every kind module (for kinds the table lacks, and for ``all_kinds``)."""
    global _loaded
    if not _loaded:
        _loaded = True
        from meshgate.api import kinds  # noqa: F401


def all_kinds() -> list[KindInfo]:
    """Every kind, models not loaded (a test keeps the table complete)."""
    return sorted(_KINDS.values(), key=lambda k: (k.group, k.kind))


def kind_for(api_version: str, kind: str) -> KindInfo | None:
    """The registered kind for a document's apiVersion and kind, or None."""
    info = by_group_kind(group_of(api_version), kind)
    if info is None or not info.accepts(api_version):
        return None
    return info


def by_group_kind(group: str, kind: str) -> KindInfo | None:
    info = _KINDS.get((group, kind))
    if info is None and not _loaded:
        _ensure_loaded()
        info = _KINDS.get((group, kind))
    return info


def lookup(name: str) -> KindInfo | None:
    """Resolve what a user typed after `get`: `se`, `serviceentries`, `ServiceEntry`..."""
    found = _lookup(name)
    if found is None and not _loaded:
        _ensure_loaded()
        found = _lookup(name)
    return found


def _lookup(name: str) -> KindInfo | None:
    base, _, group = name.lower().partition(".")
    for info in _KINDS.values():
        if group and info.group != group:
            continue
        names = {info.kind.lower(), info.plural, info.singular, *info.short_names}
        if base in names:
            return info
    return None
