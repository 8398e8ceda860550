"""Pods are sandboxes: an app, even as root with a container runtime's default capabilities,
sees neither the host, nor the mesh's state and sockets, nor other pods, nor its sidecar.

Every check is made from inside the seed's sleep pod with `meshgate exec`, as a user would.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest

from meshgate import home
from meshgate.home import mesh_id
from meshgate.runtime.names import pod_id, pod_netns
from tests.e2e.meshctl import WALKTHROUGH, Mesh, retry

pytestmark = pytest.mark.e2e

OTHER = """apiVersion: v1
kind: Pod
metadata: {name: other, annotations: {sidecar.istio.io/inject: "false"}}
spec:
  containers: [{name: other, image: busybox, command: [/bin/sleep, infinity]}]
"""


def _sh(mesh: Mesh, pod: str, script: str) -> tuple[int, str]:
    proc = mesh.meshgate("exec", pod, "--", "sh", "-c", script, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def _owner_pid(mesh: Mesh) -> int:
    data = json.loads((mesh.home / "runtime" / "manifest.json").read_text())
    return int(data["owner"]["pid"])


def test_an_app_sees_nothing_of_the_host_the_mesh_or_other_pods(mesh: Mesh) -> None:
    mesh.meshgate("apply", "-f", str(WALKTHROUGH / "1-sleep.yaml"))
    mesh.meshgate("apply", "-f", "-", input=OTHER)
    sleep = mesh.wait_pod("default", "sleep-")
    other = mesh.wait_pod("default", "other")
    assert _sh(mesh, sleep, "id -u")[1].strip() == "0"  # root, as an image without USER

    # The mesh's secrets: API token, store (every Secret), the world CA's key.
    world_key = mesh.home / "world" / "ca.key"
    assert world_key.exists()
    for path in (home.token_file(mesh.home), mesh.home / "store.db", world_key):
        code, out = _sh(mesh, sleep, f"cat {path}")
        assert code != 0, f"{path} readable from the pod: {out}"
    code, out = _sh(mesh, sleep, f"ls {mesh.home}")
    assert code != 0 and "No such file" in out, out

    # The control plane's sockets: API and xDS (which hands out keys over SDS).
    run = home.run_dir(mesh.home)
    for sock in (run / "api.sock", run / "xds" / "xds.sock"):
        assert sock.exists()
        code, out = _sh(mesh, sleep, f"curl -sS --max-time 2 --unix-socket {sock} http://x/")
        assert code != 0, f"{sock} reachable from the pod: {out}"
        assert "Couldn't connect" in out or "Failed to connect" in out, out

    # Processes: only the container's own; no Envoy, no control plane, nothing to signal.
    code, out = _sh(mesh, sleep, "ps -e -o pid=,comm=")
    assert code == 0, out
    comms = [line.split()[1] for line in out.splitlines() if line.strip()]
    assert "envoy" not in comms and not any("python" in c for c in comms), comms
    assert len(comms) <= 6, comms  # the sandbox's init, sleep, and this exec's sh and ps
    cp = _owner_pid(mesh)
    code, out = _sh(mesh, sleep, f"cat /proc/{cp}/cmdline; kill -0 {cp}")
    assert code != 0 and "meshgate" not in out, out

    # Files: the host's programs read-only, its private directories absent, /tmp private.
    code, out = _sh(mesh, sleep, "touch /usr/x")
    assert code != 0 and "Read-only file system" in out, out
    assert _sh(mesh, sleep, "ls -A /root") == (0, "")  # an empty home of its own
    code, out = _sh(mesh, sleep, "ls /home")
    assert code != 0 and "No such file" in out, out
    # What the host keeps from other users is masked (empty), as are other pods' files.
    assert "root:" in Path("/etc/shadow").read_text()
    code, out = _sh(mesh, sleep, "cat /etc/shadow")
    assert code != 0 and "root:" not in out, out
    assert _sh(mesh, sleep, "ls -A /etc/netns") == (0, "")
    marker = f"mg-sandbox-{uuid.uuid4().hex[:8]}"
    code, out = _sh(mesh, sleep, f"echo secret > /tmp/{marker} && cat /tmp/{marker}")
    assert (code, out.strip()) == (0, "secret"), out
    assert not (Path("/tmp") / marker).exists()
    code, out = _sh(mesh, other, f"test -e /tmp/{marker}")
    assert code != 0
    assert _sh(mesh, sleep, f"cat /tmp/{marker}")[1].strip() == "secret"  # exec sees the app's

    # Its own name, hosts and resolver.
    assert _sh(mesh, sleep, "hostname")[1].strip() == sleep
    assert _sh(mesh, sleep, "cat /etc/hostname")[1].strip() == sleep
    hosts = _sh(mesh, sleep, "cat /etc/hosts")[1]
    assert sleep in hosts, hosts
    assert "nameserver 10.34.0.1" in _sh(mesh, sleep, "cat /etc/resolv.conf")[1]


def _status(mesh: Mesh, pod: str, *prefix: str) -> str:
    proc = mesh.meshgate(
        "exec", pod, "--", *prefix, "curl", "-sS", "-I", "--max-time", "3", "http://aliyun.com/",
        check=False,
    )  # fmt: skip
    lines = (proc.stdout or proc.stderr).splitlines()
    return lines[0] if lines else ""


def test_an_app_that_takes_the_proxy_uid_is_still_captured(mesh: Mesh) -> None:
    mesh.meshgate("apply", "-f", str(WALKTHROUGH / "1-sleep.yaml"))
    mesh.meshgate("apply", "-f", str(WALKTHROUGH / "2-registry-only.yaml"))
    sleep = mesh.wait_pod("default", "sleep-")
    ok, last = retry(lambda: _status(mesh, sleep), lambda s: "502" in s, 20)
    assert ok, last
    for prefix in (
        ("setpriv", "--reuid=1337", "--regid=1337", "--clear-groups"),
        ("setpriv", "--regid=1337", "--clear-groups"),
        ("setpriv", "--reuid=1337"),
    ):
        # REGISTRY_ONLY's 502 from the sidecar, never the world's own 301.
        assert "502" in _status(mesh, sleep, *prefix), prefix


SHARED = """apiVersion: v1
kind: Pod
metadata: {name: pair, annotations: {sidecar.istio.io/inject: "false"}}
spec:
  %(share)s
  volumes: [{name: scratch, emptyDir: {}}, {name: fast, emptyDir: {medium: Memory}}]
  containers:
  - name: writer
    image: busybox
    command: [/bin/sleep, infinity]
    volumeMounts: [{name: scratch, mountPath: /out}, {name: fast, mountPath: /run/fast}]
  - name: reader
    image: busybox
    securityContext: {runAsUser: 1000}
    command: [/bin/sleep, "1000000"]
    volumeMounts: [{name: scratch, mountPath: /in, readOnly: true}]
"""


def _in(mesh: Mesh, pod: str, container: str, script: str) -> tuple[int, str]:
    proc = mesh.meshgate("exec", pod, "-c", container, "--", "sh", "-c", script, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def test_emptydir_volumes_are_shared_by_the_pods_containers_only(mesh: Mesh) -> None:
    mesh.meshgate("apply", "-f", "-", input=SHARED % {"share": ""})
    pod = mesh.wait_pod("default", "pair")
    assert _in(mesh, pod, "writer", "echo hi > /out/f && echo m > /run/fast/g")[0] == 0
    assert _in(mesh, pod, "reader", "cat /in/f") == (0, "hi\n")
    code, out = _in(mesh, pod, "reader", "touch /in/x")  # readOnly: true
    assert code != 0 and "Read-only file system" in out, out
    assert _in(mesh, pod, "reader", "id -u; ls /run") == (0, "1000\n")  # /run is its own
    # Each container has its own PID namespace: neither sees the other's sleep.
    assert "1000000" not in _in(mesh, pod, "writer", "ps -e -o args=")[1]
    # Nothing of the volumes outside the pod: gone with it.
    volumes = mesh.home / "volumes"
    assert any(volumes.rglob("f"))
    mesh.meshgate("delete", "pod", "pair")
    ok, _ = retry(lambda: list(volumes.rglob("f")), lambda found: not found, 30)
    assert ok


def test_share_process_namespace(mesh: Mesh) -> None:
    mesh.meshgate("apply", "-f", "-", input=SHARED % {"share": "shareProcessNamespace: true"})
    pod = mesh.wait_pod("default", "pair")
    # Both containers' processes, in one PID namespace, as in Kubernetes; still no host's.
    code, out = _in(mesh, pod, "writer", "ps -e -o args=")
    assert code == 0 and "sleep 1000000" in out and "sleep infinity" in out, out
    assert "envoy" not in out and "meshgate" not in out, out
    # A container restart keeps the namespace (its holder outlives the container).
    code, out = _in(mesh, pod, "writer", "kill $(pgrep -fx '/bin/sleep 1000000')")
    assert code == 0, out
    ok, last = retry(
        lambda: _in(mesh, pod, "writer", "ps -e -o args="),
        lambda r: r[1].count("sleep 1000000") == 1,
        40,
        0.5,
    )
    assert ok, last
    # Deleting the pod ends everything it ran: containers, the namespace's holder, execs.
    ns = pod_netns(mesh_id(mesh.home), pod_id("default", pod))
    out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout
    pids = [int(p) for p in out.split()]
    assert len(pids) >= 4, pids  # two sandboxes (bwrap, and its app) and the holder's
    mesh.meshgate("delete", "pod", pod)
    ok, alive = retry(lambda: [p for p in pids if Path(f"/proc/{p}").exists()], lambda a: not a, 30)
    assert ok, f"left behind: {alive}"
