"""Kubernetes Services without a selector, ExternalName and headless Services, through real
sidecars: what a user of the sleep pod sees with ``curl`` and ``getent``, and what
``get endpoints`` prints."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.meshctl import WALKTHROUGH, Mesh, retry

pytestmark = pytest.mark.e2e

DATA = Path(__file__).parent / "data" / "kube-services.yaml"
ALIYUN_IP = "198.51.100.10"  # the demo world's aliyun.com


def _head(mesh: Mesh, pod: str, url: str) -> str:
    return mesh.curl(pod, "-sI", url, max_time=3).stdout


def _until(mesh: Mesh, pod: str, url: str, want: str, timeout: float = 30.0) -> str:
    ok, last = retry(lambda: _head(mesh, pod, url), lambda out: want in out, timeout)
    assert ok, f"{url} from {pod}: no {want!r} in:\n{last}\n{mesh.log_tail()}"
    return last


def test_selectorless_external_name_and_headless_services(mesh: Mesh) -> None:
    # REGISTRY_ONLY: only what the mesh knows is reachable, so an answer proves the route.
    mesh.meshgate(
        "apply",
        "-f",
        str(WALKTHROUGH / "1-sleep.yaml"),
        "-f",
        str(WALKTHROUGH / "2-registry-only.yaml"),
    )
    sleep = mesh.wait_pod("default", "sleep-")
    mesh.meshgate("apply", "-f", str(DATA))
    peers = [mesh.wait_pod("default", "peers-")]

    # A selector-less Service: its Endpoints name the world's aliyun.com; the sidecar's EDS
    # cluster dials it, and the user gets aliyun's own answer.
    out = _until(mesh, sleep, "http://legacy/", "301 Moved Permanently")
    assert "location: https://aliyun.com/" in out and "x-envoy-upstream-service-time" in out

    # ExternalName: DNS answers as kube-dns (CNAME to aliyun.com, then its address)...
    resolved = mesh.meshgate("exec", sleep, "--", "getent", "hosts", "aliyun-alias").stdout
    assert resolved.split()[0] == ALIYUN_IP, resolved
    # ...and, as an Istio alias, it is routed only where aliyun.com is: under REGISTRY_ONLY
    # without a ServiceEntry the request is refused...
    _until(mesh, sleep, "http://aliyun-alias.default.svc.cluster.local/", "502")
    # ...and with one, the alias's Host reaches aliyun.com's cluster.
    mesh.meshgate("apply", "-f", str(WALKTHROUGH / "3-serviceentry.yaml"))
    out = _until(mesh, sleep, "http://aliyun-alias.default.svc.cluster.local/", "301 Moved")
    assert "location: https://aliyun.com/" in out

    # Headless: DNS gives the ready pods' own addresses, and curl reaches one through the
    # sidecar's original-destination cluster.
    ok, table = retry(
        lambda: mesh.meshgate("get", "pods", "-o", "wide").stdout,
        lambda t: (
            sum(1 for line in t.splitlines() if line.startswith("peers-") and "Running" in line)
            == 2
        ),
        60,
    )
    assert ok, table
    pod_ips = sorted(line.split()[5] for line in table.splitlines() if line.startswith("peers-"))
    ok, answer = retry(
        lambda: mesh.meshgate("exec", sleep, "--", "getent", "ahostsv4", "peers").stdout,
        lambda a: sorted({line.split()[0] for line in a.splitlines()}) == pod_ips,
        30,
    )
    assert ok, f"peers resolves to {answer!r}, pods are {pod_ips}"
    _until(mesh, sleep, "http://peers:8080/", "200 OK")
    assert peers

    # get endpoints: kubectl's columns; the selector-less Service shows its object, the
    # headless one the pods meshgate computed.
    lines = mesh.meshgate("get", "endpoints").stdout.splitlines()
    assert lines[0].split() == ["NAME", "ENDPOINTS", "AGE"]
    rows = {line.split()[0]: line.split()[1] for line in lines[1:]}
    assert rows["legacy"] == f"{ALIYUN_IP}:80"
    assert sorted(rows["peers"].split(",")) == [f"{ip}:8080" for ip in pod_ips]
    assert "aliyun-alias" not in rows
