"""The enforced exit: MeshConfig ``egressEnforcement: GATEWAY_ONLY`` lets only the egress
gateway out of the mesh, whatever a workload does to go around its sidecar.

Each escape a user would try is tried from inside pods with ``meshgate exec``: a pod without
a sidecar, an app that takes the proxy's uid, a UDP datagram, and a sidecar that passes a
request straight through (ALLOW_ANY). With ``OFF`` (the default) they all reach the world,
as on Istio; with ``GATEWAY_ONLY`` none does, while the seed's sleep pod still gets its 301
through the egress gateway.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshgate.home import mesh_id
from meshgate.runtime.names import inet_netns
from tests.e2e.meshctl import WALKTHROUGH, Mesh, retry

pytestmark = pytest.mark.e2e

CNN = "198.51.100.30"  # edition.cnn.com in the demo world; no VirtualService sends it anywhere
UDP_PORT = 5353

BARE = """apiVersion: v1
kind: Pod
metadata: {name: bare, annotations: {sidecar.istio.io/inject: "false"}, labels: {app: bare}}
spec:
  containers: [{name: bare, image: curlimages/curl, command: [/bin/sleep, infinity]}]
"""

MESH_CONFIG = """apiVersion: meshgate.io/v1alpha1
kind: MeshConfig
metadata: {{name: default}}
spec:
  egressEnforcement: {mode}
"""

# Kubernetes' way to let one workload out: an egress NetworkPolicy that allows the world.
LET_BARE_OUT = """apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: bare-may-leave}
spec:
  podSelector: {matchLabels: {app: bare}}
  policyTypes: [Egress]
  egress:
  - to: [{ipBlock: {cidr: 0.0.0.0/0}}]
"""

SETUID = ("setpriv", "--reuid=1337", "--regid=1337", "--clear-groups")

RECEIVER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
print("ready", flush=True)
while True:
    data, _ = s.recvfrom(512)
    with open(sys.argv[3], "ab") as f:
        f.write(data)
"""


@pytest.fixture
def udp_receiver(mesh: Mesh, tmp_path: Path) -> Iterator[Path]:
    """A UDP listener on a world address, in the mesh's own world namespace."""
    got = tmp_path / "udp.log"
    got.touch()
    argv = ["ip", "netns", "exec", inet_netns(mesh_id(mesh.home)), sys.executable, "-c"]
    proc = subprocess.Popen(
        [*argv, RECEIVER, CNN, str(UDP_PORT), str(got)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield got
    finally:
        proc.kill()  # our own child, by its pid
        proc.wait()


def status(mesh: Mesh, pod: str, url: str, *prefix: str) -> str:
    """The first line curl prints for ``url`` in ``pod`` (or its error)."""
    proc = mesh.meshgate(
        "exec", pod, "--", *prefix, "curl", "-sS", "-I", "--max-time", "4", url, check=False
    )
    lines = (proc.stdout or proc.stderr).splitlines()
    return lines[0] if lines else f"exit {proc.returncode}"


def send_udp(mesh: Mesh, pod: str, received: Path) -> bool:
    """Whether a datagram from ``pod`` to the world arrives (tried a few times)."""
    token = uuid.uuid4().hex
    script = f"echo {token} > /dev/udp/{CNN}/{UDP_PORT}"
    for _ in range(3):
        mesh.meshgate("exec", pod, "--", "bash", "-c", script, check=False)
        ok, _ = retry(lambda: token in received.read_text(), bool, 1.0, 0.1)
        if ok:
            return True
    return False


def escapes(mesh: Mesh, sleep: str) -> dict[str, str]:
    """What each way around the gateway reaches; a 301 is the world's answer."""
    return {
        "no sidecar": status(mesh, "bare", "http://aliyun.com/"),
        "no sidecar, raw IP": status(mesh, "bare", f"http://{CNN}/"),
        "uid 1337": status(mesh, sleep, "http://edition.cnn.com/", *SETUID),
        "passthrough": status(mesh, sleep, "http://edition.cnn.com/"),
        "passthrough, raw IP": status(mesh, sleep, f"http://{CNN}/"),
    }


def through_gateway(mesh: Mesh, sleep: str) -> str:
    return status(mesh, sleep, "http://aliyun.com/")


def test_gateway_only_leaves_the_gateway_as_the_only_exit(mesh: Mesh, udp_receiver: Path) -> None:
    for step in ("1-sleep.yaml", "3-serviceentry.yaml", "4-egress-gateway.yaml"):
        mesh.meshgate("apply", "-f", str(WALKTHROUGH / step))
    mesh.meshgate("apply", "-f", "-", input=BARE)
    sleep = mesh.wait_pod("default", "sleep-")
    mesh.wait_pod("default", "bare")
    mesh.wait_pod("istio-system", "istio-egressgateway-")

    # OFF, the default: as on Istio, every way around the gateway works.
    ok, seen = retry(
        lambda: escapes(mesh, sleep), lambda e: all("301" in s for s in e.values()), 30
    )
    assert ok, seen
    assert send_udp(mesh, sleep, udp_receiver)
    assert send_udp(mesh, "bare", udp_receiver)
    ok, last = retry(lambda: through_gateway(mesh, sleep), lambda s: "301" in s, 30)
    assert ok, last
    # ... and the mesh says so.
    analyze = mesh.meshgate("analyze", "-A", check=False).stdout
    assert "[MG2003]" in analyze and "egressEnforcement" in analyze, analyze

    # One line turns the exit on.
    mesh.meshgate("apply", "-f", "-", input=MESH_CONFIG.format(mode="GATEWAY_ONLY"))
    ok, seen = retry(
        lambda: escapes(mesh, sleep), lambda e: not any("301" in s for s in e.values()), 30
    )
    assert ok, seen
    # A refused connection fails at once: reset (no sidecar), or the sidecar's 503.
    assert "Couldn't connect" in seen["no sidecar"] or "reset" in seen["no sidecar"], seen
    assert seen["passthrough"].startswith("HTTP/1.1 503"), seen
    assert not send_udp(mesh, sleep, udp_receiver)
    assert not send_udp(mesh, "bare", udp_receiver)
    # The seed's path still works, and DNS still answers every pod.
    assert "301" in through_gateway(mesh, sleep)
    names = mesh.meshgate("exec", "bare", "--", "getent", "hosts", "aliyun.com", check=False)
    assert "198.51.100.10" in names.stdout, names.stdout + names.stderr
    assert "[MG2003]" not in mesh.meshgate("analyze", "-A", check=False).stdout

    # A pod is let out the Kubernetes way: an egress NetworkPolicy that allows the world.
    mesh.meshgate("apply", "-f", "-", input=LET_BARE_OUT)
    ok, last = retry(lambda: status(mesh, "bare", "http://aliyun.com/"), lambda s: "301" in s, 30)
    assert ok, last
    assert "301" not in status(mesh, sleep, "http://edition.cnn.com/")

    # A pod that comes later is held to it from its first packet; OFF opens the exit again.
    mesh.meshgate("delete", "networkpolicy", "bare-may-leave")
    ok, last = retry(
        lambda: status(mesh, "bare", "http://aliyun.com/"), lambda s: "301" not in s, 30
    )
    assert ok, last
    mesh.meshgate("apply", "-f", "-", input=MESH_CONFIG.format(mode="OFF"))
    ok, seen = retry(
        lambda: escapes(mesh, sleep), lambda e: all("301" in s for s in e.values()), 30
    )
    assert ok, seen
