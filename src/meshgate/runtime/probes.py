"""Readiness: whether a container's probe passes, and whether a pod's proxy listens.

Rules:
- A port probe (tcpSocket, httpGet) passes once the port listens in the pod's network
  namespace, read from /proc/PID/net of a process in it: cheap enough for every look.
- An exec probe runs a command in the container (its sandbox, as `exec` does) with a timeout;
  a probe still running then fails, and everything it started is killed with it.
- Nothing here changes a pod: callers record verdicts.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from typing import Any

from meshgate.runtime.podspec import ContainerSpec


def verdict(spec: ContainerSpec | None, crec: dict[str, Any]) -> bool | None:
    """The readiness probe's verdict (None: the container has none). A port probe reads
    the pod's listening sockets (cheap, at every look); an exec probe's result is the
    one `reconcile()` last recorded."""
    if spec is None or (spec.readiness_port is None and spec.readiness_command is None):
        return None
    if spec.readiness_port is not None:
        pid = crec.get("pid")
        return pid is not None and listening(int(pid), spec.readiness_port)
    return bool(crec.get("probe_ok"))


def run(argv: list[str], timeout: float) -> bool:
    """Run an exec probe; a probe still running after `timeout` fails, and everything it
    started (nsenter forks into the container) is killed with it."""
    proc = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        return proc.wait(timeout=timeout) == 0
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return False


def listening(pid: int, port: int) -> bool:
    """Whether the network namespace of `pid` has a TCP socket listening on `port`."""
    want = f":{port:04X}"
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}", encoding="ascii") as f:
                next(f, None)
                for line in f:
                    parts = line.split()
                    if len(parts) > 3 and parts[1].endswith(want) and parts[3] == "0A":
                        return True
        except OSError:
            continue
    return False
