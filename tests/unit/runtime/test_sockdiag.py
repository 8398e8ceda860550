"""sock_diag's view of listening ports agrees with /proc's, in this process's namespace and in
another one (entered by a short-lived thread, so the test's own threads stay where they are)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest

from meshgate.runtime import probes, sockdiag

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="setns needs root (CAP_SYS_ADMIN)")


def _proc_listening(pid: int, port: int) -> bool:
    want = f":{port:04X}"
    for table in ("tcp", "tcp6"):
        with open(f"/proc/{pid}/net/{table}", encoding="ascii") as f:
            next(f)
            if any(ln.split()[1].endswith(want) and ln.split()[3] == "0A" for ln in f):
                return True
    return False


@needs_root
def test_listening_ports_of_this_namespace_match_proc() -> None:
    mine = os.readlink("/proc/thread-self/ns/net")
    with socket.socket() as v4, socket.socket(socket.AF_INET6) as v6, socket.socket() as idle:
        v4.bind(("127.0.0.1", 0))
        v4.listen()
        v6.bind(("::1", 0))
        v6.listen()
        idle.bind(("127.0.0.1", 0))  # bound, never listening
        ports = sockdiag.listening_ports(os.getpid())
        for s, want in ((v4, True), (v6, True), (idle, False)):
            port = s.getsockname()[1]
            assert (port in ports) is want
            assert _proc_listening(os.getpid(), port) is want
            assert probes.listening(os.getpid(), port) is want
    assert os.readlink("/proc/thread-self/ns/net") == mine  # only the helper thread moved


@pytest.fixture
def other_netns() -> Iterator[str]:
    name = f"mg-sdtest-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


@needs_root
def test_listening_ports_of_another_namespace(other_netns: str) -> None:
    code = (
        "import socket,sys,time\n"
        "s=socket.socket(socket.AF_INET6);s.bind(('::',4567));s.listen()\n"
        "print('ready',flush=True);sys.stdin.read()\n"
    )
    argv = ["ip", "netns", "exec", other_netns, sys.executable, "-c", code]
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not os.path.exists(f"/proc/{proc.pid}/ns/net"):
            time.sleep(0.05)
        assert sockdiag.listening_ports(proc.pid) == {4567}
        assert probes.listening(proc.pid, 4567)
        # That socket is the other namespace's: this one's view agrees with its own /proc.
        here = 4567 in sockdiag.listening_ports(os.getpid())
        assert here is _proc_listening(os.getpid(), 4567)
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=10)


def test_a_gone_process_is_an_oserror_and_probes_say_not_listening() -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    with pytest.raises(OSError):
        sockdiag.listening_ports(gone.pid)
    assert probes.listening(gone.pid, 80) is False
