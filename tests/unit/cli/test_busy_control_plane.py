"""The CLI under load (issue 14 part 5): a control plane whose socket accepts but does not
answer in time gives a clear message, after retries for reads and none for writes, and
never a traceback. A fake server on a Unix socket plays the busy control plane."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshgate.client import Client, Unresponsive


class SilentServer:
    """Accepts connections on a Unix socket, reads what comes and never answers."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(16)
        self.accepted = 0
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            self.held.append(conn)  # kept open, never answered

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def busy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, SilentServer]]:
    home = tmp_path / "home"
    home.mkdir()
    (home / "api-token").write_text("t")
    run_root = tmp_path / "run"
    monkeypatch.setenv("MESHGATE_RUN_ROOT", str(run_root))
    import meshgate.home

    monkeypatch.setattr(meshgate.home, "RUN_ROOT", run_root)
    server = SilentServer(meshgate.home.api_socket(home))
    try:
        yield home, server
    finally:
        server.close()


def test_reads_are_retried_then_reported(busy: tuple[Path, SilentServer]) -> None:
    home, server = busy
    client = Client(home, retries=2)
    client.read_timeout = 0.05
    with pytest.raises(Unresponsive) as caught:
        client.call("GET", "/v1/objects")
    assert server.accepted == 3  # the first try and two more
    message = str(caught.value)
    assert "did not answer within 0.35 s (3 tries)" in message  # 0.05 + 0.1 + 0.2
    assert "busy" in message and "try again" in message


def test_writes_are_not_retried(busy: tuple[Path, SilentServer]) -> None:
    home, server = busy
    with pytest.raises(Unresponsive) as caught:
        Client(home, timeout=0.1).call("POST", "/v1/apply", {"objects": []})
    assert server.accepted == 1
    assert "may or may not have been made" in str(caught.value)


@pytest.mark.parametrize(
    "argv",
    [["get", "pods"], ["proxy-status"], ["status"], ["apply", "-f", "-"]],
    ids=["get", "proxy-status", "status", "apply"],
)
def test_cli_says_the_control_plane_is_busy_without_a_traceback(
    busy: tuple[Path, SilentServer], tmp_path: Path, argv: list[str]
) -> None:
    home, _ = busy
    env = dict(
        os.environ,
        MESHGATE_HOME=str(home),
        MESHGATE_RUN_ROOT=os.environ["MESHGATE_RUN_ROOT"],
        MESHGATE_API_TIMEOUT="0.1",
    )
    env.pop("MESHGATE_DEBUG", None)
    proc = subprocess.run(
        [sys.executable, "-m", "meshgate.cli.main", *argv],
        env=env,
        capture_output=True,
        text=True,
        input="apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n",
        timeout=60,
    )
    assert proc.returncode == 1, proc
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "error: the control plane for" in proc.stderr
    assert "did not answer within" in proc.stderr
    assert "trying again" in proc.stderr  # reads (the health check first) are retried
