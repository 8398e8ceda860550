"""Pushes only on change (issue 14 part 1), on a real mesh: with the walkthrough's mesh idle
the control plane's own counters show no xDS push and no translation, and one change
still reaches every proxy."""

from __future__ import annotations

import json
import os
import signal
import time
from typing import Any

import pytest

from tests.e2e.meshctl import WALKTHROUGH, Mesh, retry

pytestmark = pytest.mark.e2e

CDS = "type.googleapis.com/envoy.config.cluster.v3.Cluster"

EXTRA_SE = """\
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata:
  name: push-probe
  namespace: default
spec:
  hosts: [push-probe.example.com]
  location: MESH_EXTERNAL
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
"""


def _counters(mesh: Mesh) -> dict[str, Any]:
    status = json.loads(mesh.meshgate("status", "-o", "json").stdout)
    xds: dict[str, Any] = status["xds"]
    return xds


def _proxies(mesh: Mesh) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = json.loads(mesh.meshgate("proxy-status", "-o", "json").stdout)
    return out


def _all_synced(proxies: list[dict[str, Any]]) -> bool:
    return bool(proxies) and all(
        p["connected"] and all(t["state"] == "SYNCED" for t in p["types"].values()) for p in proxies
    )


def test_idle_mesh_pushes_nothing_and_a_change_reaches_every_proxy(mesh: Mesh) -> None:
    for step in sorted(WALKTHROUGH.glob("*.yaml")):
        mesh.meshgate("apply", "-f", str(step))
    mesh.wait_pod("default", "sleep-")
    mesh.wait_pod("istio-system", "istio-egressgateway-")
    ok, proxies = retry(lambda: _proxies(mesh), _all_synced, 60)
    assert ok, f"proxies never all SYNCED: {json.dumps(proxies)[:2000]}"
    assert len(proxies) >= 2  # the sleep pod's sidecar and the egress gateway

    # Settled: the counters stop moving once the last pod status has been written.
    state: dict[str, Any] = {"last": _counters(mesh), "since": time.monotonic()}

    def quiet_for_two_seconds() -> bool:
        now = _counters(mesh)
        if now != state["last"]:
            state.update(last=now, since=time.monotonic())
        return time.monotonic() - state["since"] >= 2.0

    ok, _ = retry(quiet_for_two_seconds, bool, 30, interval=0.5)
    assert ok, f"the control plane never came to rest: {state['last']}\n{mesh.log_tail()}"

    # At rest: over 5 s no push is requested or run, no proxy is translated, nothing sent.
    before = _counters(mesh)
    time.sleep(5)
    after = _counters(mesh)
    for counter in ("pushRequests", "pushes", "translations", "responses"):
        assert after[counter] == before[counter], f"{counter} moved at rest: {before} -> {after}"

    # One change still reaches every proxy: each one's CDS gets a new version, ACKed.
    cds_before = {p["nodeId"]: p["types"][CDS]["sentVersion"] for p in proxies}
    mesh.meshgate("apply", "-f", "-", input=EXTRA_SE)

    def every_proxy_has_it() -> list[dict[str, Any]]:
        return _proxies(mesh)

    def updated(now: list[dict[str, Any]]) -> bool:
        return _all_synced(now) and all(
            p["types"][CDS]["ackedVersion"] != cds_before.get(p["nodeId"]) for p in now
        )

    ok, proxies = retry(every_proxy_has_it, updated, 30)
    assert ok, f"the change did not reach every proxy: {json.dumps(proxies)[:2000]}"
    changed = _counters(mesh)
    assert changed["pushes"] > after["pushes"]
    assert changed["translations"] >= after["translations"] + len(proxies)


def _reconcile(mesh: Mesh) -> dict[str, int]:
    status = json.loads(mesh.meshgate("status", "-o", "json").stdout)
    counts: dict[str, int] = status["reconcile"]
    return counts


def _sleep_pod(mesh: Mesh) -> dict[str, Any]:
    pods = json.loads(mesh.meshgate("get", "pods", "-n", "default", "-o", "json").stdout)
    found: dict[str, Any] = next(
        p for p in pods["items"] if p["metadata"]["name"].startswith("sleep-")
    )
    return found


def _app_pid(mesh: Mesh, name: str) -> int:
    """The sleep container's process (its sandbox leader), from the runtime's manifest."""
    manifest = json.loads((mesh.home / "runtime" / "manifest.json").read_text())
    pid: int = manifest["sections"]["pods"][f"default/{name}"]["containers"]["sleep"]["pid"]
    return pid


def test_idle_mesh_runs_no_controller_but_still_notices_a_dead_container(mesh: Mesh) -> None:
    """At rest the reconcile passes go on (the runtime's supervision) but no controller
    works over the store; a container that dies is still noticed, restarted and shown."""
    mesh.meshgate("apply", "-f", str(WALKTHROUGH / "1-sleep.yaml"))
    mesh.wait_pod("default", "sleep-")
    state: dict[str, Any] = {
        "last": _reconcile(mesh)["controllerPasses"],
        "since": time.monotonic(),
    }

    def settled() -> bool:
        now = _reconcile(mesh)["controllerPasses"]
        if now != state["last"]:
            state.update(last=now, since=time.monotonic())
        return time.monotonic() - state["since"] >= 3.0

    ok, _ = retry(settled, bool, 30, interval=0.5)
    assert ok, f"controllers never came to rest\n{mesh.log_tail()}"
    before = _reconcile(mesh)
    time.sleep(3)
    after = _reconcile(mesh)
    assert after["passes"] > before["passes"], f"no reconcile pass ran: {before} -> {after}"
    assert after["controllerPasses"] == before["controllerPasses"], f"{before} -> {after}"

    pod = _sleep_pod(mesh)
    restarts = {c["name"]: c["restartCount"] for c in pod["status"]["containerStatuses"]}
    os.kill(_app_pid(mesh, pod["metadata"]["name"]), signal.SIGKILL)

    def restarted(p: dict[str, Any]) -> bool:
        counts = {c["name"]: c["restartCount"] for c in p["status"]["containerStatuses"]}
        return counts.get("sleep", 0) > restarts.get("sleep", 0)

    ok, pod = retry(lambda: _sleep_pod(mesh), restarted, 60, interval=0.5)
    assert ok, f"the dead container was not noticed: {json.dumps(pod['status'])}"
    assert _reconcile(mesh)["controllerPasses"] > after["controllerPasses"]
