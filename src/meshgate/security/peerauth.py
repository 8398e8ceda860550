"""PeerAuthentication -> the mutual TLS mode a workload's inbound side enforces, per port.

Rules of this module (Istio's PeerAuthentication semantics; pure, no Envoy types):
- Modes: ``STRICT`` (mesh mTLS only), ``PERMISSIVE`` (mesh mTLS or plaintext), ``DISABLE``
  (plaintext: bytes pass to the app as they come), ``UNSET`` (inherit from the level above).
- Levels, most specific first: a policy in the workload's namespace whose ``selector``
  labels are a subset of the pod's (workload level, which alone may set ``portLevelMtls``);
  a policy in the workload's namespace without selector labels (namespace level); one in
  the root namespace (MeshConfig ``rootNamespace``) without selector labels (mesh level).
  Nothing set anywhere is ``PERMISSIVE``, Istio's default.
- Several policies at one level: the oldest (creationTimestamp, then name) wins, as Istio
  picks.
- A port's mode: the workload policy's ``portLevelMtls`` entry for that port (the pod's own
  port, i.e. a Service's targetPort), else the workload policy's ``mtls``, else the
  namespace's, else the mesh's. ``UNSET`` at any step falls through to the next.
- Clients guess a server's mode (Istio's BestEffortInferServiceMTLSMode): the service
  namespace's level, else the mesh level; workload-level policies are not looked at. Auto
  mTLS sends plaintext to a service whose guessed mode is ``DISABLE``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from meshgate.model.fields import get, get_str, str_map

STRICT = "STRICT"
PERMISSIVE = "PERMISSIVE"
DISABLE = "DISABLE"
UNSET = "UNSET"
DEFAULT_MODE = PERMISSIVE


def _age(policy: Any) -> tuple[str, str]:
    meta = get(policy, "metadata")
    # A policy never stored (offline analysis) has no timestamp: it sorts as newest.
    return (get_str(meta, "creation_timestamp") or "~", get_str(meta, "name"))


def _ns(policy: Any) -> str:
    return get_str(get(policy, "metadata"), "namespace") or "default"


def _selector(policy: Any) -> dict[str, str]:
    return str_map(get(get(get(policy, "spec"), "selector"), "match_labels"))


def _mode(value: Any) -> str:
    return get_str(value, "mode") or UNSET


@dataclass(frozen=True)
class InboundMtls:
    """The modes a workload enforces: ``default`` for any port, ``ports`` where a workload
    policy sets its own (already resolved, never UNSET)."""

    default: str = DEFAULT_MODE
    ports: Mapping[int, str] = field(default_factory=dict)
    policies: tuple[str, ...] = ()  # "ns/name" of the policies that decided, most specific first

    def mode(self, port: int) -> str:
        return self.ports.get(port, self.default)


def _oldest(policies: Iterable[Any]) -> Any | None:
    ordered = sorted(policies, key=_age)
    return ordered[0] if ordered else None


def _levels(
    policies: Iterable[Any], namespace: str, labels: Mapping[str, str], root_namespace: str
) -> tuple[Any | None, Any | None, Any | None]:
    """(workload, namespace, mesh) policies that apply, each the oldest of its level."""
    workload, namespaced, mesh = [], [], []
    for p in policies:
        ns, selector = _ns(p), _selector(p)
        if ns == namespace and selector:
            if all(labels.get(k) == v for k, v in selector.items()):
                workload.append(p)
        elif ns == namespace and not selector:
            namespaced.append(p)
        elif ns == root_namespace and not selector:
            mesh.append(p)
    if namespace == root_namespace:
        # The root namespace's own selector-less policy is the mesh's, not a second level.
        namespaced, mesh = [], namespaced
    return _oldest(workload), _oldest(namespaced), _oldest(mesh)


def _name(policy: Any) -> str:
    return f"{_ns(policy)}/{get_str(get(policy, 'metadata'), 'name')}"


def inbound_mtls(
    policies: Iterable[Any], namespace: str, labels: Mapping[str, str], root_namespace: str
) -> InboundMtls:
    """What a workload in ``namespace`` with ``labels`` enforces on its inbound ports."""
    workload, namespaced, mesh = _levels(policies, namespace, labels, root_namespace)
    base = DEFAULT_MODE
    decided: list[str] = []
    for policy in (mesh, namespaced):
        if policy is not None and _mode(get(get(policy, "spec"), "mtls")) != UNSET:
            base = _mode(get(get(policy, "spec"), "mtls"))
            decided.insert(0, _name(policy))
    if workload is None:
        return InboundMtls(base, {}, tuple(decided))
    spec = get(workload, "spec")
    own = _mode(get(spec, "mtls"))
    default = base if own == UNSET else own
    ports: dict[int, str] = {}
    for port, setting in (get(spec, "port_level_mtls") or {}).items():
        mode = _mode(setting)
        ports[int(port)] = default if mode == UNSET else mode
    return InboundMtls(default, ports, (_name(workload), *decided))


def service_mtls(policies: Iterable[Any], namespace: str, root_namespace: str) -> str:
    """The mode a client guesses for a service in ``namespace`` (namespace, then mesh)."""
    _, namespaced, mesh = _levels(policies, namespace, {}, root_namespace)
    for policy in (namespaced, mesh):
        if policy is not None:
            mode = _mode(get(get(policy, "spec"), "mtls"))
            if mode != UNSET:
                return mode
    return DEFAULT_MODE
