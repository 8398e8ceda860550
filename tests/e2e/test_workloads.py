"""E2E through the CLI: Deployment rollouts without a failed request, and restart policies.

Rules: each test has its own mesh (the `mesh` fixture tears it down); no timing assertions,
only waits for a state with a generous deadline.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.e2e.meshctl import WALKTHROUGH, Mesh, meshgate_argv

pytestmark = pytest.mark.e2e
T = TypeVar("T")

WEB = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}, annotations: {rev: "%s"}}
    spec:
      containers:
      - name: web
        image: python
        command: ["python3", "-m", "http.server", "8080", "--directory", "/"]
        ports: [{containerPort: 8080, name: http-web}]
        # As in Kubernetes, without it the pod counts as ready the moment python starts,
        # before it listens, and a client without a sidecar (no retry) may be refused.
        readinessProbe: {tcpSocket: {port: http-web}}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http-web}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: plain}
spec:
  replicas: 1
  selector: {matchLabels: {app: plain}}
  template:
    metadata:
      labels: {app: plain}
      annotations: {sidecar.istio.io/inject: "false"}
    spec:
      containers: [{name: c, image: curl, command: ["/bin/sleep", "infinity"]}]
"""

# Until the stop file exists: one request every 0.1 s, each code on a line.
LOOP = (
    'while [ ! -e {stop} ]; do curl -s -o /dev/null -w "%{{http_code}}\\n" --max-time 5 '
    "http://web/; sleep 0.1; done"
)


def wait_for(cond: Callable[[], T | None], what: str, mesh: Mesh, deadline: float = 60) -> T:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        value = cond()
        if value is not None:
            return value
        time.sleep(0.25)
    pods = mesh.meshgate("get", "pods", check=False).stdout
    raise AssertionError(f"never reached: {what}\n{pods}\n{mesh.log_tail()}")


def pods(mesh: Mesh) -> list[dict[str, Any]]:
    out = mesh.meshgate("get", "pods", "-o", "json").stdout
    items: list[dict[str, Any]] = json.loads(out)["items"]
    return items


def rows(mesh: Mesh) -> dict[str, list[str]]:
    """NAME -> [READY, STATUS, RESTARTS] from `get pods`."""
    lines = mesh.meshgate("get", "pods").stdout.splitlines()[1:]
    return {cols[0]: cols[1:4] for cols in (line.split() for line in lines)}


def web_pods(mesh: Mesh) -> dict[str, list[str]]:
    return {n: r for n, r in rows(mesh).items() if n.startswith("web-")}


def test_rollout_drops_no_request(mesh: Mesh, tmp_path: Path) -> None:
    mesh.meshgate("apply", "-f", str(WALKTHROUGH / "1-sleep.yaml"), "-f", "-", input=WEB % 1)
    sleep = mesh.wait_pod("default", "sleep-")
    plain = mesh.wait_pod("default", "plain-")
    first = mesh.wait_pod("default", "web-")

    def serving() -> bool | None:
        for client in (sleep, plain):
            proc = mesh.meshgate(
                "exec", client, "--", "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                "--max-time", "3", "http://web/", check=False,
            )  # fmt: skip
            if proc.stdout.strip() != "200":
                return None
        return True

    wait_for(serving, "web answers both clients", mesh)
    loops = {}
    for client in (sleep, plain):
        # The stop marker lives in the client's own /tmp (its sandbox's), touched by exec.
        stop = f"/tmp/stop-{uuid.uuid4().hex[:8]}"
        cmd = [*meshgate_argv(), "exec", client, "--", "sh", "-c", LOOP.format(stop=stop)]
        loops[client] = (stop, subprocess.Popen(cmd, env=mesh.env, stdout=subprocess.PIPE))
    try:
        seen_pods: set[str] = set()
        for rev in (2, 3):
            time.sleep(1.0)
            mesh.meshgate("apply", "-f", "-", input=WEB % rev)

            def rolled(before: str = first) -> str | None:
                now = web_pods(mesh)
                seen_pods.update(now)
                if len(now) != 1:
                    return None
                ((name, (ready, status, _)),) = now.items()
                new = name != before and ready == "2/2" and status == "Running"
                return name if new else None

            first = wait_for(rolled, f"the rollout to rev {rev} done", mesh)
        time.sleep(1.5)
    finally:
        for client, (stop, _) in loops.items():
            mesh.meshgate("exec", client, "--", "touch", stop, check=False)
        outputs = {c: p.communicate(timeout=30)[0].decode() for c, (_, p) in loops.items()}
    # Both rollouts ran while the loops did: three pods in all, never two old at once.
    assert len(seen_pods) == 3, seen_pods
    for client, out in outputs.items():
        codes = out.split()
        assert len(codes) > 20, (client, out)
        failed = [c for c in codes if c != "200"]
        assert failed == [], f"{client}: {len(failed)} of {len(codes)} requests failed"


ONESHOTS = """
apiVersion: v1
kind: Pod
metadata: {name: done-never}
spec:
  restartPolicy: Never
  containers: [{name: main, image: busybox, command: [sh, -c, "echo done"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: fail-never}
spec:
  restartPolicy: Never
  containers: [{name: main, image: busybox, command: [sh, -c, "echo failing; exit 3"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: retry-onfailure, annotations: {sidecar.istio.io/inject: "false"}}
spec:
  restartPolicy: OnFailure
  # A restarted container starts from a fresh filesystem: the marker lives in an emptyDir,
  # which outlives the container, as in Kubernetes.
  volumes: [{name: data, emptyDir: {}}]
  containers:
  - name: main
    image: busybox
    volumeMounts: [{name: data, mountPath: /data}]
    command: [sh, -c, "if [ -e %(m)s ]; then echo second; exit 0; fi; touch %(m)s; exit 1"]
"""


def test_restart_policies(mesh: Mesh, tmp_path: Path) -> None:
    mesh.meshgate("apply", "-f", "-", input=ONESHOTS % {"m": "/data/ran-once"})

    def phases() -> dict[str, str] | None:
        got = {
            str(p["metadata"]["name"]): str(p.get("status", {}).get("phase")) for p in pods(mesh)
        }
        ended = all(v in ("Succeeded", "Failed") for v in got.values())
        return got if len(got) == 3 and ended else None

    # OnFailure: the first run fails, restarted at once (the kubelet's first restart).
    assert wait_for(phases, "every pod ended", mesh, deadline=90) == {
        "done-never": "Succeeded",
        "fail-never": "Failed",
        "retry-onfailure": "Succeeded",
    }
    table = rows(mesh)
    assert table["done-never"] == ["0/2", "Completed", "0"]
    assert table["fail-never"] == ["0/2", "Error", "0"]
    assert table["retry-onfailure"] == ["0/1", "Completed", "1"]
    by_name = {p["metadata"]["name"]: p for p in pods(mesh)}
    statuses = {
        name: {c["name"]: c for c in p["status"]["containerStatuses"]}
        for name, p in by_name.items()
    }
    main = statuses["fail-never"]["main"]
    assert main["state"]["terminated"]["exitCode"] == 3
    assert main["state"]["terminated"]["reason"] == "Error"
    assert main["restartCount"] == 0
    # The sidecar was stopped with the app, not restarted.
    proxy = statuses["done-never"]["istio-proxy"]
    assert "terminated" in proxy["state"] and proxy["restartCount"] == 0
    assert mesh.meshgate("logs", "done-never").stdout.strip() == "done"
    # Nothing more happens to an ended pod.
    time.sleep(3)
    assert rows(mesh) == table


PROBED = """
apiVersion: v1
kind: Pod
metadata: {name: probed}
spec:
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "sleep 3600"]
    readinessProbe:
      exec: {command: ["cat", "/tmp/ready"]}
      periodSeconds: 2
"""


def test_exec_readiness_probe_decides_readiness(mesh: Mesh) -> None:
    """An exec probe decides readiness, asked once per periodSeconds as the kubelet asks:
    not ready until the file it reads exists, ready after, not ready once it is gone."""
    mesh.meshgate("apply", "-f", "-", input=PROBED)

    def ready(want: str) -> Callable[[], str | None]:
        def check() -> str | None:
            row = rows(mesh).get("probed")
            return want if row is not None and row[:2] == [want, "Running"] else None

        return check

    wait_for(ready("1/2"), "probed running, its app not ready", mesh)
    mesh.meshgate("exec", "probed", "-c", "main", "--", "touch", "/tmp/ready")
    wait_for(ready("2/2"), "probed ready once /tmp/ready exists", mesh, deadline=30)
    mesh.meshgate("exec", "probed", "-c", "main", "--", "rm", "/tmp/ready")
    wait_for(ready("1/2"), "probed not ready once /tmp/ready is gone", mesh, deadline=30)
