"""The uplink (issue 17): real egress through the network namespace ``meshgate up`` runs in.

The test plays the host in network namespaces of its own, never the machine's: ``HOST``
is where ``meshgate up --uplink`` runs (``ip netns exec``), with a default route to
``FAR``, which holds an upstream HTTP server and a DNS server on documentation addresses
(no world). ``FAR`` has no route back to the mesh or to the uplink's link network, so an
answer proves forwarding and source NAT in ``HOST``. The seed's steps 3 and 4 are written
for ``NAME``, which only that DNS server knows. Each test compares ``HOST``'s links,
addresses, routes, iptables rules and forwarding settings before and after ``down``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from meshgate.home import mesh_id
from meshgate.runtime.names import node_netns
from tests.e2e.conftest import _skip_reason
from tests.e2e.meshctl import WALKTHROUGH, Mesh, retry

pytestmark = pytest.mark.e2e

NAME = "upstream.meshgate-test"
OTHER = "other.meshgate-test"  # known to the DNS, registered by no ServiceEntry
HTTP_IP = "192.0.2.80"
DNS_IP = "192.0.2.53"
HOST_IP, FAR_IP = "192.0.2.1", "192.0.2.2"  # HOST <-> FAR link, 192.0.2.0/30
FAR_SCRIPT = Path(__file__).parent / "data" / "uplink_far.py"
HOSTS_OWN_RULE = ["-A", "POSTROUTING", "-p", "udp", "--dport", "9", "-j", "RETURN"]

BARE = """apiVersion: v1
kind: Pod
metadata: {name: bare, annotations: {sidecar.istio.io/inject: "false"}, labels: {app: bare}}
spec:
  containers: [{name: bare, image: curlimages/curl, command: [/bin/sleep, infinity]}]
"""
GATEWAY_ONLY = """apiVersion: meshgate.io/v1alpha1
kind: MeshConfig
metadata: {name: default}
spec:
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
  egressEnforcement: GATEWAY_ONLY
"""


def sh(*argv: str, check: bool = True) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=check).stdout


@dataclass
class Host:
    ns: str
    far: str


@pytest.fixture
def host() -> Iterator[Host]:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    tag = uuid.uuid4().hex[:6]
    h = Host(f"mgt{tag}-host", f"mgt{tag}-far")  # not "mg-<id>-": no mesh's names
    server: subprocess.Popen[str] | None = None
    try:
        for ns in (h.ns, h.far):
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            # No IPv6 on the test's links: its duplicate address detection would end on
            # its own between two snapshots (an address and a route that change alone).
            for key in ("all", "default"):
                sh(
                    "ip",
                    "netns",
                    "exec",
                    ns,
                    "sysctl",
                    "-qw",
                    f"net.ipv6.conf.{key}.disable_ipv6=1",
                )
        sh("ip", "-n", h.ns, "link", "add", "out0", "type", "veth",
           "peer", "name", "in0", "netns", h.far)  # fmt: skip
        sh("ip", "-n", h.ns, "addr", "add", f"{HOST_IP}/30", "dev", "out0")
        sh("ip", "-n", h.far, "addr", "add", f"{FAR_IP}/30", "dev", "in0")
        sh("ip", "-n", h.ns, "link", "set", "out0", "up")
        sh("ip", "-n", h.far, "link", "set", "in0", "up")
        sh("ip", "-n", h.ns, "route", "add", "default", "via", FAR_IP)
        for addr in (HTTP_IP, DNS_IP):
            sh("ip", "-n", h.far, "addr", "add", f"{addr}/32", "dev", "lo")
        # A rule of the host's own, which the uplink must leave alone.
        sh("ip", "netns", "exec", h.ns, "iptables", "-t", "nat", *HOSTS_OWN_RULE)
        server = subprocess.Popen(
            ["ip", "netns", "exec", h.far, sys.executable, str(FAR_SCRIPT),
             HTTP_IP, DNS_IP, NAME, OTHER],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        yield h
    finally:
        if server is not None:
            server.kill()  # our own child, by its pid
            server.wait()
        for ns in (h.ns, h.far):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


def snapshot(ns: str) -> dict[str, str]:
    """What the uplink may change in ``ns``, as text to compare."""
    ipt = sh("ip", "netns", "exec", ns, "iptables-save")
    sysctls = sh("ip", "netns", "exec", ns, "sysctl", "-a", check=False)
    return {
        "links": sh("ip", "-n", ns, "-d", "link"),
        "addresses": sh("ip", "-n", ns, "addr"),
        "routes": sh("ip", "-n", ns, "route", "show", "table", "all"),
        "iptables": "\n".join(x for x in ipt.splitlines() if not x.startswith("#")),
        "forwarding": "\n".join(x for x in sysctls.splitlines() if "forwarding" in x),
    }


def assert_same(before: dict[str, str], after: dict[str, str]) -> None:
    for key in before:
        assert after[key] == before[key], f"{key} differ:\n{before[key]}\n---\n{after[key]}"


def up(mesh: Mesh, *flags: str) -> None:
    mesh.meshgate("up", *flags)


def mesh_in(host: Host, tmp_path: Path) -> Mesh:
    return Mesh(tmp_path / "home", netns=host.ns)


def down_clean(mesh: Mesh) -> None:
    mesh.meshgate("down", check=False)
    left = sh("ip", "netns", "list")
    assert f"mg-{mesh_id(mesh.home)}" not in left, f"namespaces left behind: {left}"


def first_line(mesh: Mesh, pod: str, url: str) -> str:
    proc = mesh.meshgate(
        "exec", pod, "--", "curl", "-sS", "-I", "--max-time", "5", url, check=False
    )
    lines = (proc.stdout or proc.stderr).splitlines()
    return lines[0] if lines else f"exit {proc.returncode}"


def until(mesh: Mesh, pod: str, url: str, want: str, timeout: float = 30) -> str:
    ok, last = retry(lambda: first_line(mesh, pod, url), lambda s: s.startswith(want), timeout)
    assert ok, f"{url} from {pod}: wanted {want!r}, last {last!r}\n{mesh.log_tail()}"
    return last


def adapted(step: str) -> str:
    """A walkthrough manifest written for NAME instead of aliyun.com."""
    return (WALKTHROUGH / step).read_text().replace("aliyun.com", NAME)


def test_seed_walkthrough_through_the_uplink(host: Host, tmp_path: Path) -> None:
    before = snapshot(host.ns)
    mesh = mesh_in(host, tmp_path)
    try:
        up(mesh, "--uplink", "--dns-upstream", DNS_IP)
        status = mesh.meshgate("status").stdout
        assert "uplink:" in status and f"{DNS_IP}:53" in status, status
        url = f"http://{NAME}/"

        # Step 1, ALLOW_ANY: the sidecar passes the request through, out of the uplink.
        mesh.meshgate("apply", "-f", str(WALKTHROUGH / "1-sleep.yaml"))
        sleep = mesh.wait_pod("default", "sleep-")
        until(mesh, sleep, url, "HTTP/1.1 200")
        body = mesh.curl(sleep, url).stdout
        assert body == f"upstream says hi to {HOST_IP}\n"  # masqueraded by the host

        # Step 2, REGISTRY_ONLY: 502 from the sidecar.
        mesh.meshgate("apply", "-f", str(WALKTHROUGH / "2-registry-only.yaml"))
        until(mesh, sleep, url, "HTTP/1.1 502")

        # Step 3: a ServiceEntry (resolution DNS: Envoy resolves NAME through meshgate's
        # DNS, which forwards it to the test's resolver).
        mesh.meshgate("apply", "-f", "-", input=adapted("3-serviceentry.yaml"))
        until(mesh, sleep, url, "HTTP/1.1 200")

        # Step 4: through the egress gateway, whose log names the upstream's address.
        mesh.meshgate("apply", "-f", "-", input=adapted("4-egress-gateway.yaml"))
        gw = mesh.wait_pod("istio-system", "istio-egressgateway-")

        def gateway_line() -> dict[str, object] | None:
            first_line(mesh, sleep, url)
            out = mesh.meshgate("logs", "-n", "istio-system", gw, "-c", "istio-proxy").stdout
            lines = [json.loads(x) for x in out.splitlines() if NAME in x]
            return lines[-1] if lines else None

        ok, entry = retry(gateway_line, bool, 30, 0.5)
        assert ok and entry is not None, mesh.log_tail()
        assert entry["upstream_host"] == f"{HTTP_IP}:80"
        assert entry["upstream_cluster"] == f"outbound|80||{NAME}"
        assert entry["response_code"] == 200
        # An upstream name no ServiceEntry registers: 502, though its DNS knows it.
        until(mesh, sleep, f"http://{OTHER}/", "HTTP/1.1 502")

        # GATEWAY_ONLY: a pod without a sidecar reaches the upstream before, not after.
        mesh.meshgate("apply", "-f", "-", input=BARE)
        mesh.wait_pod("default", "bare")
        until(mesh, "bare", f"http://{HTTP_IP}/", "HTTP/1.0 200")  # the server itself
        mesh.meshgate("apply", "-f", "-", input=GATEWAY_ONLY)
        ok, last = retry(
            lambda: first_line(mesh, "bare", f"http://{HTTP_IP}/"),
            lambda s: not s.startswith("HTTP/"),
            30,
        )
        assert ok, f"a pod without a sidecar still reaches the upstream: {last}"
        until(mesh, sleep, url, "HTTP/1.1 200")  # the gateway still may
    finally:
        down_clean(mesh)
    assert_same(before, snapshot(host.ns))


def test_uplink_kept_by_later_up_and_undone_after_kill_9(host: Host, tmp_path: Path) -> None:
    before = snapshot(host.ns)
    mesh = mesh_in(host, tmp_path)
    try:
        up(mesh, "--uplink", "--dns-upstream", DNS_IP, "--uplink-cidr", "169.254.77.0/29")
        mesh.meshgate("down")
        assert_same(before, snapshot(host.ns))
        up(mesh)  # no flag: the state directory's config keeps the uplink
        status = json.loads(mesh.meshgate("status", "-o", "json").stdout)
        assert status["uplink"] and "169.254.77.1/29" in status["uplink"]["link"], status
        route = sh("ip", "-n", node_netns(mesh_id(mesh.home)), "route", "show", "default")
        assert "via 169.254.77.1" in route
        pid = int((mesh.home / "control-plane.pid").read_text())
        os.kill(pid, signal.SIGKILL)  # the control plane we started, by its pid
        retry(lambda: Path(f"/proc/{pid}").exists(), lambda alive: not alive, 10)
        assert snapshot(host.ns) != before  # the uplink outlives its control plane...
    finally:
        down_clean(mesh)
    assert_same(before, snapshot(host.ns))  # ...and `down` removes it from the manifest


def test_without_uplink_no_link_leaves_the_node(host: Host, tmp_path: Path) -> None:
    before = snapshot(host.ns)
    mesh = mesh_in(host, tmp_path)
    try:
        up(mesh)
        status = json.loads(mesh.meshgate("status", "-o", "json").stdout)
        assert status["uplink"] is None
        node = node_netns(mesh_id(mesh.home))
        assert sh("ip", "-n", node, "route", "show", "default") == ""
        assert_same(before, snapshot(host.ns))
    finally:
        down_clean(mesh)
