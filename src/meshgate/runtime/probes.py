"""Readiness: whether a container's probe passes, and whether a pod's proxy listens.

Rules:
- A port probe (tcpSocket, httpGet) passes once the port listens in the pod's network
  namespace, asked of the kernel over sock_diag (`sockdiag`: only the listening hash is
  walked, so it is cheap enough for every look); /proc/PID/net/tcp, which walks every
  connection of the host, is the fallback where sock_diag is refused.
- A port once seen listening is believed for the probe's periodSeconds (10 by default;
  ``LISTEN_RECHECK`` where no probe says, e.g. the proxy's own readiness) before it is
  asked again (per process and port): the control plane looks at every pod twice a pass,
  and a kubelet re-probes only every periodSeconds and needs failureThreshold (3) misses
  before it calls a container unready, so one miss after a period is still quicker to
  notice. A port not listening yet is asked at every look, so a starting pod becomes ready
  without delay.
- An exec probe runs a command in the container (its sandbox, as `exec` does) with a timeout,
  once per periodSeconds (the runtime keeps when it is next due); a probe still running
  then fails, and everything it started is killed with it.
- Nothing here changes a pod: callers record verdicts.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from typing import Any

from meshgate.runtime import sockdiag
from meshgate.runtime.podspec import ContainerSpec


def verdict(spec: ContainerSpec | None, crec: dict[str, Any]) -> bool | None:
    """The readiness probe's verdict (None: the container has none). A port probe reads
    the pod's listening sockets (cheap, at every look); an exec probe's result is the
    one `reconcile()` last recorded."""
    if spec is None or (spec.readiness_port is None and spec.readiness_command is None):
        return None
    if spec.readiness_port is not None:
        pid = crec.get("pid")
        return pid is not None and listening(int(pid), spec.readiness_port, spec.readiness_period)
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


LISTEN_RECHECK = 10.0  # Kubernetes' default periodSeconds
_seen_listening: dict[tuple[int, int], float] = {}  # (pid, port) -> believed until (monotonic)


def listening(pid: int, port: int, believe: float = LISTEN_RECHECK) -> bool:
    """Whether the network namespace of `pid` has a TCP socket listening on `port` (a
    yes is believed for `believe` seconds)."""
    now = time.monotonic()
    if _seen_listening.get((pid, port), 0.0) > now:
        return True
    found = _ask(pid, port)
    if found:
        if len(_seen_listening) > 4096:  # processes come and go: drop what has expired
            # A copy first: pods start in several threads, which add entries meanwhile.
            for k in [k for k, until in list(_seen_listening.items()) if until <= now]:
                _seen_listening.pop(k, None)
        _seen_listening[(pid, port)] = now + believe
    else:
        _seen_listening.pop((pid, port), None)
    return found


def _ask(pid: int, port: int) -> bool:
    try:
        return port in sockdiag.listening_ports(pid)
    except OSError:
        pass
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
