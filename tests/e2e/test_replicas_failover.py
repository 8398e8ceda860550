"""Two control-plane replicas on a three-member etcd (tests/etcd_cluster.py), driven
through the CLI. The first (the node owner, and leader) runs the seed walkthrough's steps
1, 3 and 4; a second replica starts later (the proxies, connected to the first, already
list its xDS socket). The leader is killed with SIGKILL under a steady curl loop through
the egress gateway: no request fails, the other replica leads within a few seconds, both
proxies reconnect to it, and a VirtualService change applied after the failover reaches
both (the sidecar's and the gateway's route each add a header the curl shows), in state
of the world and in delta ADS alike. The node
owner comes back and follows; the new leader killed in turn, it leads again; with both
killed, the proxies go on serving their last configuration."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from meshgate.home import mesh_id
from meshgate.runtime.pods import Runtime
from tests.e2e.conftest import _skip_reason
from tests.e2e.meshctl import WALKTHROUGH, Mesh, retry
from tests.etcd_cluster import etcd_cluster

pytestmark = pytest.mark.e2e

# The walkthrough's VirtualService, each route adding a response header: the sidecar's
# (gateways: mesh) and the egress gateway's (gateways: egress-gw).
VS_AFTER = """
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: egressgateway-vs
spec:
  hosts:
  - aliyun.com
  gateways:
  - egress-gw
  - mesh
  http:
  - match:
    - gateways:
      - mesh
      port: 80
    headers:
      response:
        add:
          x-sidecar-route: after-failover
    route:
    - destination:
        host: istio-egressgateway.istio-system.svc.cluster.local
        port:
          number: 80
      weight: 100
  - match:
    - gateways:
      - egress-gw
      port: 80
    headers:
      response:
        add:
          x-gateway-route: after-failover
    route:
    - destination:
        host: aliyun.com
        port:
          number: 80
      weight: 100
"""


# The walkthrough's MeshConfig (REGISTRY_ONLY: aliyun.com is registered by step 3) with
# an ADS flavour written out (delta is the default; SOTW the opt-out).
MESH_CONFIG = """\
apiVersion: meshgate.io/v1alpha1
kind: MeshConfig
metadata:
  name: default
spec:
  outboundTrafficPolicy:
    mode: REGISTRY_ONLY
  xdsMode: {mode}
"""


def _status(m: Mesh) -> dict[str, object]:
    proc = m.meshgate("status", "-o", "json", check=False)
    return json.loads(proc.stdout) if proc.returncode == 0 else {}


def _leading(m: Mesh) -> bool:
    replica = _status(m).get("replica")
    return isinstance(replica, dict) and replica.get("leading") is True


class CurlLoop:
    """``curl -I aliyun.com`` in the sleep pod, back to back, through ``via``'s API."""

    def __init__(self, via: Mesh, pod: str) -> None:
        self.via, self.pod = via, pod
        self.results: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            out = self.via.curl(self.pod, "-I", "aliyun.com")
            first = (out.stdout.splitlines() or [out.stderr.strip() or "(nothing)"])[0]
            self.results.append((time.monotonic(), first.strip()))

    def __enter__(self) -> CurlLoop:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(30)


def walkthrough(m: Mesh) -> tuple[str, str]:
    """The walkthrough's steps 1, 3 and 4 on ``m``: the sleep pod and the egress gateway
    (their names), once a request from the sleep pod gets aliyun.com's 301."""
    for step in ("1-sleep", "3-serviceentry", "4-egress-gateway"):
        m.meshgate("apply", "-f", str(WALKTHROUGH / f"{step}.yaml"))
    sleep = m.wait_pod("default", "sleep-")
    gateway = m.wait_pod("istio-system", "istio-egressgateway-")
    ok, last = retry(
        lambda: m.curl(sleep, "-I", "aliyun.com").stdout,
        lambda out: out.startswith("HTTP/1.1 301"),
        30,
    )
    assert ok, last
    return sleep, gateway


def _proxies(m: Mesh, asked: Mesh | None = None) -> list[str]:
    """The proxies connected to replica ``m``, as ``proxy-status`` on ``asked`` (any
    replica: it lists the mesh's proxies, each with the replica serving it). Connected is
    enough here; ``_type_states`` tells what each type shows."""
    out = json.loads((asked or m).meshgate("proxy-status", "-o", "json").stdout)
    me = mesh_id(m.home)
    return sorted(p["nodeId"] for p in out if p.get("controlPlane") == me and p["connected"])


def _type_states(m: Mesh) -> dict[str, set[str]]:
    """Per proxy connected to replica ``m``: the states of the types it was sent."""
    out = json.loads(m.meshgate("proxy-status", "-o", "json").stdout)
    me = mesh_id(m.home)
    return {
        p["nodeId"]: {str(t.get("state")) for t in (p.get("types") or {}).values()}
        for p in out
        if p.get("controlPlane") == me and p["connected"]
    }


def _led_at(m: Mesh) -> float:
    """When this replica's log says it became leader (the last time)."""
    import datetime

    lines = (m.home / "control-plane.log").read_text().splitlines()
    found = [x for x in lines if "leader election: this replica leads now" in x]
    assert found, m.log_tail()
    stamp = datetime.datetime.strptime(found[-1][:23], "%Y-%m-%d %H:%M:%S,%f")
    return stamp.timestamp()


def _pid(m: Mesh) -> int:
    return int((m.home / "control-plane.pid").read_text().strip())


def _netns_left(*homes: Path) -> list[str]:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [f"mg-{mesh_id(h)}" for h in homes if f"mg-{mesh_id(h)}" in listed]


@pytest.mark.parametrize("xds_mode", ["sotw", "delta"])
def test_leader_killed_under_traffic(tmp_path: Path, xds_mode: str) -> None:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    with etcd_cluster(members=3) as cluster:
        a, b = Mesh(tmp_path / "a"), Mesh(tmp_path / "b")
        try:
            a.meshgate("up", "--world", "demo", "--store", cluster.store_url)
            ok, _ = retry(lambda: _leading(a), bool, 10)
            assert ok, a.log_tail()
            # Before any pod: its proxies start with that ADS flavour.
            a.meshgate("apply", "-f", "-", input=MESH_CONFIG.format(mode=xds_mode.upper()))
            sleep, _ = walkthrough(a)
            modes = json.loads(a.meshgate("proxy-status", "-o", "json").stdout)
            assert {p["mode"] for p in modes} == {xds_mode}
            # Every proxy is on the only replica there is...
            assert len(_proxies(a)) == 2, a.meshgate("proxy-status").stdout

            # ... and a replica started later is one the proxies already list.
            b.meshgate("up", "--store", cluster.store_url)
            shown = b.meshgate("status").stdout
            assert f"leader:          {mesh_id(a.home)} (pid {_pid(a)}" in shown
            assert f"nodeOwner:     {mesh_id(a.home)} ({a.home.resolve()})" in shown
            assert "ownsNode:      False" in shown
            # Its proxy-status lists the mesh's proxies, served by the first replica.
            ok, seen = retry(lambda: _proxies(a, asked=b), lambda p: len(p) == 2, 10)
            assert ok, seen
            # It serves the API: the mesh's objects and pods, exec in them.
            pods = b.meshgate("get", "pods", "-A").stdout
            assert sleep in pods and "istio-egressgateway-" in pods
            assert b.curl(sleep, "-I", "aliyun.com").stdout.startswith("HTTP/1.1 301")
            # One CA for the mesh: the replica issues what the proxies trust, and shows
            # the same root (a rotation on either: tests/e2e/test_replicas_ca.py).
            assert a.meshgate("ca", "status").stdout == b.meshgate("ca", "status").stdout

            with CurlLoop(b, sleep) as loop:
                time.sleep(3)
                killed_at, killed_wall = time.monotonic(), time.time()
                os.kill(_pid(a), signal.SIGKILL)
                ok, _ = retry(lambda: _leading(b), bool, 15, interval=0.1)
                takeover = time.monotonic() - killed_at
                assert ok, b.log_tail()
                time.sleep(5)  # traffic goes on with the node owner gone
            led = _led_at(b) - killed_wall
            print(f"takeover after SIGKILL: {led:.2f}s in b's log, {takeover:.2f}s seen by status")
            assert 0 < led < 6, f"b led {led:.2f}s after the kill"
            assert takeover < 8, f"the replica took {takeover:.1f}s to lead"
            after = [r for t, r in loop.results if t > killed_at]
            assert len(after) >= 5, loop.results
            failed = [r for _, r in loop.results if not r.startswith("HTTP/1.1 301")]
            assert not failed, f"{len(failed)} of {len(loop.results)} failed: {failed[:5]}"
            assert f"leader:          {mesh_id(b.home)}" in b.meshgate("status").stdout
            # Both proxies moved to the replica left.
            ok, moved = retry(lambda: _proxies(b), lambda p: len(p) == 2, 15)
            assert ok, moved
            assert _proxies(a, asked=b) == []  # the dead replica's list went with its lease
            # Every type each proxy runs is SYNCED on the replica it moved to: in delta it
            # is sent nothing it already holds, only one response per type to ACK.
            ok, states = retry(
                lambda: _type_states(b),
                lambda s: len(s) == 2 and all(v == {"SYNCED"} for v in s.values()),
                15,
            )
            assert ok, f"{states}\n{b.meshgate('proxy-status').stdout}"

            # A change after the failover reaches both proxies, whichever replica each
            # was connected to.
            b.meshgate("apply", "-f", "-", input=VS_AFTER)

            def both_headers() -> str:
                return b.curl(sleep, "-I", "aliyun.com").stdout.lower()

            ok, last = retry(
                both_headers,
                lambda out: (
                    "x-sidecar-route: after-failover" in out
                    and "x-gateway-route: after-failover" in out
                ),
                20,
            )
            assert ok, f"the change did not reach both proxies:\n{last}\n{b.log_tail()}"
            assert last.startswith("http/1.1 301")

            # The node owner back (same state directory): it owns the node again, and
            # follows; the leader stays.
            a.meshgate("up", "--world", "demo", "--store", cluster.store_url)
            status = _status(a)
            replica = status.get("replica")
            assert isinstance(replica, dict) and replica["ownsNode"] is True
            assert replica["leading"] is False
            assert _leading(b)

            # The other way round: the leader (now without the node) killed, the node
            # owner leads again.
            killed_wall = time.time()
            os.kill(_pid(b), signal.SIGKILL)
            ok, _ = retry(lambda: _leading(a), bool, 15, interval=0.1)
            assert ok, a.log_tail()
            print(f"takeover back: {_led_at(a) - killed_wall:.2f}s in a's log")
            ok, moved = retry(lambda: _proxies(a), lambda p: len(p) == 2, 15)
            assert ok, moved

            # No replica at all: the proxies keep their last config (the change included).
            argv = Runtime(a.home).exec_argv(
                "default", sleep, ["curl", "-sS", "--max-time", "5", "-I", "aliyun.com"]
            )
            os.kill(_pid(a), signal.SIGKILL)
            for _ in range(5):
                time.sleep(1)
                out = subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout
                assert out.startswith("HTTP/1.1 301"), out
                assert "x-gateway-route: after-failover" in out.lower(), out
        finally:
            b.meshgate("down", check=False)
            a.meshgate("down", "--force", check=False)
        assert not _netns_left(a.home, b.home)
        from meshgate.home import run_dir

        assert not run_dir(a.home).exists() and not run_dir(b.home).exists()


def test_replica_listens_again_after_the_node_owners_down(tmp_path: Path) -> None:
    """The node owner's ``down`` removes its runtime directory, replica sockets included;
    the replica listens again, so the owner's next ``up`` starts proxies that reach both."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    import stat

    from meshgate.server.replicas import xds_slot_socket

    with etcd_cluster(members=1) as cluster:
        a, b = Mesh(tmp_path / "a"), Mesh(tmp_path / "b")
        try:
            a.meshgate("up", "--store", cluster.store_url)
            b.meshgate("up", "--store", cluster.store_url)
            slot = _status(b)["replica"]["xdsSlot"]  # type: ignore[index]
            sock = xds_slot_socket(mesh_id(a.home), int(slot))
            assert stat.S_ISSOCK(sock.stat().st_mode)
            a.meshgate("down")
            a.meshgate("up", "--store", cluster.store_url)
            ok, _ = retry(lambda: sock.exists() and stat.S_ISSOCK(sock.stat().st_mode), bool, 10)
            assert ok, b.log_tail()
            assert "listening again" in (b.home / "control-plane.log").read_text()
            # The mesh still works with both: a pod started now is served.
            a.meshgate("apply", "-f", str(WALKTHROUGH / "1-sleep.yaml"))
            sleep = a.wait_pod("default", "sleep-")
            stopped = b.meshgate("down").stdout
            assert stopped == (
                f"replica {mesh_id(b.home)} stopped; the mesh runs on (its node and pods "
                "belong to the node owner)\n"
            )
            assert sleep in a.meshgate("get", "pods").stdout
        finally:
            b.meshgate("down", check=False)
            a.meshgate("down", "--force", check=False)
        assert not _netns_left(a.home, b.home)
