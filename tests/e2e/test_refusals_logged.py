"""Blocked traffic made visible: each refusal is in the refusing proxy's access log, with the
host and the reason in words in ``istio_policy_status`` (the seed's 24 keys, nothing more),
while the seed's own 301 line keeps ``istio_policy_status: null``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.meshctl import WALKTHROUGH, Mesh, retry

pytestmark = pytest.mark.e2e

ACCESS_LOG_ON = """apiVersion: meshgate.io/v1alpha1
kind: MeshConfig
metadata: {name: default}
spec:
  accessLogFile: /dev/stdout
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
"""

OUTSIDER = """apiVersion: v1
kind: Pod
metadata: {name: outsider, annotations: {sidecar.istio.io/inject: "false"}}
spec:
  containers: [{name: c, image: curl, command: [/bin/sleep, infinity]}]
"""

DENY_ADMIN = """apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: egressgateway}}
  action: DENY
  rules: [{to: [{operation: {paths: [/admin*]}}]}]
"""


def _entries(mesh: Mesh, namespace: str, pod: str) -> list[dict[str, object]]:
    out = mesh.meshgate("logs", "-n", namespace, pod, "-c", "istio-proxy").stdout
    return [json.loads(x) for x in out.splitlines() if x.startswith("{")]


def _entry(mesh: Mesh, namespace: str, pod: str, want: dict[str, object]) -> dict[str, object]:
    def find() -> dict[str, object] | None:
        for e in reversed(_entries(mesh, namespace, pod)):
            if all(e.get(k) == v for k, v in want.items()):
                return e
        return None

    ok, entry = retry(find, lambda e: e is not None, 15.0)
    assert ok and entry is not None, f"no line with {want}: {_entries(mesh, namespace, pod)}"
    assert len(entry) == 24, entry  # the seed's keys, exactly
    return entry


def _status(mesh: Mesh, pod: str, *args: str) -> str:
    proc = mesh.meshgate(
        "exec", pod, "--", "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
        "--max-time", "3", *args, check=False,
    )  # fmt: skip
    return proc.stdout.strip() or "000"


def _until(mesh: Mesh, pod: str, want: str, *args: str) -> None:
    ok, got = retry(lambda: _status(mesh, pod, *args), lambda c: c == want, 20.0)
    assert ok, f"{args}: wanted {want}, got {got}\n{mesh.log_tail()}"


def test_sidecar_refusals_name_host_reason_and_source(mesh: Mesh, tmp_path: Path) -> None:
    mesh.meshgate("apply", "-f", str(WALKTHROUGH / "1-sleep.yaml"))
    mesh.meshgate("apply", "-f", "-", input=ACCESS_LOG_ON)
    sleep = mesh.wait_pod("default", "sleep-")

    # REGISTRY_ONLY's 502, as the seed shows it, now says why in the sidecar's log.
    _until(mesh, sleep, "502", "http://www.aliyun.com/")
    entry = _entry(mesh, "default", sleep, {"authority": "www.aliyun.com", "response_code": 502})
    assert entry["route_name"] == "block_all"
    assert entry["istio_policy_status"] == (
        f"REGISTRY_ONLY: no ServiceEntry for www.aliyun.com (from default/{sleep})"
    )

    # A refused TLS connection: Istio logs "UH" and an IP (istio/istio#33281); here the SNI.
    _until(mesh, sleep, "000", "https://edition.cnn.com/")
    entry = _entry(
        mesh, "default", sleep,
        {"requested_server_name": "edition.cnn.com", "upstream_cluster": "BlackHoleCluster"},
    )  # fmt: skip
    reason = str(entry["istio_policy_status"])
    assert reason.startswith("REGISTRY_ONLY: no ServiceEntry for "), reason
    assert reason.endswith(f":443 (SNI edition.cnn.com) (from default/{sleep})"), reason


def test_gateway_refusals_name_host_reason_and_source(mesh: Mesh) -> None:
    for step in ("1-sleep.yaml", "3-serviceentry.yaml", "4-egress-gateway.yaml"):
        mesh.meshgate("apply", "-f", str(WALKTHROUGH / step))
    mesh.meshgate("apply", "-f", "-", input=OUTSIDER)
    sleep = mesh.wait_pod("default", "sleep-")
    outsider = mesh.wait_pod("default", "outsider")
    gw = mesh.wait_pod("istio-system", "istio-egressgateway-")

    # The seed's own line: 301 through the gateway, istio_policy_status null as in the seed.
    _until(mesh, sleep, "301", "http://aliyun.com/")
    entry = _entry(mesh, "istio-system", gw, {"authority": "aliyun.com", "response_code": 301})
    assert entry["istio_policy_status"] is None

    # A host no VirtualService binds to the gateway: 404 NR, and why.
    pods = json.loads(mesh.meshgate("get", "pods", "-n", "istio-system", "-o", "json").stdout)
    (gw_ip,) = [p["status"]["podIP"] for p in pods["items"] if p["metadata"]["name"] == gw]
    _until(mesh, outsider, "404", "-H", "Host: unbound.example", f"http://{gw_ip}/")
    entry = _entry(mesh, "istio-system", gw, {"authority": "unbound.example"})
    assert entry["response_flags"] == "NR"
    reason = str(entry["istio_policy_status"])
    assert reason.startswith("no route on gateway for host unbound.example (from 10.34."), reason

    # An AuthorizationPolicy's 403 names the policy.
    mesh.meshgate("apply", "-f", "-", input=DENY_ADMIN)
    _until(mesh, sleep, "403", "http://aliyun.com/admin")
    entry = _entry(mesh, "istio-system", gw, {"path": "/admin", "response_code": 403})
    reason = str(entry["istio_policy_status"])
    assert reason.startswith("denied by AuthorizationPolicy istio-system/deny-admin (from "), reason
    # The client sees the reply as before: Envoy's body, no trace of meshgate's header.
    out = mesh.meshgate(
        "exec", sleep, "--", "curl", "-si", "--max-time", "3", "http://aliyun.com/admin"
    ).stdout
    assert "x-meshgate-refused" not in out.lower() and out.rstrip().endswith("RBAC: access denied")
