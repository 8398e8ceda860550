"""Pods cannot undo the mesh: an app, even as root, lacks NET_ADMIN (as under a container
runtime), so it cannot remove its pod's capture rules and skip REGISTRY_ONLY."""

from __future__ import annotations

import time

import pytest

from tests.e2e.meshctl import WALKTHROUGH, Mesh

pytestmark = pytest.mark.e2e

PRIVILEGED = """apiVersion: v1
kind: Pod
metadata: {name: admin}
spec:
  containers:
  - name: admin
    image: busybox
    command: [/bin/sleep, infinity]
    securityContext: {capabilities: {add: [NET_ADMIN]}}
"""


def _status_line(mesh: Mesh, pod: str) -> str:
    out = mesh.meshgate(
        "exec", pod, "--", "curl", "-sS", "-I", "--max-time", "3", "www.aliyun.com", check=False
    ).stdout
    return out.splitlines()[0] if out else ""


def test_apps_cannot_remove_capture(mesh: Mesh) -> None:
    mesh.meshgate("apply", "-f", str(WALKTHROUGH / "1-sleep.yaml"))
    mesh.meshgate("apply", "-f", str(WALKTHROUGH / "2-registry-only.yaml"))
    sleep = mesh.wait_pod("default", "sleep-")
    deadline = time.monotonic() + 20
    while "502" not in _status_line(mesh, sleep) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "502" in _status_line(mesh, sleep)

    undo = mesh.meshgate(
        "exec", sleep, "--", "iptables", "-t", "nat", "-D", "OUTPUT", "-p", "tcp",
        "-j", "MESHGATE_OUTPUT", check=False,
    )  # fmt: skip
    assert undo.returncode != 0
    assert "Permission denied" in undo.stderr
    assert "502" in _status_line(mesh, sleep)  # still captured, still blocked

    # securityContext.capabilities.add is honoured, as a container runtime would.
    mesh.meshgate("apply", "-f", "-", input=PRIVILEGED)
    mesh.wait_pod("default", "admin")
    listing = mesh.meshgate("exec", "admin", "--", "iptables", "-t", "nat", "-S", "OUTPUT")
    assert "MESHGATE_OUTPUT" in listing.stdout


ENV_POD = """apiVersion: v1
kind: Pod
metadata: {name: envpod}
spec:
  containers:
  - name: app
    image: busybox
    command: [/bin/sleep, infinity]
    env: [{name: FOO, value: bar}]
    workingDir: /tmp
"""


def test_exec_sees_the_container_environment_not_the_callers(mesh: Mesh) -> None:
    mesh.meshgate("apply", "-f", "-", input=ENV_POD)
    mesh.wait_pod("default", "envpod")
    mesh.env["OPERATOR_SECRET"] = "must-not-leak"
    out = mesh.meshgate("exec", "envpod", "--", "sh", "-c", "pwd; env").stdout
    lines = out.splitlines()
    assert lines[0] == "/tmp"
    env = dict(line.split("=", 1) for line in lines[1:] if "=" in line)
    assert env["FOO"] == "bar"
    assert env["HOSTNAME"] == "envpod"
    assert "OPERATOR_SECRET" not in env and "MESHGATE_HOME" not in env
