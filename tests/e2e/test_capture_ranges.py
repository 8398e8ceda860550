"""Istio's outbound interception annotations, in real pods: what a pod's iptables leave out
of capture reaches the world directly, past its sidecar.

The mesh runs REGISTRY_ONLY with sidecar access logs on and the seed's sleep Service (an
HTTP port 80 in the mesh, so sidecars speak HTTP on port 80), so a captured request to an
unregistered host is the sidecar's 502 (and a log line), while an uncaptured one is the
world host's own answer (301 from aliyun.com's ``server: Tengine``, no ``x-envoy-*``) and
leaves no line in the sidecar's log.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from meshgate.home import mesh_id
from meshgate.runtime import names
from tests.e2e.meshctl import WALKTHROUGH, Mesh, retry

pytestmark = pytest.mark.e2e

ALIYUN = "198.51.100.10"  # aliyun.com in the demo world
CNN = "198.51.100.30"  # edition.cnn.com

MESH = """apiVersion: meshgate.io/v1alpha1
kind: MeshConfig
metadata: {name: default}
spec:
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
  accessLogFile: /dev/stdout
"""

POD = """apiVersion: v1
kind: Pod
metadata:
  name: %(name)s
  labels: {app: %(name)s}
  annotations: {%(annotations)s}
spec:
  containers: [{name: sleep, image: curlimages/curl, command: [/bin/sleep, infinity]}]
"""


def _start(mesh: Mesh, name: str, annotations: str) -> str:
    mesh.meshgate("apply", "-f", "-", input=POD % {"name": name, "annotations": annotations})
    return mesh.wait_pod("default", name)


def _head(mesh: Mesh, pod: str, host: str) -> str:
    return mesh.curl(pod, "-I", f"http://{host}/").stdout


def _status(head: str) -> str:
    return head.splitlines()[0].strip() if head else ""


def _sidecar_destinations(mesh: Mesh, pod: str) -> list[str]:
    """The original destination (address:port) of each connection the sidecar logged."""
    out = mesh.meshgate("logs", pod, "-c", "istio-proxy").stdout
    return [
        str(json.loads(line).get("downstream_local_address"))
        for line in out.splitlines()
        if line.startswith("{")
    ]


def test_excluded_and_included_ranges_decide_what_the_sidecar_sees(mesh: Mesh) -> None:
    mesh.meshgate("apply", "-f", str(WALKTHROUGH / "1-sleep.yaml"))
    mesh.meshgate("apply", "-f", "-", input=MESH)
    direct = _start(
        mesh, "direct", f"traffic.sidecar.istio.io/excludeOutboundIPRanges: '{ALIYUN}/32'"
    )
    only = _start(mesh, "only", f"traffic.sidecar.istio.io/includeOutboundIPRanges: '{CNN}/32'")

    # Captured: cnn is unregistered, so the pod with the exclusion gets the sidecar's 502.
    ok, head = retry(lambda: _head(mesh, direct, "edition.cnn.com"), lambda h: "502" in h, 20)
    assert ok, head
    assert _status(head) == "HTTP/1.1 502 Bad Gateway"
    # Excluded: aliyun.com answers itself, no proxy in between.
    head = _head(mesh, direct, "aliyun.com")
    assert _status(head) == "HTTP/1.1 301 Moved Permanently", head
    assert "server: Tengine" in head and "x-envoy" not in head

    # includeOutboundIPRanges: only cnn's address is captured (502), aliyun.com is not.
    ok, head = retry(lambda: _head(mesh, only, "edition.cnn.com"), lambda h: "502" in h, 20)
    assert ok, head
    head = _head(mesh, only, "aliyun.com")
    assert _status(head) == "HTTP/1.1 301 Moved Permanently", head
    assert "x-envoy" not in head

    # The sidecars logged the captured requests and nothing of the direct ones.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        seen = {pod: _sidecar_destinations(mesh, pod) for pod in (direct, only)}
        if all(f"{CNN}:80" in d for d in seen.values()):
            break
        time.sleep(0.3)
    for pod, destinations in seen.items():
        assert f"{CNN}:80" in destinations, (pod, destinations)
        assert f"{ALIYUN}:80" not in destinations, (pod, destinations)

    # The pod's own nat table holds Istio's rules under meshgate's chain names.
    ns = names.pod_netns(mesh_id(mesh.home), names.pod_id("default", direct))
    nat = subprocess.run(
        ["ip", "netns", "exec", ns, "iptables", "-t", "nat", "-S", "MESHGATE_OUTPUT"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert nat[-2:] == [
        f"-A MESHGATE_OUTPUT -d {ALIYUN}/32 -j RETURN",
        "-A MESHGATE_OUTPUT -j MESHGATE_REDIRECT",
    ]


def test_bad_annotation_is_refused_naming_it(mesh: Mesh) -> None:
    bad = POD % {
        "name": "bad",
        "annotations": "traffic.sidecar.istio.io/excludeOutboundIPRanges: '10.0.0.1'",
    }
    proc = mesh.meshgate("apply", "-f", "-", input=bad, check=False)
    assert proc.returncode == 1
    assert "MG1088" in proc.stderr + proc.stdout
    assert "excludeOutboundIPRanges: '10.0.0.1' is not a CIDR" in proc.stderr + proc.stdout
    assert "bad" not in mesh.meshgate("get", "pods").stdout
