"""The mesh's life cycle through the CLI: ``down`` leaves nothing, pods outlive a control-plane
restart, and ``down --force`` cleans up after ``kill -9``.

What "nothing" means: no network namespace, ``/etc/netns`` entry or runtime directory named
after this mesh, none of the processes that ran in its namespaces (sandboxes and a pod's PID
namespace holder included), no mount in the host's mount table that names the mesh, its
state or runtime directory, no proxy cgroup, no volume, and no control plane.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from meshgate.home import mesh_id, pid_file, run_dir
from meshgate.runtime.names import pod_id, pod_netns
from tests.e2e.meshctl import WALKTHROUGH, Mesh

pytestmark = pytest.mark.e2e


def _namespaces(mid: str) -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(f"mg-{mid}-")]


def _pids_in(namespaces: list[str]) -> set[int]:
    pids: set[int] = set()
    for ns in namespaces:
        out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout
        pids.update(int(p) for p in out.split())
    return pids


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes (its parent may not have reaped it yet).
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return "?"


def _control_plane_pid(mesh: Mesh) -> int:
    return int(pid_file(mesh.home).read_text().strip())


def _curl(mesh: Mesh, pod: str, want: str, timeout: float = 20.0) -> float:
    """Retry the seed's request until the status line starts with ``want``; seconds taken."""
    start = time.monotonic()
    last = ""
    while time.monotonic() - start < timeout:
        proc = mesh.meshgate(
            "exec", pod, "--", "curl", "-sS", "-I", "--max-time", "3", "aliyun.com", check=False
        )
        last = proc.stdout + proc.stderr
        if last.startswith(want):
            return time.monotonic() - start
        time.sleep(0.1)
    raise AssertionError(f"no {want!r} from {pod} in {timeout}s; last answer: {last!r}")


def _mounts(mid: str, home: Path) -> set[str]:
    """Mount points of the host's mount table that belong to this mesh (pods' sandboxes
    mount only in namespaces of their own: nothing of theirs may ever show here)."""
    marks = (f"mg-{mid}", str(home), str(run_dir(home)))
    points = set()
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4]
        if any(m in point for m in marks):
            points.add(point)
    return points


def _proxy_cgroup(mid: str) -> Path | None:
    from meshgate.runtime.capture import cgroup2_mount, cgroup_name

    mount = cgroup2_mount()
    return None if mount is None else mount / cgroup_name(mid)


SHARED = """apiVersion: v1
kind: Pod
metadata: {name: shared}
spec:
  shareProcessNamespace: true
  volumes: [{name: d, emptyDir: {}}]
  containers:
  - name: a
    image: busybox
    command: [/bin/sleep, infinity]
    volumeMounts: [{name: d, mountPath: /d}]
"""


def _assert_nothing_left(mesh: Mesh, mid: str, pids: set[int], mounts: set[str]) -> None:
    assert _namespaces(mid) == []
    assert _mounts(mid, mesh.home) - mounts == set()
    cgroup = _proxy_cgroup(mid)
    assert cgroup is None or not cgroup.exists(), f"{cgroup} left behind"
    assert not (mesh.home / "volumes").exists()
    assert not list(Path("/etc/netns").glob(f"mg-{mid}-*"))
    left = {p: _cmdline(p) for p in sorted(pids) if _alive(p)}
    assert left == {}, f"processes left behind: {left}"
    assert not run_dir(mesh.home).exists()
    assert not pid_file(mesh.home).exists()
    # No file lock or marker either: only the store, logs and an empty manifest stay.
    left_files = {p.name for p in mesh.home.rglob("*") if p.is_file()}
    assert not left_files & {"control-plane.lock", "manifest.lock", "dns.ready", "api-token"}


def test_down_leaves_nothing_and_is_idempotent(mesh: Mesh) -> None:
    mid = mesh_id(mesh.home)
    mounts = _mounts(mid, mesh.home)
    mesh.meshgate("apply", "-f", str(WALKTHROUGH / "1-sleep.yaml"))
    mesh.meshgate("apply", "-f", str(WALKTHROUGH / "4-egress-gateway.yaml"))
    mesh.wait_pod("default", "sleep-")
    mesh.wait_pod("istio-system", "istio-egressgateway-")
    namespaces = _namespaces(mid)
    # node, inet (the world), sleep and the gateway at least
    assert len(namespaces) >= 4, namespaces
    pids = _pids_in(namespaces) | {_control_plane_pid(mesh)}

    # `up` again is fine; asking for another world is refused, not silently ignored.
    assert "already running" in mesh.meshgate("up").stdout
    world = mesh.home.parent / "other-world.yaml"
    world.write_text("hosts:\n- names: [x.test]\n  address: 192.0.2.9\n  ports: [{port: 80}]\n")
    other = mesh.meshgate("up", "--world", str(world), check=False)
    assert other.returncode != 0
    assert "already runs" in other.stderr and "meshgate down" in other.stderr

    out = mesh.meshgate("down").stdout
    assert "stopped" in out
    _assert_nothing_left(mesh, mid, pids, mounts)

    again = mesh.meshgate("down")
    assert again.returncode == 0
    assert "nothing was running" in again.stdout
    status = mesh.meshgate("status", check=False)
    assert status.returncode != 0
    assert "meshgate up" in status.stderr


def test_pods_survive_a_control_plane_restart(mesh: Mesh) -> None:
    mesh.meshgate("apply", "-f", str(WALKTHROUGH / "1-sleep.yaml"))
    sleep = mesh.wait_pod("default", "sleep-")
    _curl(mesh, sleep, "HTTP/1.1 301")
    pods_before = mesh.meshgate("get", "pods", "-o", "name").stdout

    # SIGTERM stops the control plane but keeps pods and proxies (an upgrade, say).
    cp = _control_plane_pid(mesh)
    os.kill(cp, signal.SIGTERM)
    deadline = time.monotonic() + 20
    while _alive(cp) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(cp)
    assert mesh.meshgate("status", check=False).returncode != 0
    # The pod and its proxy still serve, with the last good configuration. (`meshgate exec`
    # asks the control plane where the pod lives, so enter its namespace directly.)
    ns = pod_netns(mesh_id(mesh.home), pod_id("default", sleep))
    proc = subprocess.run(
        ["ip", "netns", "exec", ns, "curl", "-sS", "-I", "--max-time", "3", "aliyun.com"],
        capture_output=True,
        text=True,
    )
    assert proc.stdout.startswith("HTTP/1.1 301"), proc.stdout + proc.stderr
    assert "server: envoy" in proc.stdout

    mesh.meshgate("up", "--world", "demo")
    assert mesh.meshgate("get", "pods", "-o", "name").stdout == pods_before
    assert mesh.wait_pod("default", "sleep-") == sleep
    # The app outlived the control plane too: never restarted (a sandbox does not die with
    # the process that started it).
    restarts = mesh.meshgate("get", "pod", sleep, "-o", "jsonpath={..restartCount}").stdout
    assert restarts.split() == ["0", "0"], restarts
    _curl(mesh, sleep, "HTTP/1.1 301")

    # The proxies resynced with the new control plane: a change reaches them.
    mesh.meshgate("apply", "-f", str(WALKTHROUGH / "2-registry-only.yaml"))
    _curl(mesh, sleep, "HTTP/1.1 502")


def test_down_after_kill_9(mesh: Mesh) -> None:
    mid = mesh_id(mesh.home)
    mounts = _mounts(mid, mesh.home)
    mesh.meshgate("apply", "-f", str(WALKTHROUGH / "1-sleep.yaml"))
    mesh.meshgate("apply", "-f", "-", input=SHARED)
    mesh.wait_pod("default", "sleep-")
    mesh.wait_pod("default", "shared")
    assert (mesh.home / "volumes").exists()
    namespaces = _namespaces(mid)
    cp = _control_plane_pid(mesh)
    pids = _pids_in(namespaces) | {cp}

    os.kill(cp, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while _alive(cp) and time.monotonic() < deadline:
        time.sleep(0.05)

    # Plain `down` is enough: nothing answers, so it cleans up from the manifest.
    out = mesh.meshgate("down").stdout
    assert "stopped" in out
    _assert_nothing_left(mesh, mid, pids, mounts)
