"""Object metadata and the base every resource kind derives from.

Rules of this module:
- Python attributes are snake_case; YAML/JSON names are camelCase aliases, exactly as
  Kubernetes and Istio spell them. Models accept either name on input
  (``populate_by_name``) and always emit aliases (``to_wire``).
- ``ResourceKey`` (group, kind, namespace, name) identifies a resource everywhere: in the
  store, in the snapshot and in messages. Cluster-scoped kinds use namespace ``""``.
- The canonical wire form of a resource is ``to_wire()``: a JSON-compatible dict with
  ``None`` and empty defaults left out, so that ``get -o yaml`` then ``apply`` round-trips.
  ``to_wire_all`` converts a batch (an apply of thousands of documents) at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from meshgate.api.gcpause import paused_gc


class ResourceKey(NamedTuple):
    """The identity of a stored resource."""

    group: str
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind} {where}"


class Wire(BaseModel):
    """Base for every model that appears on the wire: camelCase aliases, strict fields."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        validate_assignment=False,
        frozen=False,
        # Build each model's validator on first use, not at import: a CLI run touches a
        # few of ~140 models, and building all of them cost ~0.3 s of every apply.
        defer_build=True,
    )

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class OpenWire(Wire):
    """A wire model that keeps fields it does not type (Kubernetes objects)."""

    model_config = ConfigDict(extra="allow")


class OwnerReference(OpenWire):
    api_version: str
    kind: str
    name: str
    uid: str = ""
    controller: bool | None = None


class ObjectMeta(OpenWire):
    name: str = ""
    generate_name: str | None = None
    namespace: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    uid: str | None = None
    resource_version: str | None = None
    generation: int | None = None
    creation_timestamp: str | None = None
    owner_references: list[OwnerReference] | None = None


class Resource(Wire):
    """Fields every kind shares. Subclasses add ``spec`` (or ``data``...) with a typed model."""

    api_version: str
    kind: str
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    status: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def namespace(self) -> str:
        return self.metadata.namespace or ""

    @property
    def group(self) -> str:
        return group_of(self.api_version)

    @property
    def key(self) -> ResourceKey:
        return ResourceKey(self.group, self.kind, self.namespace, self.name)

    @property
    def labels(self) -> dict[str, str]:
        return self.metadata.labels or {}


def to_wire_all(resources: Iterable[Resource]) -> list[dict[str, Any]]:
    """``to_wire()`` of many resources, with the cyclic collector paused for a large batch
    (see ``meshgate.api.gcpause``: it costs more than the conversion itself)."""
    items = list(resources)
    with paused_gc(len(items)):
        return [r.to_wire() for r in items]


def group_of(api_version: str) -> str:
    """``networking.istio.io/v1`` -> ``networking.istio.io``; ``v1`` -> ``""`` (core)."""
    return api_version.rsplit("/", 1)[0] if "/" in api_version else ""
