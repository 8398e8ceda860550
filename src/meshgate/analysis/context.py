"""What analyzers see: every resource of one analysis run, indexed, and where to report.

Rules of this module:
- An ``Entry`` is one typed resource plus where it came from (file and line index when
  read from a file; nothing for store objects or objects implied by a controller) and the
  structural problems found reading it (reported by the schema analyzers). A message's
  line is the line of the field it is about, else the resource's first line.
- Nodes are not an api kind: ``Node`` is the light view analysis needs (name, labels).
- ``AnalysisContext`` is read-only for analyzers except ``report``; analyzers never see
  each other's messages. Lists come sorted by (namespace, name), so output is stable.
- Selectors follow Kubernetes ``SelectorFromSet`` semantics, as Istio's analyzers use them:
  every key must match; an empty selector matches everything.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from meshgate.analysis.messages import Message, MessageType, render
from meshgate.api.kinds.kubernetes import Namespace, Pod
from meshgate.api.kinds.meshgate_kinds import MeshConfig, MeshConfigSpec
from meshgate.api.meta import Resource
from meshgate.api.problems import Problem
from meshgate.api.yamlsource import LineIndex, Path

R = TypeVar("R", bound=Resource)
T = TypeVar("T", bound=Resource)

INJECT = "sidecar.istio.io/inject"
AMBIENT_REDIRECTION = "ambient.istio.io/redirection"
DATAPLANE_MODE = "istio.io/dataplane-mode"
ROUTER_ANNOTATION = "meshgate.io/proxy-type"
PROXY_CONTAINER = "istio-proxy"


@dataclass(frozen=True)
class Entry(Generic[R]):
    resource: R
    file: str = ""
    lines: LineIndex | None = None
    implied: bool = False  # made up by analysis for a controller's output, not stored
    problems: tuple[Problem, ...] = ()  # decoding and validation findings, for schema.*

    @property
    def namespace(self) -> str:
        return self.resource.namespace

    @property
    def name(self) -> str:
        return self.resource.name

    @property
    def full_name(self) -> str:
        """``ns/name`` (``name`` for cluster-scoped kinds), as Istio names resources."""
        return f"{self.namespace}/{self.name}" if self.namespace else self.name

    @property
    def origin(self) -> str:
        return str(self.resource.key)

    @property
    def labels(self) -> dict[str, str]:
        return self.resource.labels

    @property
    def owned(self) -> bool:
        """Made by a controller (an owner reference), not written by a user."""
        return self.implied or bool(self.resource.metadata.owner_references)

    def line_of(self, path: Path = ()) -> int | None:
        if self.lines is None:
            return None
        if path:
            found = self.lines.line_of(path)
            if found is not None:
                return found
        return self.lines.line


@dataclass(frozen=True)
class Node:
    """A Kubernetes Node, as far as analysis cares (topology labels for subsets)."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)


def selects(selector: Mapping[str, str] | None, labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in (selector or {}).items())


def selector_string(selector: Mapping[str, str] | None) -> str:
    """Kubernetes' rendering of a label set selector: ``k1=v1,k2=v2``, keys sorted."""
    return ",".join(f"{k}={v}" for k, v in sorted((selector or {}).items()))


class AnalysisContext:
    """The resources of one run and the messages reported about them."""

    def __init__(
        self,
        entries: list[Entry[Resource]],
        nodes: list[Node] | None = None,
        skipped_kinds: set[str] | None = None,
    ) -> None:
        ordered = sorted(entries, key=lambda e: (e.namespace, e.name, e.resource.kind))
        self.entries = ordered
        # Kinds read but not modelled (EnvoyFilter...): an analyzer that would need
        # them stays silent rather than guess.
        self.skipped_kinds = set(skipped_kinds or ())
        self._by_type: dict[type, list[Entry[Resource]]] = defaultdict(list)
        for entry in ordered:
            self._by_type[type(entry.resource)].append(entry)
        self.nodes = {n.name: n for n in nodes or []}
        self.messages: list[Message] = []
        meshes = self.of(MeshConfig)
        self.mesh: MeshConfigSpec = meshes[0].resource.spec if meshes else MeshConfigSpec()
        self.namespaces = {e.name for e in self.of(Namespace)} | {
            e.namespace for e in ordered if e.namespace
        }

    def of(self, kind: type[T]) -> list[Entry[T]]:
        return self._by_type.get(kind, [])  # type: ignore[return-value]

    def exists(self, kind: type[Resource], namespace: str, name: str) -> bool:
        return any(e.namespace == namespace and e.name == name for e in self.of(kind))

    def find(self, kind: type[T], namespace: str, name: str) -> Entry[T] | None:
        for e in self.of(kind):
            if e.namespace == namespace and e.name == name:
                return e
        return None

    @property
    def root_namespace(self) -> str:
        return self.mesh.effective_root_namespace

    def report(
        self,
        entry: Entry[Any],
        mtype: MessageType,
        *args: object,
        path: Path = (),
        line: int | None = None,
    ) -> None:
        """Report about ``entry``; the line is ``line`` if given, else that of ``path``."""
        if entry.file and line is None:
            line = entry.line_of(path)
        self.messages.append(
            Message(
                mtype,
                entry.origin,
                entry.namespace,
                render(mtype, *args),
                entry.file,
                line if entry.file else None,
            )
        )

    # --- pods ---------------------------------------------------------------------------

    def pod_in_ambient(self, pod: Entry[Pod]) -> bool:
        """Istio ambient mode redirects this pod (no sidecar: sidecar policies do nothing)."""
        annotations = pod.resource.metadata.annotations or {}
        return annotations.get(AMBIENT_REDIRECTION) == "enabled"

    def namespace_in_ambient(self, namespace: str) -> bool:
        """An ambient namespace, unless sidecar injection (label or revision) wins there."""
        ns = self.find(Namespace, "", namespace)
        if ns is None:
            return False
        labels = ns.labels
        return (
            labels.get(DATAPLANE_MODE) == "ambient"
            and labels.get("istio-injection") != "enabled"
            and "istio.io/rev" not in labels
        )

    def pod_in_mesh(self, pod: Entry[Pod]) -> bool:
        """Does this pod run beside a proxy? meshgate injects unless told not to.

        A proxy container, a router annotation, the inject label or annotation, then the
        namespace's ``istio-injection`` label decide, in that order (Istio's order).
        """
        spec = pod.resource.spec
        containers = list(spec.containers) + list(spec.init_containers or [])
        if any(c.name == PROXY_CONTAINER and c.image for c in containers):
            return True
        annotations = pod.resource.metadata.annotations or {}
        if annotations.get(ROUTER_ANNOTATION) == "router":
            return True
        for source in (pod.labels, annotations):
            if INJECT in source:
                return source[INJECT] == "true"
        ns = self.find(Namespace, "", pod.namespace)
        if ns is not None and "istio-injection" in ns.labels:
            return ns.labels["istio-injection"] == "enabled"
        return True
