"""E2E through the CLI: namespaces keep same-named workloads apart, on real Envoy.

Rules: each test has its own mesh (the `mesh` fixture tears it down). Tests wait for a
state with a generous deadline; where a test shows that something does *not* happen, it
watches a few periodic reconcile passes (one a second) go by first.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

from tests.e2e.meshctl import WALKTHROUGH, Mesh, retry

pytestmark = pytest.mark.e2e
T = TypeVar("T")

OTHER = "apiVersion: v1\nkind: Namespace\nmetadata: {name: other}\n"
SLEEP = WALKTHROUGH / "1-sleep.yaml"
PASSES = 3.5  # seconds: three periodic reconcile passes and a half

# The Service gives the sidecars an HTTP listener on port 80 (so Envoy, not the world's
# server, answers with `server: envoy`), as sleep's does in the seed.
TWIN = """
apiVersion: v1
kind: Pod
metadata: {name: twin, labels: {app: twin}}
spec:
  containers: [{name: c, image: curl, command: ["/bin/sleep", "infinity"]}]
---
apiVersion: v1
kind: Service
metadata: {name: twin}
spec:
  selector: {app: twin}
  ports: [{name: http, port: 80}]
"""


def sleep_replicas(n: int) -> str:
    return SLEEP.read_text().replace("replicas: 1", f"replicas: {n}")


def eventually(mesh: Mesh, probe: Callable[[], T | None], what: str, timeout: float = 60) -> T:
    ok, last = retry(probe, lambda v: v is not None, timeout, interval=0.25)
    if not ok or last is None:
        pods = mesh.meshgate("get", "pods", "-A", check=False).stdout
        raise AssertionError(f"never reached: {what}\n{pods}\n{mesh.log_tail()}")
    return last


def items(mesh: Mesh, kind: str) -> dict[tuple[str, str], dict[str, Any]]:
    """(namespace, name) -> object, over every namespace."""
    out = json.loads(mesh.meshgate("get", kind, "-A", "-o", "json").stdout)
    return {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in out["items"]}


def pods_in(mesh: Mesh, namespace: str) -> dict[str, dict[str, Any]]:
    return {n: p for (ns, n), p in items(mesh, "pods").items() if ns == namespace}


def running(pod: dict[str, Any]) -> bool:
    status = pod.get("status") or {}
    containers = status.get("containerStatuses") or []
    return status.get("phase") == "Running" and all(c.get("ready") for c in containers)


def deploy_ready(mesh: Mesh) -> dict[str, str]:
    """NAMESPACE -> READY of the sleep Deployments, as `get deploy -A` shows them."""
    lines = mesh.meshgate("get", "deploy", "-A").stdout.splitlines()[1:]
    return {cols[0]: cols[2] for cols in (line.split() for line in lines) if cols[1] == "sleep"}


def curl_301(mesh: Mesh, namespace: str, pod: str) -> None:
    """Through the pod's own sidecar (real Envoy) to the demo world, as the seed's step 1."""

    def probe() -> str | None:
        out = mesh.meshgate(
            "exec",
            "-n",
            namespace,
            pod,
            "--",
            "curl",
            "-sSI",
            "--max-time",
            "5",
            "aliyun.com",
            check=False,
        ).stdout
        return out if out.startswith("HTTP/1.1 301") else None

    resp = eventually(mesh, probe, f"301 through the sidecar of {namespace}/{pod}", timeout=20)
    assert "server: envoy" in resp.lower()


def untouched(mesh: Mesh, namespace: str, before: dict[str, dict[str, Any]]) -> None:
    """``namespace``'s pods stay those of ``before`` (same names and uids, running, never
    restarted) while a few reconcile passes go by, and the log shows none stopped."""
    mark = len(mesh.log_tail(n=1_000_000).splitlines())
    time.sleep(PASSES)
    after = pods_in(mesh, namespace)
    uids = {n: p["metadata"]["uid"] for n, p in after.items()}
    assert uids == {n: p["metadata"]["uid"] for n, p in before.items()}, after
    assert all(running(p) for p in after.values()), after
    new_lines = mesh.log_tail(n=1_000_000).splitlines()[mark:]
    touched = [line for line in new_lines if f" pod {namespace}/" in line.lower()]
    assert not touched, "\n".join(touched)


def test_same_named_deployments_scale_independently(mesh: Mesh) -> None:
    mesh.meshgate("apply", "-f", "-", input=OTHER)
    mesh.meshgate("apply", "-f", str(SLEEP))
    mesh.meshgate("apply", "-n", "other", "-f", str(SLEEP))
    default_pod = mesh.wait_pod("default", "sleep-")
    other_pod = mesh.wait_pod("other", "sleep-")
    eventually(
        mesh,
        lambda: True if deploy_ready(mesh) == {"default": "1/1", "other": "1/1"} else None,
        "both sleep Deployments 1/1",
    )
    # Each pod is owned, by uid, by the Deployment of its own namespace.
    deployments = items(mesh, "deploy")
    for ns, pod in (("default", default_pod), ("other", other_pod)):
        (ref,) = pods_in(mesh, ns)[pod]["metadata"]["ownerReferences"]
        assert ref["uid"] == deployments[(ns, "sleep")]["metadata"]["uid"]
        assert ref["kind"] == "Deployment" and ref["name"] == "sleep"
    assert (
        deployments[("default", "sleep")]["metadata"]["uid"]
        != (deployments[("other", "sleep")]["metadata"]["uid"])
    )
    curl_301(mesh, "default", default_pod)
    curl_301(mesh, "other", other_pod)
    # deploy/NAME picks the pod of the namespace asked for.
    for ns, pod in (("default", default_pod), ("other", other_pod)):
        host = mesh.meshgate("exec", "-n", ns, "deploy/sleep", "--", "hostname").stdout
        assert host.strip() == pod

    # Scaling other/sleep to 0 stops its pod and leaves default's alone.
    before = pods_in(mesh, "default")
    mesh.meshgate("apply", "-n", "other", "-f", "-", input=sleep_replicas(0))
    eventually(mesh, lambda: True if not pods_in(mesh, "other") else None, "no pod in other")
    untouched(mesh, "default", before)
    assert deploy_ready(mesh) == {"default": "1/1", "other": "0/0"}

    # Back to 1: other gets a pod of its own again; default's still stays.
    mesh.meshgate("apply", "-n", "other", "-f", "-", input=sleep_replicas(1))
    other_pod = mesh.wait_pod("other", "sleep-")
    untouched(mesh, "default", before)
    curl_301(mesh, "other", other_pod)

    # And the other way round: default scaled to 0, other's pod stays.
    before = pods_in(mesh, "other")
    mesh.meshgate("apply", "-f", "-", input=sleep_replicas(0))
    eventually(mesh, lambda: True if not pods_in(mesh, "default") else None, "no pod in default")
    untouched(mesh, "other", before)

    # Deleting other/sleep collects its pod (its owner, by uid) and nothing in default.
    mesh.meshgate("apply", "-f", "-", input=sleep_replicas(1))
    default_pod = mesh.wait_pod("default", "sleep-")
    before = pods_in(mesh, "default")
    mesh.meshgate("delete", "deploy", "sleep", "-n", "other")
    eventually(mesh, lambda: True if not pods_in(mesh, "other") else None, "no pod in other")
    untouched(mesh, "default", before)
    assert deploy_ready(mesh) == {"default": "1/1"}


def test_same_named_pods_in_two_namespaces(mesh: Mesh) -> None:
    mesh.meshgate("apply", "-f", "-", input=OTHER)
    mesh.meshgate("apply", "-f", "-", input=TWIN)
    mesh.meshgate("apply", "-n", "other", "-f", "-", input=TWIN)
    mesh.wait_pod("default", "twin")
    mesh.wait_pod("other", "twin")
    pods = items(mesh, "pods")
    ips = {ns: pods[(ns, "twin")]["status"]["podIP"] for ns in ("default", "other")}
    assert ips["default"] != ips["other"]
    # Each has its own network namespace: its own address on eth0.
    for ns, ip in ips.items():
        addr = mesh.meshgate("exec", "-n", ns, "twin", "--", "ip", "-4", "-o", "addr", "show")
        assert f" {ip}/" in addr.stdout and f" {ips[other(ns)]}/" not in addr.stdout
        curl_301(mesh, ns, "twin")

    before = pods_in(mesh, "other")
    mesh.meshgate("delete", "pod", "twin")
    eventually(mesh, lambda: True if not pods_in(mesh, "default") else None, "default/twin gone")
    untouched(mesh, "other", before)
    curl_301(mesh, "other", "twin")


def other(namespace: str) -> str:
    return "other" if namespace == "default" else "default"
