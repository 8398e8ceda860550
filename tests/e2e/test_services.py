"""Kubernetes Services as a user sees them: a cluster IP in `get svc` that DNS answers with,
and that works from a pod without a sidecar (kube-proxy's DNAT, in the node namespace) as
well as through a sidecar."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.meshctl import WALKTHROUGH, Mesh, retry

pytestmark = pytest.mark.e2e

WEB = Path(__file__).parent / "data" / "web.yaml"


def _http_code(mesh: Mesh, pod: str, url: str) -> str:
    proc = mesh.meshgate(
        "exec", pod, "--", "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
        "--max-time", "3", url, check=False,
    )  # fmt: skip
    return proc.stdout.strip()


def _until_200(mesh: Mesh, pod: str, url: str, timeout: float = 20.0) -> None:
    ok, code = retry(lambda: _http_code(mesh, pod, url), lambda c: c == "200", timeout)
    if not ok:
        raise AssertionError(f"{url} from {pod}: {code!r}")


def test_cluster_ip_with_and_without_sidecar(mesh: Mesh) -> None:
    mesh.meshgate("apply", "-f", str(WALKTHROUGH / "1-sleep.yaml"), "-f", str(WEB))
    plain = mesh.wait_pod("default", "plain-")
    sleep = mesh.wait_pod("default", "sleep-")
    mesh.wait_pod("default", "web-")

    svc = json.loads(mesh.meshgate("get", "svc", "web", "-o", "json").stdout)
    vip = svc["spec"]["clusterIP"]
    assert vip.startswith("10.96.")
    table = mesh.meshgate("get", "svc", "web").stdout.splitlines()
    assert table[1].split()[2] == vip
    resolved = mesh.meshgate("exec", plain, "--", "getent", "hosts", "web").stdout
    assert resolved.split()[0] == vip

    _until_200(mesh, plain, "http://web/")  # no sidecar: DNAT in the node
    _until_200(mesh, sleep, "http://web/")  # sidecar: EDS over the pod endpoints
    # Re-applying the manifests (no clusterIP in them) keeps the address.
    out = mesh.meshgate("apply", "-f", str(WEB)).stdout
    assert "service/web unchanged" in out
