"""The benchmarks' simulated xDS clients checked against real Envoys, and delta resume.

- A simulated client (benchmarks/xds_clients.py) given a real sidecar's identity (node id,
  cluster, metadata, credential) ends, by the control plane's own ACK state
  (`proxy-status POD -o json`), with the same types, subscribed names, resource counts
  and ACKed versions as that sidecar's Envoy, in state of the world and in delta.
- A delta proxy that reconnects after a control-plane restart lists what it holds
  (``initial_resource_versions``) and is sent nothing it already has: the new stream
  carries no resource but its workload certificate, which the new control plane issues
  afresh (empty responses otherwise, ACKed: SYNCED), and a fraction of the bytes of the
  first sync (the server's own per-stream counters).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
from typing import Any

import pytest
from benchmarks.xds_clients import Identity, SimClient

from meshgate.home import mesh_id
from meshgate.runtime.names import xds_socket
from meshgate.security import proxy_credentials
from tests.e2e.meshctl import WALKTHROUGH, Mesh, retry

pytestmark = pytest.mark.e2e


def mesh_config(mode: str) -> str:
    return f"""\
apiVersion: meshgate.io/v1alpha1
kind: MeshConfig
metadata:
  name: default
spec:
  outboundTrafficPolicy:
    mode: REGISTRY_ONLY
  xdsMode: {mode.upper()}
"""


def _detail(mesh: Mesh, pod: str) -> dict[str, Any]:
    """One proxy's proxy-status; {} while it is not connected (after a restart)."""
    proc = mesh.meshgate("proxy-status", pod, "-o", "json", check=False)
    if proc.returncode != 0:
        return {}
    (one,) = json.loads(proc.stdout)
    detail: dict[str, Any] = one
    return detail


def _synced(p: dict[str, Any]) -> bool:
    return bool(p.get("connected")) and all(t["state"] == "SYNCED" for t in p["types"].values())


def _walkthrough(mesh: Mesh, mode: str) -> str:
    """The seed walkthrough's mesh (sidecar, ServiceEntry, egress gateway with mTLS) with
    the given ADS flavour; returns the sleep pod's name once its proxy is SYNCED."""
    mesh.meshgate("apply", "-f", "-", input=mesh_config(mode))
    for step in sorted(WALKTHROUGH.glob("*.yaml")):
        if step.name != "2-registry-only.yaml":  # the MeshConfig above, with xdsMode
            mesh.meshgate("apply", "-f", str(step))
    sleep = mesh.wait_pod("default", "sleep-")
    ok, last = retry(lambda: _detail(mesh, sleep), _synced, 60)
    assert ok, f"the sleep proxy never SYNCED: {json.dumps(last)[:2000]}"
    assert last["mode"] == mode
    return sleep


def _bytes_but_sds(p: dict[str, Any]) -> int:
    """Bytes of the responses a stream was sent, certificates (SDS) aside."""
    assert p["sent"]["responses"] == len(p["recentSends"])  # every response is listed
    return sum(s["bytes"] for s in p["recentSends"] if s["type"] != "SDS")


class Running:
    """A SimClient served on an event loop of its own thread."""

    def __init__(self, client: SimClient) -> None:
        self.client = client
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_until_complete, args=(client.run(),), daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.client.stop)
        self.thread.join(10)
        self.loop.close()


def _comparable(p: dict[str, Any]) -> dict[str, Any]:
    return {
        url: (t["state"], t["ackedVersion"], t["resourceCount"], t.get("subscribedNames"))
        for url, t in p["types"].items()
    }


@pytest.mark.parametrize("mode", ["sotw", "delta"])
def test_a_simulated_client_acks_what_the_real_envoy_acks(mesh: Mesh, mode: str) -> None:
    sleep = _walkthrough(mesh, mode)
    real = _detail(mesh, sleep)
    key = proxy_credentials.key_path(mesh.home).read_bytes()
    node = real["nodeId"]
    identity = Identity(
        node,
        real["cluster"],
        real["metadata"],
        (proxy_credentials.HEADER, proxy_credentials.credential(key, node)),
    )
    target = f"unix:{xds_socket(mesh_id(mesh.home))}"
    sim = Running(SimClient(target, identity, mode))
    try:
        # The same node id: proxy-status now shows the newer stream, the simulated one.
        ok, seen = retry(
            lambda: _detail(mesh, sleep),
            lambda p: _synced(p) and p["connectedSince"] != real["connectedSince"],
            30,
        )
        assert ok, f"the simulated client never SYNCED: {json.dumps(seen)[:3000]}"
        assert sim.client.ready and sim.client.error is None
        assert _comparable(seen) == _comparable(real)
        for url, t in seen["types"].items():
            if t.get("subscribedNames") is not None:  # what it holds is what it asked for
                assert sorted(sim.client.types[url].held) == sorted(t["subscribedNames"])
    finally:
        sim.stop()
    # Gone again: the real Envoy's stream is shown, still SYNCED.
    ok, after = retry(
        lambda: _detail(mesh, sleep), lambda p: p["connectedSince"] == real["connectedSince"], 30
    )
    assert ok and _synced(after), json.dumps(after)[:2000]


def test_delta_resume_after_a_control_plane_restart_resends_nothing_held(mesh: Mesh) -> None:
    sleep = _walkthrough(mesh, "delta")
    first = _detail(mesh, sleep)
    assert any(s["resourceCount"] for s in first["recentSends"])

    # SIGTERM stops the control plane and keeps the pods and their proxies.
    pid = int((mesh.home / "control-plane.pid").read_text())
    os.kill(pid, signal.SIGTERM)  # the control plane this test started, by its pid
    deadline = time.monotonic() + 20
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.05)
    mesh.meshgate("up", "--world", "demo")

    ok, resumed = retry(
        lambda: _detail(mesh, sleep),
        lambda p: _synced(p) and p["connectedSince"] != first["connectedSince"],
        60,
    )
    assert ok, f"the proxy never resynced: {json.dumps(resumed)[:3000]}"
    sends = resumed["recentSends"]
    carried = {s["type"]: s["resources"] for s in sends if s["resources"]}
    # Only the workload certificate: a control plane issues its own (kept in memory), so
    # after a restart (or on another replica) the proxy's certificate is a new one.
    assert carried in ({}, {"SDS": ["default"]}), f"resent on resume: {carried}"
    assert {s["type"] for s in sends} >= {"CDS", "EDS", "LDS", "RDS"}
    # Apart from that certificate, a few hundred bytes where the first sync took KBs.
    resent, synced_first = _bytes_but_sds(resumed), _bytes_but_sds(first)
    assert resent * 20 < synced_first, (resumed["recentSends"], first["recentSends"])
    # The same versions ACKed as before the restart (the certificate's aside).
    same = {url: t for url, t in _comparable(resumed).items() if not url.endswith(".Secret")}
    assert same == {url: t for url, t in _comparable(first).items() if not url.endswith(".Secret")}
    # And the resumed stream still gets changes: a new ServiceEntry reaches it.
    mesh.meshgate("apply", "-f", "-", input=SE)
    ok, last = retry(
        lambda: _detail(mesh, sleep),
        lambda p: (
            _synced(p)
            and any("resume-probe" in n for s in p["recentSends"] for n in s["resources"])
        ),
        30,
    )
    assert ok, json.dumps(last)[:3000]


SE = """\
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata:
  name: resume-probe
  namespace: default
spec:
  hosts: [resume-probe.example.com]
  location: MESH_EXTERNAL
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 198.51.100.7}]
"""
