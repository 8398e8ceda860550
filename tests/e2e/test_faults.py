"""Faults on the data path, on real Envoy: a killed proxy comes back at once, and with two
gateway replicas the death of one is invisible to a steady request loop."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from meshgate.runtime.manifest import Manifest
from tests.e2e.meshctl import WALKTHROUGH, Mesh, meshgate_argv, retry

pytestmark = pytest.mark.e2e


def proxy_pid(mesh: Mesh, namespace: str, pod: str) -> int | None:
    """The pid of the pod's running Envoy, from the runtime's manifest (read only)."""
    pods = Manifest(mesh.home).read()["sections"].get("pods", {})
    crec = pods.get(f"{namespace}/{pod}", {}).get("containers", {}).get("istio-proxy", {})
    return crec.get("pid") if crec.get("state") == "running" else None


def walkthrough(mesh: Mesh, replicas: int = 1) -> tuple[str, list[str]]:
    """The seed's walkthrough applied: (sleep pod, gateway pods) once 301 comes back."""
    for step in ("1-sleep.yaml", "2-registry-only.yaml", "3-serviceentry.yaml"):
        mesh.meshgate("apply", "-f", str(WALKTHROUGH / step))
    gw = (WALKTHROUGH / "4-egress-gateway.yaml").read_text()
    mesh.meshgate(
        "apply", "-f", "-", input=gw.replace("replicaCount: 1", f"replicaCount: {replicas}")
    )
    sleep = mesh.wait_pod("default", "sleep-")

    def ready_gateways() -> list[str]:
        out = mesh.meshgate("get", "pods", "-n", "istio-system", check=False).stdout
        rows = [line.split() for line in out.splitlines()[1:]]
        return [r[0] for r in rows if r[0].startswith("istio-egressgateway-") and r[1] == "1/1"]

    ok, gateways = retry(ready_gateways, lambda g: len(g) == replicas, 90)
    assert ok, f"{replicas} gateway replicas not ready: {gateways}\n{mesh.log_tail()}"
    ok, _ = retry(lambda: mesh.curl(sleep, "-sI", "aliyun.com").stdout, _is_301, 30)
    assert ok, mesh.log_tail()
    return sleep, gateways


def _is_301(out: str) -> bool:
    return out.startswith("HTTP/1.1 301")


def _children(pid: int) -> list[int]:
    try:
        tasks = Path(f"/proc/{pid}/task").iterdir()
        return [int(c) for t in tasks for c in (t / "children").read_text().split()]
    except OSError:
        return []


def envoy_of(leader: int) -> int:
    """The Envoy process itself, inside the container's sandbox (bwrap's descendants)."""
    todo = [leader]
    while todo:
        pid = todo.pop()
        if Path(f"/proc/{pid}/comm").read_text().strip() == "envoy":
            return pid
        todo.extend(_children(pid))
    raise AssertionError(f"no envoy under {leader}")


def kill_proxy(mesh: Mesh, namespace: str, pod: str) -> int:
    """`kill -9` of the pod's Envoy, as a user would do it; the container's recorded pid."""
    pid = proxy_pid(mesh, namespace, pod)
    assert pid is not None, f"{pod}: no running proxy"
    os.kill(envoy_of(pid), signal.SIGKILL)
    return pid


def recovered(mesh: Mesh, sleep: str, namespace: str, pod: str, old: int) -> float:
    """Seconds until the pod has a new Envoy and the sleep pod gets 301 again (60 at most)."""
    start = time.monotonic()

    def back() -> bool:
        pid = proxy_pid(mesh, namespace, pod)
        return pid not in (None, old) and _is_301(mesh.curl(sleep, "-I", "aliyun.com").stdout)

    ok, _ = retry(back, bool, 60, interval=0.1)
    assert ok, f"{pod} did not recover\n{mesh.log_tail()}"
    return time.monotonic() - start


def test_gateway_envoy_restarts_at_once_twice(mesh: Mesh) -> None:
    sleep, (gw,) = walkthrough(mesh, replicas=1)
    # The kubelet's back-off would hold the first restart 10 s and a second one 20 s; a
    # proxy that was serving comes back at once, both times (generous bound: no flakes).
    first = kill_proxy(mesh, "istio-system", gw)
    assert recovered(mesh, sleep, "istio-system", gw, first) < 10
    second = kill_proxy(mesh, "istio-system", gw)
    assert recovered(mesh, sleep, "istio-system", gw, second) < 10
    status = mesh.meshgate("get", "pod", "-n", "istio-system", gw, "-o", "json").stdout
    assert '"restartCount": 2' in status


def test_sidecar_envoy_restarts_at_once(mesh: Mesh) -> None:
    sleep, _ = walkthrough(mesh, replicas=1)
    old = kill_proxy(mesh, "default", sleep)
    assert recovered(mesh, sleep, "default", sleep, old) < 10


def test_one_of_two_gateway_replicas_killed_fails_no_request(mesh: Mesh) -> None:
    sleep, gateways = walkthrough(mesh, replicas=2)
    loop = (
        "for i in $(seq 300); do"
        " curl -s -o /dev/null -w '%{http_code}\\n' --max-time 5 aliyun.com; sleep 0.02; done"
    )
    proc = subprocess.Popen(
        [*meshgate_argv(), "exec", sleep, "--", "sh", "-c", loop],
        env=mesh.env, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    codes = []
    killed = None
    for line in proc.stdout:
        codes.append(line.strip())
        if len(codes) == 50:
            killed = kill_proxy(mesh, "istio-system", gateways[0])
    proc.wait(timeout=120)
    assert killed is not None and len(codes) == 300, codes
    failed = [c for c in codes if c != "301"]
    # The mesh's default retries (Istio's connect-failure, refused-stream... and meshgate's
    # reset-before-request) move every request to the other replica, also one dispatched on
    # a pooled connection to the Envoy the instant it died.
    assert not failed, f"{len(failed)} of 300 failed: {failed}\n{_gateway_failures(mesh)}"
    ok, _ = retry(
        lambda: proxy_pid(mesh, "istio-system", gateways[0]), lambda p: p not in (None, killed), 30
    )
    assert ok


def _gateway_failures(mesh: Mesh) -> str:
    """The sleep pod's sidecar log lines of failed requests (flags, upstream host), to say
    why a request failed when one does."""
    sleep = mesh.wait_pod("default", "sleep-")
    out = mesh.meshgate("logs", sleep, "-c", "istio-proxy", check=False).stdout
    return "\n".join(line for line in out.splitlines() if '"response_code":301' not in line)


CONFIG = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: default}
data: {mode: "%s"}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: external, namespace: default}
spec:
  hosts: [%s]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
"""


def _fill(path: Path) -> None:
    """Write zeros to `path` until its filesystem is full."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 65536)
    except OSError:
        pass
    try:
        while True:
            os.write(fd, b"\0" * 512)
    except OSError:
        pass
    finally:
        os.close(fd)


def test_a_full_state_filesystem_refuses_apply_and_loses_nothing(tmp_path: Path) -> None:
    from tests.e2e.conftest import _skip_reason

    if reason := _skip_reason():
        pytest.skip(reason)
    mnt = tmp_path / "state"
    mnt.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=32m,mode=0700", "tmpfs", str(mnt)], check=True
    )
    mesh = Mesh(mnt / "home")
    try:
        mesh.meshgate("up", "--world", "demo")
        mesh.meshgate("apply", "-f", "-", input=CONFIG % ("one", "a.example.com"))
        before = _stored(mesh)
        _fill(mnt / "filler")
        res = mesh.meshgate(
            "apply", "-f", "-", input=CONFIG % ("two", "b.example.com"), check=False
        )
        assert res.returncode != 0
        assert "filesystem is full" in res.stderr and "nothing was written" in res.stderr, (
            res.stderr
        )
        assert _stored(mesh) == before
        (mnt / "filler").unlink()  # space freed: the store holds exactly what it held
        assert _stored(mesh) == before
        mesh.meshgate("apply", "-f", "-", input=CONFIG % ("two", "b.example.com"))
        assert _stored(mesh) != before
    finally:
        mesh.meshgate("down", "--force", check=False)
        subprocess.run(["umount", str(mnt)], check=False)


def _stored(mesh: Mesh) -> list[object]:
    from meshgate.client import Client

    return list(Client(mesh.home).call("GET", "/v1/objects")["items"])


def test_the_dns_server_killed_comes_back(mesh: Mesh) -> None:
    sleep, _ = walkthrough(mesh, replicas=1)
    dns = Manifest(mesh.home).read()["processes"]["node/dns"]["pid"]
    os.kill(dns, signal.SIGKILL)
    start = time.monotonic()

    def resolves() -> bool:
        new = Manifest(mesh.home).read()["processes"]["node/dns"]["pid"]
        return new != dns and _is_301(mesh.curl(sleep, "-I", "aliyun.com").stdout)

    ok, _ = retry(resolves, bool, 60, interval=0.1)
    assert ok, mesh.log_tail()
    assert time.monotonic() - start < 10
