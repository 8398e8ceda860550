"""Status that tells the truth in the corner cases: `exec` into a pod that exists but does
not run says so and why; a deleted pod leaves `proxy-status`."""

from __future__ import annotations

import pytest

from tests.e2e.meshctl import WALKTHROUGH, Mesh, retry

pytestmark = pytest.mark.e2e

# The runtime refuses uid 1337 (the proxy's) for an app: the pod cannot start.
UNSTARTABLE = """\
apiVersion: v1
kind: Pod
metadata: {name: stuck, namespace: default}
spec:
  containers:
  - name: app
    image: busybox
    command: [sleep, "3600"]
    securityContext: {runAsUser: 1337}
"""


def test_exec_into_a_pod_that_does_not_run_says_why(mesh: Mesh) -> None:
    mesh.meshgate("apply", "-f", "-", input=UNSTARTABLE)

    def pending() -> str:
        return mesh.meshgate(
            "get", "pod", "stuck", "-o", "jsonpath={.status.phase} {.status.reason}", check=False
        ).stdout

    ok, last = retry(pending, lambda s: s == "Pending StartError", 30)
    assert ok, last
    res = mesh.meshgate("exec", "stuck", "--", "true", check=False)
    assert res.returncode != 0
    assert "not found" not in res.stderr, res.stderr
    assert "pod default/stuck is not running (Pending: StartError: " in res.stderr, res.stderr
    assert "uid/gid 1337 is reserved for the proxy" in res.stderr
    # A pod that does not exist at all is still "not found".
    res = mesh.meshgate("exec", "nosuch", "--", "true", check=False)
    assert "not found" in res.stderr


def test_a_deleted_pods_proxy_leaves_proxy_status(mesh: Mesh) -> None:
    mesh.meshgate("apply", "-f", str(WALKTHROUGH / "1-sleep.yaml"))
    sleep = mesh.wait_pod("default", "sleep-")
    ok, _ = retry(lambda: mesh.meshgate("proxy-status").stdout, lambda out: sleep in out, 30)
    assert ok
    mesh.meshgate("delete", "-f", str(WALKTHROUGH / "1-sleep.yaml"))
    # Not the 30 s a restarting proxy's closed stream stays listed: its pod is gone.
    ok, last = retry(lambda: mesh.meshgate("proxy-status").stdout, lambda out: sleep not in out, 15)
    assert ok, last
