"""Incremental xDS (issue 14 part 3) with real Envoys: the seed walkthrough's mesh with
``xdsMode: DELTA`` (the default, written out) serves the same traffic, a new or changed
ServiceEntry sends each proxy only that ServiceEntry's resources, and a removed one is
removed from Envoy. ``xdsMode: SOTW`` (the opt-out) serves the walkthrough too."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.e2e.meshctl import WALKTHROUGH, Mesh, retry

pytestmark = pytest.mark.e2e

CDS = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
EDS = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"

# The walkthrough's MeshConfig (REGISTRY_ONLY) with delta ADS, applied before any pod.
MESH_CONFIG = """\
apiVersion: meshgate.io/v1alpha1
kind: MeshConfig
metadata:
  name: default
spec:
  outboundTrafficPolicy:
    mode: REGISTRY_ONLY
  xdsMode: DELTA
"""

PROBE = "delta-probe.example.com"


def probe_se(*addresses: str) -> str:
    endpoints = "".join(f"\n  - address: {a}" for a in addresses)
    return f"""\
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata:
  name: delta-probe
  namespace: default
spec:
  hosts: [{PROBE}]
  location: MESH_EXTERNAL
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  resolution: STATIC
  endpoints:{endpoints}
"""


def _proxies(mesh: Mesh) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = json.loads(mesh.meshgate("proxy-status", "-o", "json").stdout)
    return out


def _detail(mesh: Mesh, pod: str) -> dict[str, Any]:
    (one,) = json.loads(mesh.meshgate("proxy-status", pod, "-o", "json").stdout)
    detail: dict[str, Any] = one
    return detail


def _all_synced(proxies: list[dict[str, Any]]) -> bool:
    return bool(proxies) and all(
        p["connected"] and all(t["state"] == "SYNCED" for t in p["types"].values()) for p in proxies
    )


def _sends_since(detail: dict[str, Any], seen: set[str]) -> list[dict[str, Any]]:
    return [s for s in detail["recentSends"] if s["nonce"] not in seen]


def _synced_after(mesh: Mesh, pods: list[str], url: str, before: dict[str, str]) -> bool:
    proxies = _proxies(mesh)
    mine = [p for p in proxies if any(p["nodeId"].split("~")[2].startswith(x) for x in pods)]
    return _all_synced(mine) and all(
        p["types"][url]["ackedVersion"] != before[p["nodeId"]] for p in mine
    )


def _versions(mesh: Mesh, url: str) -> dict[str, str]:
    return {p["nodeId"]: p["types"][url]["ackedVersion"] for p in _proxies(mesh)}


def test_delta_proxies_serve_the_walkthrough_and_receive_only_what_changed(mesh: Mesh) -> None:
    mesh.meshgate("apply", "-f", "-", input=MESH_CONFIG)
    for step in sorted(WALKTHROUGH.glob("*.yaml")):
        if step.name != "2-registry-only.yaml":  # its MeshConfig is the one above
            mesh.meshgate("apply", "-f", str(step))
    sleep = mesh.wait_pod("default", "sleep-")
    gateway = mesh.wait_pod("istio-system", "istio-egressgateway-")
    ok, proxies = retry(lambda: _proxies(mesh), _all_synced, 60)
    assert ok, f"proxies never all SYNCED: {json.dumps(proxies)[:2000]}\n{mesh.log_tail()}"
    assert {p["mode"] for p in proxies} == {"delta"}, [p["mode"] for p in proxies]
    table = mesh.meshgate("proxy-status").stdout
    assert table.splitlines()[0].split()[9] == "MODE"
    assert all(" delta " in line for line in table.splitlines()[1:]), table

    # The walkthrough's traffic: aliyun.com through the egress gateway answers 301.
    ok, out = retry(lambda: mesh.curl(sleep, "-I", "aliyun.com").stdout, lambda o: " 301 " in o, 30)
    assert ok, f"no 301 through the gateway in delta mode: {out}\n{mesh.log_tail()}"
    assert re.search(r"(?im)^server: envoy", out)

    pods = [sleep, gateway]
    cluster = f"outbound|80||{PROBE}"

    def change(yaml: str | None, url: str) -> dict[str, list[dict[str, Any]]]:
        """Apply (or delete, with None) the probe; per proxy, the responses it got."""
        seen = {pod: {s["nonce"] for s in _detail(mesh, pod)["recentSends"]} for pod in pods}
        before = _versions(mesh, url)
        if yaml is None:
            mesh.meshgate("delete", "serviceentry", "delta-probe", "-n", "default")
        else:
            mesh.meshgate("apply", "-f", "-", input=yaml)
        ok, _ = retry(lambda: _synced_after(mesh, pods, url, before), bool, 30)
        assert ok, f"the change was not ACKed: {json.dumps(_proxies(mesh))[:2000]}"
        return {pod: _sends_since(_detail(mesh, pod), seen[pod]) for pod in pods}

    # A new ServiceEntry: its cluster, its endpoints and the route that names it; nothing
    # of aliyun.com or any other host goes out again.
    for pod, sends in change(probe_se("198.51.100.7"), CDS).items():
        by_type: dict[str, list[str]] = {}
        for s in sends:
            by_type.setdefault(s["type"], []).extend(s["resources"])
        assert by_type.get("CDS") == [cluster], (pod, sends)
        assert set(by_type.get("EDS", [])) <= {cluster}, (pod, sends)
        assert sum(s["bytes"] for s in sends) < 10_000, (pod, sends)
        assert all(not s["removed"] for s in sends), (pod, sends)
    rows = mesh.meshgate("proxy-config", "cluster", sleep, "--fqdn", PROBE).stdout.splitlines()
    assert len(rows) == 2 and rows[1].split()[0] == PROBE, rows

    # One more endpoint: that cluster's endpoints alone.
    for pod, sends in change(probe_se("198.51.100.7", "198.51.100.8"), EDS).items():
        assert [(s["type"], s["resources"]) for s in sends] == [("EDS", [cluster])], (pod, sends)
        assert sends[0]["bytes"] < 1_000, (pod, sends)

    # Removed: a removal, and the Envoys no longer have the cluster.
    for pod, sends in change(None, CDS).items():
        removed = {(s["type"], name) for s in sends for name in s["removed"]}
        assert ("CDS", cluster) in removed, (pod, sends)
        assert all(not s["resources"] or s["type"] in ("RDS", "LDS") for s in sends), sends
    for pod, ns in ((sleep, "default"), (gateway, "istio-system")):
        dump = mesh.meshgate("proxy-config", "cluster", pod, "-n", ns, "-o", "json").stdout
        assert PROBE not in dump and "aliyun.com" in dump, pod
    # Still serving the walkthrough's host.
    assert " 301 " in mesh.curl(sleep, "-I", "aliyun.com").stdout


def test_sotw_opt_out_serves_the_walkthrough(mesh: Mesh) -> None:
    mesh.meshgate("apply", "-f", "-", input=MESH_CONFIG.replace("DELTA", "SOTW"))
    for step in sorted(WALKTHROUGH.glob("*.yaml")):
        if step.name != "2-registry-only.yaml":  # its MeshConfig is the one above
            mesh.meshgate("apply", "-f", str(step))
    sleep = mesh.wait_pod("default", "sleep-")
    mesh.wait_pod("istio-system", "istio-egressgateway-")
    ok, proxies = retry(lambda: _proxies(mesh), _all_synced, 60)
    assert ok, f"proxies never all SYNCED: {json.dumps(proxies)[:2000]}\n{mesh.log_tail()}"
    assert {p["mode"] for p in proxies} == {"sotw"}, [p["mode"] for p in proxies]
    ok, out = retry(lambda: mesh.curl(sleep, "-I", "aliyun.com").stdout, lambda o: " 301 " in o, 30)
    assert ok, f"no 301 through the gateway in SotW mode: {out}\n{mesh.log_tail()}"
