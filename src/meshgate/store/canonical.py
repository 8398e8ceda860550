"""Pure rules for writing a wire dict into the store: identity, server fields, generation.

Rules of this module:
- No I/O, no clock, no randomness: the caller passes the revision, time and uid in, so the
  rules are tested without a database and every backend shares them.
- Input dicts are never mutated; the result shares nested values with the input, and only
  the top level and ``metadata`` are fresh copies (deep copies would dominate a bulk apply).
- ``unchanged`` means equal to the stored object once server-managed metadata and
  ``status`` are left out on both sides, so ``get -o yaml | apply`` writes nothing.
- ``generation`` moves only when something outside ``metadata`` and ``status`` changes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from meshgate.api.meta import ResourceKey, group_of
from meshgate.store.base import Action

SERVER_FIELDS = frozenset({"uid", "resourceVersion", "generation", "creationTimestamp"})
_OUTSIDE_SPEC = frozenset({"metadata", "status"})
# One encoder for all calls: json.dumps with options builds a new one each time.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def key_of(obj: Any, where: str = "object") -> ResourceKey:
    """The key of a wire dict; ValueError naming ``where`` if it has no usable identity."""
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(obj).__name__}")
    api_version, kind, meta = obj.get("apiVersion"), obj.get("kind"), obj.get("metadata")
    if not isinstance(api_version, str) or not api_version:
        raise ValueError(f"{where}: apiVersion must be a non-empty string")
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"{where}: kind must be a non-empty string")
    if not isinstance(meta, dict):
        raise ValueError(f"{where}: metadata must be a mapping with a name")
    name, namespace = meta.get("name"), meta.get("namespace") or ""
    if not isinstance(name, str) or not name:
        raise ValueError(f"{where}: metadata.name must be a non-empty string")
    if not isinstance(namespace, str):
        raise ValueError(f"{where}: metadata.namespace must be a string")
    return ResourceKey(group_of(api_version), kind, namespace, name)


def user_view(obj: dict[str, Any]) -> dict[str, Any]:
    """The object without ``status`` and without server-managed metadata."""
    out = {k: v for k, v in obj.items() if k != "status"}
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        out["metadata"] = {k: v for k, v in meta.items() if k not in SERVER_FIELDS}
    return out


def spec_view(obj: dict[str, Any]) -> dict[str, Any]:
    """Everything whose change bumps ``generation``."""
    return {k: v for k, v in obj.items() if k not in _OUTSIDE_SPEC}


def now_rfc3339(moment: datetime | None = None) -> str:
    """RFC 3339 UTC at second precision, as Kubernetes writes ``creationTimestamp``."""
    return (moment or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def to_json(obj: dict[str, Any], where: str = "object") -> str:
    """Compact JSON text; ValueError if the dict is not JSON-compatible."""
    try:
        return _ENCODER.encode(obj)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: not JSON-compatible: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Planned:
    """The outcome of writing one input object over the current stored state."""

    action: Action
    object: dict[str, Any]
    generation: int


@dataclass(frozen=True, slots=True)
class Current:
    """The stored state a write is planned against."""

    object: dict[str, Any]
    generation: int


def plan_write(
    current: Current | None, incoming: dict[str, Any], *, revision: int, now: str, uid: str
) -> Planned:
    """Decide created/configured/unchanged and build the object to store.

    ``revision``, ``now`` and ``uid`` are used only when the object is actually written
    (``uid`` and ``now`` only on create).
    """
    wanted = user_view(incoming)
    if current is None:
        meta = dict(wanted["metadata"])
        meta.update(uid=uid, resourceVersion=str(revision), generation=1, creationTimestamp=now)
        return Planned("created", {**wanted, "metadata": meta}, 1)
    if user_view(current.object) == wanted:
        return Planned("unchanged", current.object, current.generation)
    generation = current.generation
    if spec_view(current.object) != spec_view(wanted):
        generation += 1
    old_meta = current.object.get("metadata", {})
    meta = dict(wanted["metadata"])
    for field in ("uid", "creationTimestamp"):
        if field in old_meta:
            meta[field] = old_meta[field]
    meta.update(resourceVersion=str(revision), generation=generation)
    new = {**wanted, "metadata": meta}
    if "status" in current.object:
        new["status"] = current.object["status"]
    return Planned("configured", new, generation)


def with_status(obj: dict[str, Any], status: dict[str, Any], *, revision: int) -> dict[str, Any]:
    """The object with ``status`` replaced (removed if empty) and a new resourceVersion."""
    new = {k: v for k, v in obj.items() if k != "status"}
    new["metadata"] = {**obj.get("metadata", {}), "resourceVersion": str(revision)}
    if status:
        new["status"] = status
    return new
