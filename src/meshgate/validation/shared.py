"""Checks shared by several Istio kinds: destinations, selectors, exportTo, labels,
gateway references, durations.

Rules of this module: helpers take a ``Findings`` view already positioned at the
message they check and report with the codes of the rule table in ``rules``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from meshgate.api.kinds import istio_networking as net
from meshgate.validation import common as c
from meshgate.validation.findings import Findings


def duration(out: Findings, value: str | None, *path: str | int, allow_zero: bool = False) -> None:
    if value is not None:
        out.check("MG1044", c.duration_problem(value, allow_zero=allow_zero), *path)


def labels(out: Findings, values: Mapping[str, str] | None, *path: str | int) -> None:
    for reason in c.labels_problems(values):
        out.error("MG1048", reason, *path)


def selector(out: Findings, values: Mapping[str, str] | None, *path: str | int) -> None:
    """A workload selector that is present: valid labels, warned when it has none."""
    for reason in c.selector_problems(values):
        out.error("MG1049", reason, *path)
    if not values:
        out.warn("MG1049", "a workload selector without labels selects every workload", *path)


def export_to(
    out: Findings, namespace: str, values: Iterable[str] | None, *, service_entry: bool = False
) -> None:
    for reason in c.export_to_problems(namespace, values or [], service_entry=service_entry):
        out.error("MG1034", reason, "exportTo")


def subset_name(out: Findings, name: str, *path: str | int) -> None:
    if not name:
        out.error("MG1081", "subset name cannot be empty", *path)
    elif not c.is_dns1123_label(name):
        out.error("MG1081", f"subset name {name!r} is invalid: use a DNS label", *path)


def destination(out: Findings, dest: net.Destination) -> None:
    """Istio's validateDestination: a host (not ``*``), a subset name, a port."""
    if dest.host == "*":
        out.error("MG1002", 'invalid destination host "*"', "host")
    else:
        out.check("MG1001", c.wildcard_domain_problem(dest.host), "host")
    if dest.subset:
        subset_name(out, dest.subset, "subset")
    if dest.port is not None:
        out.check("MG1003", c.port_problem(dest.port.number or 0), "port", "number")


def gateway_names(out: Findings, names: list[str] | None) -> None:
    """``gateways`` entries: ``namespace/name`` (DNS labels) or a bare FQDN-like name."""
    for i, name in enumerate(names or []):
        namespace, slash, gw = name.partition("/")
        if not slash:
            if "." in name:
                parts = name.split(".")
                out.warn(
                    "MG1024",
                    f"legacy gateway name format {name!r}; prefer {parts[1]}/{parts[0]}",
                    i,
                )
            out.check("MG1024", c.fqdn_problem(name), i)
            # Istio stops at the first name without a namespace.
            return
        if not namespace or not gw:
            out.error("MG1024", "gateway namespace and name cannot be empty", i)
        if not c.is_dns1123_label(namespace):
            out.error("MG1024", f"invalid gateway namespace {namespace!r}", i)
        if not c.is_dns1123_label(gw):
            out.error("MG1024", f"invalid gateway name {gw!r}", i)


def addresses(out: Findings, values: Iterable[str] | None, *path: str | int) -> None:
    for i, value in enumerate(values or []):
        out.check("MG1017", c.subnet_problem(value), *path, i)
