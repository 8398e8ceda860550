"""Outbound capture rules as Istio's istio-iptables writes them, for each annotation
combination (ISTIO_OUTPUT -> MESHGATE_OUTPUT, ISTIO_REDIRECT -> MESHGATE_REDIRECT).

The expected lists follow istio-iptables' own golden files (tools/istio-iptables/pkg/
capture/testdata: ip-range, outbound-ports-include) with meshgate's chain names, its
cgroup exemption in place of Istio's uid/gid rules, and no DNS or loopback-inbound rules.
"""

# Case tables keep each case on one line.

from __future__ import annotations

from pathlib import Path

import pytest

from meshgate.api import annotations as a
from meshgate.runtime import capture

CGROUP = Path("/sys/fs/cgroup/mg-abc123-proxies")
HEAD = [
    "*nat",
    ":MESHGATE_OUTPUT - [0:0]",
    ":MESHGATE_REDIRECT - [0:0]",
    "-A MESHGATE_REDIRECT -p tcp -j REDIRECT --to-ports 15001",
    "-A OUTPUT -p tcp -j MESHGATE_OUTPUT",
]
EXEMPT = "-A MESHGATE_OUTPUT -p tcp -m cgroup --path /mg-abc123-proxies -j RETURN"
LOOPBACK = "-A MESHGATE_OUTPUT -d 127.0.0.1/32 -j RETURN"
ALL = "-A MESHGATE_OUTPUT -j MESHGATE_REDIRECT"


def outbound_lines(
    annotations: dict[str, str], mesh: a.MeshCaptureDefaults | None = None
) -> list[str]:
    text = capture.rules(CGROUP, None, a.outbound_capture(annotations, mesh))
    lines = text.splitlines()
    assert lines[: len(HEAD)] == HEAD and lines[-1] == "COMMIT"
    return lines[len(HEAD) : -1]


@pytest.mark.parametrize(
    ("annotations", "expected"),
    [
        # Istio's default (includeIPRanges "*"): everything else to the sidecar.
        ({}, [EXEMPT, LOOPBACK, ALL]),
        (
            {a.EXCLUDE_OUTBOUND_RANGES: "198.51.100.10/32,10.96.0.0/12"},
            [
                EXEMPT,
                LOOPBACK,
                "-A MESHGATE_OUTPUT -d 198.51.100.10/32 -j RETURN",
                "-A MESHGATE_OUTPUT -d 10.96.0.0/12 -j RETURN",
                ALL,
            ],
        ),
        (
            {a.INCLUDE_OUTBOUND_RANGES: "198.51.100.0/28"},
            [EXEMPT, LOOPBACK, "-A MESHGATE_OUTPUT -d 198.51.100.0/28 -j MESHGATE_REDIRECT"],
        ),
        # Empty include: nothing captured at all (only the exemptions are left).
        ({a.INCLUDE_OUTBOUND_RANGES: ""}, [EXEMPT, LOOPBACK]),
        # istio-iptables' "ip-range" case: excludes before includes.
        (
            {a.EXCLUDE_OUTBOUND_RANGES: "1.1.0.0/16", a.INCLUDE_OUTBOUND_RANGES: "9.9.0.0/16"},
            [
                EXEMPT,
                LOOPBACK,
                "-A MESHGATE_OUTPUT -d 1.1.0.0/16 -j RETURN",
                "-A MESHGATE_OUTPUT -d 9.9.0.0/16 -j MESHGATE_REDIRECT",
            ],
        ),
        # "outbound-ports-include": the ports are redirected in the order written, before
        # the (default) catch-all.
        (
            {a.INCLUDE_OUTBOUND_PORTS: "32000,31000"},
            [
                EXEMPT,
                LOOPBACK,
                "-A MESHGATE_OUTPUT -p tcp --dport 32000 -j MESHGATE_REDIRECT",
                "-A MESHGATE_OUTPUT -p tcp --dport 31000 -j MESHGATE_REDIRECT",
                ALL,
            ],
        ),
        # Only those ports captured: includeOutboundPorts with an empty range list.
        (
            {a.INCLUDE_OUTBOUND_PORTS: "80", a.INCLUDE_OUTBOUND_RANGES: ""},
            [EXEMPT, LOOPBACK, "-A MESHGATE_OUTPUT -p tcp --dport 80 -j MESHGATE_REDIRECT"],
        ),
        # Excluded ports come first of all, before the proxy's own exemption.
        (
            {a.EXCLUDE_OUTBOUND_PORTS: "22, 3306"},
            [
                "-A MESHGATE_OUTPUT -p tcp --dport 22 -j RETURN",
                "-A MESHGATE_OUTPUT -p tcp --dport 3306 -j RETURN",
                EXEMPT,
                LOOPBACK,
                ALL,
            ],
        ),
        # All four: Istio's order, host bits dropped from a CIDR, IPv6 left to ip6tables
        # (pods have no IPv6 address).
        (
            {
                a.INCLUDE_OUTBOUND_RANGES: "10.1.2.3/8,fd00::/8",
                a.EXCLUDE_OUTBOUND_RANGES: "10.9.0.0/16",
                a.INCLUDE_OUTBOUND_PORTS: "443",
                a.EXCLUDE_OUTBOUND_PORTS: "8080",
            },
            [
                "-A MESHGATE_OUTPUT -p tcp --dport 8080 -j RETURN",
                EXEMPT,
                LOOPBACK,
                "-A MESHGATE_OUTPUT -d 10.9.0.0/16 -j RETURN",
                "-A MESHGATE_OUTPUT -p tcp --dport 443 -j MESHGATE_REDIRECT",
                "-A MESHGATE_OUTPUT -d 10.0.0.0/8 -j MESHGATE_REDIRECT",
            ],
        ),
    ],
)
def test_outbound_rules_per_annotation(annotations: dict[str, str], expected: list[str]) -> None:
    assert outbound_lines(annotations) == expected


def test_mesh_defaults_apply_unless_the_pod_says_otherwise() -> None:
    mesh = a.MeshCaptureDefaults(include_ip_ranges="10.0.0.0/8", exclude_ip_ranges="10.9.0.0/16")
    assert outbound_lines({}, mesh) == [
        EXEMPT,
        LOOPBACK,
        "-A MESHGATE_OUTPUT -d 10.9.0.0/16 -j RETURN",
        "-A MESHGATE_OUTPUT -d 10.0.0.0/8 -j MESHGATE_REDIRECT",
    ]
    # A present annotation wins, even an empty one (Istio's `annotation` template function).
    own = {a.INCLUDE_OUTBOUND_RANGES: "*", a.EXCLUDE_OUTBOUND_RANGES: ""}
    assert outbound_lines(own, mesh) == [EXEMPT, LOOPBACK, ALL]
    # An empty mesh-wide include captures nothing (unset would be "*").
    assert outbound_lines({}, a.MeshCaptureDefaults(include_ip_ranges="")) == [EXEMPT, LOOPBACK]


def test_mesh_defaults_come_from_the_default_meshconfig() -> None:
    objs = [
        {
            "kind": "MeshConfig",
            "metadata": {"name": "other"},
            "spec": {"includeIPRanges": "1.0.0.0/8"},
        },
        {
            "kind": "MeshConfig",
            "metadata": {"name": "default"},
            "spec": {"excludeOutboundPorts": "22"},
        },
    ]
    assert a.mesh_capture_defaults(objs) == a.MeshCaptureDefaults(exclude_outbound_ports="22")
    assert a.mesh_capture_defaults([]) == a.MeshCaptureDefaults()


@pytest.mark.parametrize(
    ("annotations", "message"),
    [
        (
            {a.EXCLUDE_OUTBOUND_RANGES: "*"},
            r"annotation .*/excludeOutboundIPRanges: '\*' is not a CIDR",
        ),
        (
            {a.EXCLUDE_OUTBOUND_RANGES: "10.0.0.300/32"},
            r"excludeOutboundIPRanges: '10.0.0.300/32' is not a CIDR",
        ),
        (
            {a.INCLUDE_OUTBOUND_RANGES: "10.0.0.1"},
            r"includeOutboundIPRanges: '10.0.0.1' is not a CIDR .* or \*",
        ),
        (
            {a.INCLUDE_OUTBOUND_RANGES: "10.0.0.0/255.0.0.0"},
            r"includeOutboundIPRanges: '10.0.0.0/255.0.0.0'",
        ),
        ({a.INCLUDE_OUTBOUND_RANGES: "10.0.0.0/33"}, r"includeOutboundIPRanges: '10.0.0.0/33'"),
        ({a.INCLUDE_OUTBOUND_PORTS: "http"}, r"includeOutboundPorts: 'http' is not a port number"),
        ({a.EXCLUDE_OUTBOUND_PORTS: "0"}, r"excludeOutboundPorts: '0' is not a port number"),
        (
            {a.EXCLUDE_OUTBOUND_PORTS: "65536"},
            r"excludeOutboundPorts: '65536' is not a port number",
        ),
    ],
)
def test_bad_values_name_the_annotation_and_reason(
    annotations: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        a.outbound_capture(annotations)


def test_bad_mesh_value_names_the_meshconfig_field() -> None:
    with pytest.raises(ValueError, match=r"MeshConfig includeIPRanges: 'ten' is not a CIDR"):
        a.outbound_capture({}, a.MeshCaptureDefaults(include_ip_ranges="ten"))
