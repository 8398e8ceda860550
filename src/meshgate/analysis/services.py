"""Which services a namespace can see, by host, as Istio's analyzers look them up.

Rules of this module:
- Services are ServiceEntry hosts and Kubernetes Services (``NAME.NS.svc.cluster.local``,
  exported to every namespace unless the ``networking.istio.io/exportTo`` annotation says
  otherwise), each keyed by (scope, FQDN): scope ``*`` for exported everywhere, else the
  namespace that may see it.
- Short names are expanded relative to the namespace of the resource that wrote them
  (``meshgate.model.hosts.expand_short_name``); wildcard service hosts match names under
  them (``*.foo.com`` covers ``a.foo.com``, never ``foo.com``).
- A looked-up service carries its port numbers and, for a ServiceEntry, its workload
  selector (subsets of a DestinationRule select pods within it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from meshgate.analysis.context import AnalysisContext
from meshgate.api.kinds.istio_networking import ServiceEntry
from meshgate.api.kinds.kubernetes import Service
from meshgate.model import hosts

ALL = "*"
LOCAL = "."
EXPORT_TO_ANNOTATION = "networking.istio.io/exportTo"


@dataclass(frozen=True)
class ServiceView:
    host: str
    ports: tuple[int, ...]
    workload_selector: Mapping[str, str] = field(default_factory=dict)


def fqdn(host: str, namespace: str) -> str:
    return hosts.expand_short_name(host, namespace)


class ServiceIndex:
    """Services by (scope, FQDN)."""

    def __init__(self, ctx: AnalysisContext) -> None:
        self._by_scope: dict[tuple[str, str], ServiceView] = {}
        for se in ctx.of(ServiceEntry):
            spec = se.resource.spec
            ports = tuple(p.number for p in spec.ports or [])
            selector = dict(spec.workload_selector.labels or {}) if spec.workload_selector else {}
            scopes = _scopes(spec.export_to or [], se.namespace)
            for h in spec.hosts:
                name = fqdn(h, se.namespace)
                view = ServiceView(name, ports, selector)
                for scope in scopes:
                    self._by_scope[(scope, name)] = view
        for svc in ctx.of(Service):
            name = hosts.kubernetes_host(svc.name, svc.namespace)
            view = ServiceView(name, tuple(p.port for p in svc.resource.spec.ports or []))
            note = (svc.resource.metadata.annotations or {}).get(EXPORT_TO_ANNOTATION, "")
            scopes = _scopes([s.strip() for s in note.split(",") if s.strip()], svc.namespace)
            for scope in scopes:
                self._by_scope[(scope, name)] = view

    def lookup(
        self, source_ns: str, host: str, export_to: list[str] | None = None
    ) -> ServiceView | None:
        """The service ``host`` names for a resource in ``source_ns``, or None."""
        name = fqdn(host, source_ns)
        found = self._by_scope.get((ALL, name))
        if found is not None:
            return found
        scopes = [source_ns if e == LOCAL else e for e in export_to or []] or [source_ns]
        for scope in scopes:
            found = self._by_scope.get((scope, name))
            if found is not None:
                return found
        wanted = name.removeprefix("*")
        for (scope, service_host), view in sorted(self._by_scope.items()):
            if not service_host.startswith("*") or scope not in (ALL, source_ns):
                continue
            if wanted.endswith(service_host[1:]):
                return view
        return None


def _scopes(export_to: list[str], namespace: str) -> list[str]:
    if not export_to or ALL in export_to:
        return [ALL]
    return sorted({namespace if e == LOCAL else e for e in export_to})
