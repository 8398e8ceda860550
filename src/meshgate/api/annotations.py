"""Istio pod annotations meshgate reads, parsed once for validation and the runtime.

Rules of this module:
- ``traffic.sidecar.istio.io/includeInboundPorts``: ``*`` (the default) captures every
  inbound TCP port to the sidecar, an empty value none, else a comma-separated port list;
  ``excludeInboundPorts`` takes ports out again. A value that is not a port number is a
  ``ValueError`` naming the annotation and the value.
- ``meshgate.io/xds-mode``: ``sotw`` or ``delta`` (any case), the ADS flavour of the pod's
  proxy, over MeshConfig ``xdsMode``; anything else is a ``ValueError``.
"""

from __future__ import annotations

from dataclasses import dataclass

INCLUDE_INBOUND = "traffic.sidecar.istio.io/includeInboundPorts"
EXCLUDE_INBOUND = "traffic.sidecar.istio.io/excludeInboundPorts"
XDS_MODE = "meshgate.io/xds-mode"
XDS_MODES = ("sotw", "delta")


@dataclass(frozen=True)
class InboundPorts:
    """Which inbound TCP ports go to the sidecar: ``include`` None is every port."""

    include: tuple[int, ...] | None = None
    exclude: tuple[int, ...] = ()

    @property
    def none(self) -> bool:
        return self.include == ()


def _port_list(value: str, annotation: str) -> tuple[int, ...]:
    ports = []
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        if not item.isdigit() or not 1 <= int(item) <= 65535:
            raise ValueError(f"annotation {annotation}: {item!r} is not a port number")
        ports.append(int(item))
    return tuple(sorted(set(ports)))


def inbound_ports(annotations: dict[str, str]) -> InboundPorts:
    """The inbound capture a pod's annotations ask for (ValueError names a bad one)."""
    include = annotations.get(INCLUDE_INBOUND, "*").strip()
    exclude = _port_list(annotations.get(EXCLUDE_INBOUND, ""), EXCLUDE_INBOUND)
    if include == "*":
        return InboundPorts(None, exclude)
    return InboundPorts(_port_list(include, INCLUDE_INBOUND), exclude)


def xds_mode(annotations: dict[str, str]) -> str | None:
    """The ADS flavour a pod's annotation asks for (None: the mesh's; ValueError: bad)."""
    value = annotations.get(XDS_MODE)
    if value is None:
        return None
    mode = value.strip().lower()
    if mode not in XDS_MODES:
        raise ValueError(f"annotation {XDS_MODE}: {value!r} is not one of sotw, delta")
    return mode
