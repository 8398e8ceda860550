"""Several resources for one host, on real Envoy, as the reviewer drove it through the CLI:
two ServiceEntries for aliyun.com (ports merge, both work), two DestinationRules for the
egress gateway's host (the second's TLS policy takes effect), and the VIRTUAL SERVICE column
of ``proxy-config route``."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e.meshctl import WALKTHROUGH, Mesh, retry

pytestmark = pytest.mark.e2e

GW = "istio-egressgateway.istio-system.svc.cluster.local"
SE_HTTPS = """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: NAME}
spec:
  hosts: [aliyun.com]
  ports: [{number: 443, name: https, protocol: HTTPS}]
  resolution: DNS
  location: MESH_EXTERNAL
"""
FOR_CNN = f"""apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: egressgateway-for-cnn}}
spec:
  host: {GW}
  subsets: [{{name: cnn}}]
"""
TO_GATEWAY = f"""apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: to-gateway}}
spec:
  host: {GW}
  trafficPolicy: {{tls: {{mode: SIMPLE, insecureSkipVerify: true}}}}
"""


def _code(mesh: Mesh, pod: str, url: str) -> str:
    """The HTTP status curl got, or ``000`` (and curl's exit code) when there was none."""
    proc = mesh.meshgate(
        "exec", pod, "--", "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
        "--max-time", "5", url, check=False,
    )  # fmt: skip
    code = proc.stdout.strip()[-3:]
    return code if proc.returncode == 0 else f"{code} (curl exit {proc.returncode})"


def _until(mesh: Mesh, pod: str, url: str, code: str, timeout: float = 30.0) -> None:
    ok, last = retry(lambda: _code(mesh, pod, url), lambda c: c == code, timeout, 0.25)
    if not ok:
        raise AssertionError(f"{url}: wanted {code}, last answer {last}\n{mesh.log_tail()}")


def _cluster_ports(mesh: Mesh, pod: str, host: str) -> set[str]:
    table = mesh.meshgate("proxy-config", "cluster", pod, "--fqdn", host).stdout
    return {line.split()[1] for line in table.splitlines()[1:] if line.split()[3] == "outbound"}


def test_two_service_entries_for_one_host(mesh: Mesh) -> None:
    for step in ("1-sleep.yaml", "2-registry-only.yaml", "3-serviceentry.yaml"):
        mesh.meshgate("apply", "-f", str(WALKTHROUGH / step))
    sleep = mesh.wait_pod("default", "sleep-")
    _until(mesh, sleep, "http://aliyun.com/", "301")

    # Whichever side of the seed's entry the new name sorts on, both ports stay registered.
    for name in ("aliyun-https", "zz-https"):
        mesh.meshgate("apply", "-f", "-", input=SE_HTTPS.replace("NAME", name))
        _until(mesh, sleep, "https://aliyun.com/", "200")
        assert _code(mesh, sleep, "http://aliyun.com/") == "301", name
        assert _cluster_ports(mesh, sleep, "aliyun.com") == {"80", "443"}, name
        mesh.meshgate("delete", "serviceentry", name)
        _until(mesh, sleep, "https://aliyun.com/", "000 (curl exit 35)")
        assert _code(mesh, sleep, "http://aliyun.com/") == "301"

    # Without the seed's entry, port 80 is unregistered again while 443 still works.
    mesh.meshgate("apply", "-f", "-", input=SE_HTTPS.replace("NAME", "aliyun-https"))
    _until(mesh, sleep, "https://aliyun.com/", "200")
    mesh.meshgate("delete", "-f", str(WALKTHROUGH / "3-serviceentry.yaml"))
    _until(mesh, sleep, "http://aliyun.com/", "502")
    assert _code(mesh, sleep, "https://aliyun.com/") == "200"


def _cluster(mesh: Mesh, pod: str, name: str) -> dict[str, Any]:
    out = mesh.meshgate("proxy-config", "cluster", pod, "-o", "json").stdout
    for cluster in json.loads(out):
        if cluster.get("name") == name:
            return dict(cluster)
    raise AssertionError(f"no cluster {name} on {pod}")


def test_two_destination_rules_and_route_metadata(mesh: Mesh) -> None:
    for step in ("1-sleep.yaml", "2-registry-only.yaml", "3-serviceentry.yaml"):
        mesh.meshgate("apply", "-f", str(WALKTHROUGH / step))
    sleep = mesh.wait_pod("default", "sleep-")
    mesh.meshgate("apply", "-f", str(WALKTHROUGH / "4-egress-gateway.yaml"))
    mesh.wait_pod("istio-system", "istio-egressgateway-")
    _until(mesh, sleep, "http://aliyun.com/", "301")

    # The VIRTUAL SERVICE column names the VirtualService behind the mesh route.
    routes = mesh.meshgate("proxy-config", "route", sleep, "--name", "80").stdout
    rows = [line.split() for line in routes.splitlines()[1:]]
    assert any(r[1] == "aliyun.com:80" and r[-1] == "egressgateway-vs.default" for r in rows)
    assert any(r[1] == f"{GW}:80" and r[-1] == "-" for r in rows)

    # The egress doc's subset-only rule, then a second rule with a top-level TLS policy: the
    # policy applies to the gateway host (TLS against the plain-HTTP gateway: 503).
    mesh.meshgate("apply", "-f", "-", input=FOR_CNN)
    assert _code(mesh, sleep, "http://aliyun.com/") == "301"
    mesh.meshgate("apply", "-f", "-", input=TO_GATEWAY)
    _until(mesh, sleep, "http://aliyun.com/", "503")
    for name in (f"outbound|80||{GW}", f"outbound|80|cnn|{GW}"):
        socket = _cluster(mesh, sleep, name).get("transport_socket") or {}
        assert socket.get("name") == "envoy.transport_sockets.tls", name
