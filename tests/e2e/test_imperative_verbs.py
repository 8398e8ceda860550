"""E2E through the CLI: kubectl's imperative verbs on a running mesh (issue 18 item 8).

`rollout restart` replaces a Deployment's pod through the control plane's rollout,
`rollout status` and `wait --for=condition=Ready|Available|delete` follow real pods,
`scale` starts and stops pods, and `get -w` shows a change as it happens, over the real
API socket. Each test has its own mesh (the `mesh` fixture tears it down).
"""

from __future__ import annotations

import subprocess
import time

import pytest

from tests.e2e.meshctl import Mesh, meshgate_argv

pytestmark = pytest.mark.e2e

APP = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: napper}
spec:
  replicas: 1
  selector: {matchLabels: {app: napper}}
  template:
    metadata: {labels: {app: napper}}
    spec:
      containers:
      - {name: app, image: busybox, command: ["/bin/sleep", "infinity"]}
"""


def napper_pods(mesh: Mesh) -> list[str]:
    out = mesh.meshgate(
        "get", "pods", "-l", "app=napper", "-o", "jsonpath={.items[*].metadata.name}"
    ).stdout
    return out.split()


def test_rollout_restart_replaces_the_pod_and_wait_follows_it(mesh: Mesh) -> None:
    mesh.meshgate("apply", "-f", "-", input=APP)
    rolled = mesh.meshgate("rollout", "status", "deployment/napper", "--timeout=90s")
    assert rolled.stdout.splitlines()[-1] == 'deployment "napper" successfully rolled out'
    (first,) = napper_pods(mesh)
    ready = mesh.meshgate("wait", "--for=condition=Ready", f"pod/{first}", "--timeout=60s")
    assert ready.stdout == f"pod/{first} condition met\n"
    available = mesh.meshgate("wait", "--for=condition=Available", "deploy/napper")
    assert available.stdout == "deployment.apps/napper condition met\n"

    restarted = mesh.meshgate("rollout", "restart", "deployment/napper")
    assert restarted.stdout == "deployment.apps/napper restarted\n"
    status = mesh.meshgate("rollout", "status", "deploy", "napper", "--timeout=120s")
    lines = status.stdout.splitlines()
    assert lines[-1] == 'deployment "napper" successfully rolled out', status.stdout
    assert all(line.startswith("Waiting for deployment") for line in lines[:-1])
    gone = mesh.meshgate("wait", "--for=delete", f"pod/{first}", "--timeout=60s")
    assert gone.stdout == f"pod/{first} condition met\n"
    (second,) = napper_pods(mesh)
    assert second != first
    pod = mesh.meshgate(
        "get", "pod", second, "-o",
        "jsonpath={.metadata.annotations}{.status.phase}",
    )  # fmt: skip
    assert "Running" in pod.stdout
    new_ready = mesh.meshgate("wait", "--for=condition=Ready", "pod", "-l", "app=napper")
    assert new_ready.stdout == f"pod/{second} condition met\n"


def test_scale_and_get_watch_over_the_api(mesh: Mesh) -> None:
    mesh.meshgate("apply", "-f", "-", input=APP)
    mesh.meshgate("rollout", "status", "deployment/napper", "--timeout=90s")
    watcher = subprocess.Popen(
        [*meshgate_argv(), "get", "deploy", "napper", "-w", "--request-timeout=60s"],
        env=mesh.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert watcher.stdout is not None
        header = watcher.stdout.readline()
        assert header.split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
        assert watcher.stdout.readline().split()[:2] == ["napper", "1/1"]
        time.sleep(0.5)  # the watch is polling by now; a change must still show
        scaled = mesh.meshgate("scale", "deploy", "napper", "--replicas=2")
        assert scaled.stdout == "deployment.apps/napper scaled\n"
        # Rows follow as the Deployment's status moves, up to 2/2 ready.
        deadline = time.monotonic() + 90
        seen = []
        while time.monotonic() < deadline:
            line = watcher.stdout.readline()
            if not line:
                break
            seen.append(line.split()[:2])
            if seen[-1] == ["napper", "2/2"]:
                break
        assert ["napper", "2/2"] in seen, (seen, mesh.log_tail())
    finally:
        watcher.kill()
        watcher.wait()
    waited = mesh.meshgate("wait", "--for=condition=Available", "deploy/napper", "--timeout=60s")
    assert waited.stdout == "deployment.apps/napper condition met\n"
    assert len(napper_pods(mesh)) == 2
    mesh.meshgate("scale", "deploy/napper", "--replicas=0")
    deadline = time.monotonic() + 60
    while napper_pods(mesh) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert napper_pods(mesh) == []
