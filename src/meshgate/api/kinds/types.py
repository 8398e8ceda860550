"""Field types and bases shared by every kind module.

Rules of this module:
- ``IstioWire`` is the base of nested Istio and meshgate models: strict types (a YAML
  string never silently becomes a number), unknown fields rejected, proto oneofs checked.
- ``KubeWire`` is the base of nested Kubernetes models: strict types for the fields we
  type, unknown fields kept (Kubernetes objects carry far more than we model).
- Durations stay strings on the wire (``"5s"``, ``"1.5s"``, ``"100ms"``, ``"1h30m"``, Go's
  ``time.ParseDuration`` syntax) so ``get -o yaml`` shows what the user wrote;
  ``parse_duration`` turns one into seconds for whoever needs the number.
- A oneof is declared once per class in ``_oneofs`` as ``(field names, required)``; it is
  checked after the fields validate, as protobuf does: at most one set, exactly one when
  ``required``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, ConfigDict, Field, model_validator

from meshgate.api.meta import OpenWire, Wire

UInt32 = Annotated[int, Field(ge=0, le=4294967295)]
Int32 = Annotated[int, Field(ge=-2147483648, le=2147483647)]

_DURATION = re.compile(r"^(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|ms|s|m|h))+$|^0$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def _check_duration(value: str) -> str:
    if not _DURATION.match(value):
        raise ValueError(
            f"invalid duration {value!r}: use a number with a unit, e.g. 5s, 1.5s, 100ms"
        )
    return value


Duration = Annotated[str, AfterValidator(_check_duration)]


def parse_duration(value: str) -> float:
    """Seconds in a duration string accepted by ``Duration`` (``"1m30s"`` -> 90.0)."""
    if value == "0":
        return 0.0
    _check_duration(value)
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(value))


class _OneofChecked:
    """Mixin: checks the ``_oneofs`` declared by a model class after validation."""

    _oneofs: ClassVar[tuple[tuple[tuple[str, ...], bool], ...]] = ()

    @model_validator(mode="after")
    def _check_oneofs(self) -> Any:
        for names, required in self._oneofs:
            present = [n for n in names if getattr(self, n) is not None]
            if len(present) > 1 or (required and not present):
                wire = ", ".join(_alias(type(self), n) for n in names)
                what = "exactly one" if required else "at most one"
                raise ValueError(f"{what} of {wire} may be set")
        return self


def _alias(cls: type, name: str) -> str:
    field = cls.model_fields[name]  # type: ignore[attr-defined]
    alias = field.alias
    return alias if isinstance(alias, str) else name


class IstioWire(_OneofChecked, Wire):
    """Nested model of an Istio or meshgate kind: strict, closed."""

    model_config = ConfigDict(strict=True)


class KubeWire(_OneofChecked, OpenWire):
    """Nested model of a Kubernetes kind: strict for typed fields, open for the rest."""

    model_config = ConfigDict(strict=True)


IntOrString = int | str
