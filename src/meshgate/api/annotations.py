"""Istio pod annotations meshgate reads, parsed once for validation and the runtime.

Rules of this module:
- ``traffic.sidecar.istio.io/includeInboundPorts``: ``*`` (the default) captures every
  inbound TCP port to the sidecar, an empty value none, else a comma-separated port list;
  ``excludeInboundPorts`` takes ports out again. A value that is not a port number is a
  ``ValueError`` naming the annotation and the value.
- ``meshgate.io/xds-mode``: ``sotw`` or ``delta`` (any case), the ADS flavour of the pod's
  proxy, over MeshConfig ``xdsMode``; anything else is a ``ValueError``.
- Outbound, as Istio's injector hands them to ``istio-iptables``:
  ``includeOutboundIPRanges`` is ``*`` (every destination), empty (none) or a
  comma-separated CIDR list; ``excludeOutboundIPRanges`` a CIDR list (``*`` is refused, as
  istio-iptables refuses it); ``includeOutboundPorts``/``excludeOutboundPorts`` port lists.
  A CIDR is an address with a prefix length (Go's ``netip.ParsePrefix``: ``10.0.0.0/8``,
  not a bare address or a netmask); host bits are dropped (``10.1.2.3/8`` is 10.0.0.0/8).
- The mesh-wide defaults (Istio's ``values.global.proxy.includeIPRanges`` and friends,
  kept in meshgate's MeshConfig) apply to a pod that does not carry the annotation; an
  annotation that is present wins, even when empty (Istio's injection template does the
  same with its ``annotation`` function).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

INCLUDE_INBOUND = "traffic.sidecar.istio.io/includeInboundPorts"
EXCLUDE_INBOUND = "traffic.sidecar.istio.io/excludeInboundPorts"
XDS_MODE = "meshgate.io/xds-mode"
XDS_MODES = ("sotw", "delta")
INCLUDE_OUTBOUND_RANGES = "traffic.sidecar.istio.io/includeOutboundIPRanges"
EXCLUDE_OUTBOUND_RANGES = "traffic.sidecar.istio.io/excludeOutboundIPRanges"
INCLUDE_OUTBOUND_PORTS = "traffic.sidecar.istio.io/includeOutboundPorts"
EXCLUDE_OUTBOUND_PORTS = "traffic.sidecar.istio.io/excludeOutboundPorts"
OUTBOUND_ANNOTATIONS = (
    INCLUDE_OUTBOUND_RANGES,
    EXCLUDE_OUTBOUND_RANGES,
    INCLUDE_OUTBOUND_PORTS,
    EXCLUDE_OUTBOUND_PORTS,
)


@dataclass(frozen=True)
class InboundPorts:
    """Which inbound TCP ports go to the sidecar: ``include`` None is every port."""

    include: tuple[int, ...] | None = None
    exclude: tuple[int, ...] = ()

    @property
    def none(self) -> bool:
        return self.include == ()


@dataclass(frozen=True)
class OutboundCapture:
    """Which outbound TCP connections go to the sidecar (istio-iptables' -i, -x, -q, -o):
    ``include_ranges`` None is ``*``, every destination; () is none."""

    include_ranges: tuple[str, ...] | None = None
    exclude_ranges: tuple[str, ...] = ()
    include_ports: tuple[int, ...] = ()
    exclude_ports: tuple[int, ...] = ()


@dataclass(frozen=True)
class MeshCaptureDefaults:
    """The mesh-wide values (as written, None when unset) that stand in for absent
    outbound annotations: MeshConfig includeIPRanges, excludeIPRanges,
    includeOutboundPorts, excludeOutboundPorts."""

    include_ip_ranges: str | None = None
    exclude_ip_ranges: str | None = None
    include_outbound_ports: str | None = None
    exclude_outbound_ports: str | None = None


def port_list(value: str, what: str) -> tuple[int, ...]:
    """A comma-separated port list (blanks ignored), in the order written, each once;
    ValueError names ``what``."""
    ports: list[int] = []
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        if not item.isdigit() or not 1 <= int(item) <= 65535:
            raise ValueError(f"{what}: {item!r} is not a port number")
        if int(item) not in ports:
            ports.append(int(item))
    return tuple(ports)


def _port_list(value: str, annotation: str) -> tuple[int, ...]:
    return tuple(sorted(port_list(value, f"annotation {annotation}")))


def cidr_list(value: str, what: str, wildcard: bool = False) -> tuple[str, ...] | None:
    """A comma-separated CIDR list in its masked form, in the order written; ``*`` (when
    ``wildcard``) is None, every address. ValueError names ``what`` and the bad item."""
    if wildcard and value.strip() == "*":
        return None
    out: list[str] = []
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        address, slash, length = item.partition("/")
        try:
            if not slash or not length.isdigit():
                raise ValueError
            net = ipaddress.ip_network(f"{address}/{int(length)}", strict=False)
        except ValueError:
            hint = " or *" if wildcard else ""
            raise ValueError(
                f"{what}: {item!r} is not a CIDR (an address and a prefix length, such as "
                f"10.0.0.0/8{hint})"
            ) from None
        if str(net) not in out:
            out.append(str(net))
    return tuple(out)


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


def check_outbound(key: str, value: str, what: str) -> None:
    """Parse one outbound setting (annotation ``key``'s syntax), ValueError naming ``what``."""
    if key == INCLUDE_OUTBOUND_RANGES:
        cidr_list(value, what, wildcard=True)
    elif key == EXCLUDE_OUTBOUND_RANGES:
        cidr_list(value, what)
    else:
        port_list(value, what)


def outbound_capture(
    annotations: dict[str, str], mesh: MeshCaptureDefaults | None = None
) -> OutboundCapture:
    """The outbound capture of a pod: its annotations, else the mesh-wide values, else
    Istio's defaults (``*``, nothing excluded). ValueError names the annotation (or the
    MeshConfig field) whose value is bad."""
    mesh = mesh or MeshCaptureDefaults()

    def pick(key: str, default: str | None, field: str) -> tuple[str, str]:
        if key in annotations:
            return annotations[key], f"annotation {key}"
        return default or "", f"MeshConfig {field}"

    everything = "*" if mesh.include_ip_ranges is None else mesh.include_ip_ranges
    value, what = pick(INCLUDE_OUTBOUND_RANGES, everything, "includeIPRanges")
    include = cidr_list(value, what, wildcard=True)
    value, what = pick(EXCLUDE_OUTBOUND_RANGES, mesh.exclude_ip_ranges, "excludeIPRanges")
    exclude = cidr_list(value, what)
    assert exclude is not None
    value, what = pick(INCLUDE_OUTBOUND_PORTS, mesh.include_outbound_ports, "includeOutboundPorts")
    include_ports = port_list(value, what)
    value, what = pick(EXCLUDE_OUTBOUND_PORTS, mesh.exclude_outbound_ports, "excludeOutboundPorts")
    exclude_ports = port_list(value, what)
    return OutboundCapture(include, exclude, include_ports, exclude_ports)


def mesh_capture_defaults(objects: Iterable[dict[str, Any]]) -> MeshCaptureDefaults:
    """The mesh-wide outbound values of the MeshConfig named default among stored wire
    objects (all unset when there is none)."""
    for obj in objects:
        if obj.get("kind") == "MeshConfig" and (obj.get("metadata") or {}).get("name") == "default":
            spec = obj.get("spec") or {}
            return MeshCaptureDefaults(
                spec.get("includeIPRanges"),
                spec.get("excludeIPRanges"),
                spec.get("includeOutboundPorts"),
                spec.get("excludeOutboundPorts"),
            )
    return MeshCaptureDefaults()
