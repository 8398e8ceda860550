"""Each proxy gets only what it uses (issue 14 part 4), on a real mesh: a sleep pod whose
Sidecar imports one host holds that host's cluster alone, however many ServiceEntries the
mesh has; traffic to it works, and a registered host it does not import is refused as
REGISTRY_ONLY refuses an unknown one (502)."""

from __future__ import annotations

import json

import pytest

from tests.e2e.meshctl import WALKTHROUGH, Mesh, retry

pytestmark = pytest.mark.e2e

MORE = """\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: cnn, namespace: default}
spec:
  hosts: [edition.cnn.com]
  location: MESH_EXTERNAL
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: elsewhere, namespace: istio-system}
spec:
  hosts: [other.example.com]
  location: MESH_EXTERNAL
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
"""

SIDECAR = """\
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: default}
spec:
  egress:
  - hosts: ["./aliyun.com"]
"""


def _outbound(mesh: Mesh, pod: str) -> set[str]:
    dump = json.loads(mesh.meshgate("proxy-config", "clusters", pod, "-o", "json").stdout)
    items = dump if isinstance(dump, list) else dump.get("items", [])
    return {c["name"] for c in items if str(c.get("name", "")).startswith("outbound|")}


def _status(mesh: Mesh, pod: str, host: str) -> str:
    out = mesh.curl(pod, "-s", "-o", "/dev/null", "-w", "%{http_code}", f"http://{host}/").stdout
    return out.strip()


def test_sidecar_scoped_pod_holds_and_reaches_only_its_hosts(mesh: Mesh) -> None:
    for step in ("1-sleep.yaml", "2-registry-only.yaml", "3-serviceentry.yaml"):
        mesh.meshgate("apply", "-f", str(WALKTHROUGH / step))
    mesh.meshgate("apply", "-f", "-", input=MORE)
    sleep = mesh.wait_pod("default", "sleep-")

    # Unscoped, the sleep pod holds every registered host and reaches both world hosts.
    ok, clusters = retry(
        lambda: _outbound(mesh, sleep), lambda c: "outbound|80||edition.cnn.com" in c, 30
    )
    assert ok, f"unscoped: {sorted(clusters)}"
    assert {"outbound|80||aliyun.com", "outbound|80||other.example.com"} <= clusters
    ok, code = retry(lambda: _status(mesh, sleep, "edition.cnn.com"), lambda s: s != "502", 20)
    assert ok, f"unscoped edition.cnn.com: {code}"

    mesh.meshgate("apply", "-f", "-", input=SIDECAR)
    ok, clusters = retry(
        lambda: _outbound(mesh, sleep), lambda c: c == {"outbound|80||aliyun.com"}, 30
    )
    assert ok, f"scoped to aliyun.com, the proxy holds: {sorted(clusters)}"
    ok, code = retry(lambda: _status(mesh, sleep, "aliyun.com"), lambda s: s == "301", 20)
    assert ok, f"aliyun.com through the scoped sidecar: {code}"
    # Registered but not imported: refused as REGISTRY_ONLY refuses an unregistered host
    # (the walkthrough's step 2 shows the same 502 for aliyun.com before its ServiceEntry).
    ok, code = retry(lambda: _status(mesh, sleep, "edition.cnn.com"), lambda s: s == "502", 20)
    assert ok, f"edition.cnn.com, not imported: {code}"
