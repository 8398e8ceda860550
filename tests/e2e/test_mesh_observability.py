"""What a user sees beyond the seed's happy path: sidecar access logs switched on by the
MeshConfig, and the gateway's 404 ``NR`` for a host no VirtualService routes."""

from __future__ import annotations

import json
import time

import pytest

from tests.e2e.meshctl import WALKTHROUGH, Mesh

pytestmark = pytest.mark.e2e

ACCESS_LOG_ON = """apiVersion: meshgate.io/v1alpha1
kind: MeshConfig
metadata:
  name: default
spec:
  accessLogFile: /dev/stdout
  accessLogEncoding: JSON
"""


def _log_entries(mesh: Mesh, namespace: str, pod: str) -> list[dict[str, object]]:
    out = mesh.meshgate("logs", "-n", namespace, pod, "-c", "istio-proxy").stdout
    entries = []
    for line in out.splitlines():
        if line.startswith("{"):
            entries.append(json.loads(line))
    return entries


def _wait_entry(
    mesh: Mesh, namespace: str, pod: str, want: dict[str, object], timeout: float = 10.0
) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for e in reversed(_log_entries(mesh, namespace, pod)):
            if all(e.get(k) == v for k, v in want.items()):
                return e
        time.sleep(0.2)
    raise AssertionError(f"no log line with {want} in {namespace}/{pod}")


def test_sidecar_access_log_and_gateway_no_route(mesh: Mesh) -> None:
    mesh.meshgate("apply", "-f", str(WALKTHROUGH / "1-sleep.yaml"))
    mesh.meshgate("apply", "-f", "-", input=ACCESS_LOG_ON)
    sleep = mesh.wait_pod("default", "sleep-")

    # With accessLogFile set, the sidecar logs each request, in the same JSON shape.
    def curl(*args: str) -> str:
        return mesh.meshgate(
            "exec", sleep, "--", "curl", "-sS", "-I", "--max-time", "5", *args, check=False
        ).stdout

    # A request answered before the sidecar has the logging config is not logged: ask
    # again until a line shows (the logger also flushes on a one-second timer).
    deadline = time.monotonic() + 30
    want: dict[str, object] = {"authority": "aliyun.com", "upstream_cluster": "PassthroughCluster"}
    while True:
        curl("aliyun.com")
        try:
            entry = _wait_entry(mesh, "default", sleep, want, timeout=3.0)
            break
        except AssertionError:
            if time.monotonic() >= deadline:
                raise
    assert entry["response_code"] == 301
    assert entry["route_name"] == "allow_any"
    assert len(entry) == 24

    # The gateway answers 404 NR for a host no VirtualService binds to it.
    mesh.meshgate("apply", "-f", str(WALKTHROUGH / "4-egress-gateway.yaml"))
    gw = mesh.wait_pod("istio-system", "istio-egressgateway-")
    pods = json.loads(mesh.meshgate("get", "pods", "-n", "istio-system", "-o", "json").stdout)
    (gw_ip,) = [p["status"]["podIP"] for p in pods["items"] if p["metadata"]["name"] == gw]
    # Straight to the gateway pod (passthrough from the sidecar: no vhost for this host).
    target = f"http://{gw_ip}/"
    resp = ""
    deadline = time.monotonic() + 20
    while not resp.startswith("HTTP/1.1 404") and time.monotonic() < deadline:
        resp = curl("-H", "Host: unrouted.example", target)
        time.sleep(0.2)
    assert resp.startswith("HTTP/1.1 404"), resp
    entry = _wait_entry(mesh, "istio-system", gw, {"authority": "unrouted.example"})
    assert entry["response_code"] == 404
    assert entry["response_flags"] == "NR"
    assert entry["upstream_cluster"] is None
