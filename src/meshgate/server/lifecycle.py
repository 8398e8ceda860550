"""Starting, stopping and inspecting the control-plane process (``up``/``down``/``status``).

Rules:
- ``up`` starts the control plane fully detached (its own session; stdin from /dev/null,
  stdout and stderr to ``control-plane.log`` in the state directory), so a caller reading
  ``up``'s output through a pipe is never held, and returns once the API answers.
- ``up`` when already running and ``down`` when nothing runs both succeed.
- ``down`` asks the control plane to tear everything down; when none runs (a crash,
  ``kill -9``) it removes what the runtime manifest lists. ``down --force`` also kills a
  control plane that is alive but does not answer.
- The uplink setting (``--uplink``, ``--uplink-cidr``, ``--dns-upstream``) is merged with
  the state directory's config and saved there before the control plane starts, so a
  later ``up`` keeps it; the DNS upstreams default to the nameservers of the resolv.conf
  this process (the caller of ``up``) sees, passed to the control plane on its command line.
- Under ``ip netns exec`` the control plane, and ``down``'s own teardown, run in the mount
  namespace ``ip netns exec`` was called from (``runtime.mountns``), in the same network
  namespace: a private mount namespace has no cgroups and hides the namespaces it makes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from meshgate.client import ApiError, Client, NotRunning
from meshgate.home import api_socket, pid_file, server_log, token_file
from meshgate.runtime import mountns
from meshgate.runtime.uplink import UplinkConfig, host_upstreams, save_config


class StartError(Exception):
    pass


def _pid(home: Path) -> int | None:
    try:
        pid = int(pid_file(home).read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return pid


def _running(pid: int) -> bool:
    """Alive and not a zombie (a zombie has finished; only its parent's wait is missing)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def is_running(home: Path) -> bool:
    """Whether a control plane of ``home`` runs (its pid file names a live process)."""
    pid = _pid(home)
    return pid is not None and _running(pid)


def up(
    home: Path,
    world: str | None,
    *,
    concurrency: int = 1,
    timeout: float = 60.0,
    cert_ttl: float | None = None,
    uplink: UplinkConfig | None = None,
    node_grace: float | None = None,
) -> bool:
    """Start the control plane; returns False if one was already running. ``uplink`` is
    the merged setting (saved in the state directory's config here)."""
    client = Client(home)
    if world is not None:
        # Check the world here, where the user sees the error, not in the detached process.
        from meshgate.runtime.world import WorldError, load_world

        try:
            load_world(world)
        except WorldError as exc:
            raise StartError(str(exc)) from None
        if world != "demo":
            world = os.path.abspath(world)  # the control plane runs elsewhere: name it fully
    if client.available():
        status = client.call("GET", "/v1/status")
        running = status.get("world")
        if world is not None and world != running:
            raise StartError(
                f"a control plane already runs for {home} with "
                f"{'world ' + repr(running) if running else 'no world'}, not {world!r}; "
                "run `meshgate down` first to change it"
            )
        if uplink is not None and uplink.enabled != bool(status.get("uplink")):
            raise StartError(
                f"a control plane already runs for {home} "
                f"{'with' if status.get('uplink') else 'without'} an uplink; "
                "run `meshgate down` first to change it"
            )
        return False
    home.mkdir(parents=True, exist_ok=True)
    os.chmod(home, 0o700)
    argv = [*mountns.host_prefix(), sys.executable, "-m", "meshgate.server", "--home", str(home)]
    if uplink is not None:
        save_config(home, uplink)
        if uplink.enabled:
            upstreams = host_upstreams(uplink)
            if not upstreams:
                raise StartError(
                    "--uplink: no DNS upstream (no usable nameserver in /etc/resolv.conf); "
                    "name one with --dns-upstream IP[:PORT]"
                )
            argv += ["--dns-upstream", ",".join(upstreams)]
    argv += ["--concurrency", str(concurrency)]
    if cert_ttl is not None:
        argv += ["--workload-cert-ttl", str(cert_ttl)]
    if node_grace is not None:
        argv += ["--node-monitor-grace-period", str(node_grace)]
    if world:
        argv += ["--world", world]
    logf = server_log(home)
    proc = spawn_detached(argv, logf)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.available():
            return True
        code = proc.poll()
        if code is not None:
            tail = logf.read_text(errors="replace").splitlines()[-15:]
            raise StartError(
                f"control plane exited with status {code}; last lines of {logf}:\n"
                + "\n".join(tail)
            )
        time.sleep(0.1)
    raise StartError(f"control plane did not become ready in {timeout:.0f}s; see {logf}")


def down(home: Path, *, force: bool = False, timeout: float = 60.0) -> bool:
    """Stop the control plane and tear the mesh down; returns False if nothing ran."""
    client = Client(home)
    ran = False
    pid = _pid(home)
    try:
        client.call("POST", "/v1/shutdown", {"teardown": True}, timeout=timeout)
        ran = True
    except (NotRunning, ApiError, OSError):
        pass
    deadline = time.monotonic() + timeout
    # Wait for the process itself, not its pid file: the file goes first, while the
    # interpreter is still shutting down.
    while pid is not None and _running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if force or (pid is not None and _running(pid)):
        pid = _pid(home)
        if pid is not None and _running(pid):
            ran = True
            os.kill(pid, signal.SIGKILL)
            killed_by = time.monotonic() + 10
            while _running(pid) and time.monotonic() < killed_by:
                time.sleep(0.05)
        if _teardown(home, force=True):
            ran = True
        _remove_leftover_files(home)
    elif not ran and home.is_dir():
        # No control plane answered and none runs, yet what a crashed or killed one made
        # may still run: clean it up from the runtime manifest (what --force does).
        if _teardown(home, force=False):
            ran = True
        _remove_leftover_files(home)
    if ran and home.is_dir():
        _remove_runtime_files(home)
    return ran


_TEARDOWN = """
import sys
from meshgate.runtime.manifest import teardown
sys.exit(0 if teardown(sys.argv[1], force=sys.argv[2] == "1") else 3)
"""


def _teardown(home: Path, *, force: bool) -> bool:
    """``manifest.teardown``, in the host's mount namespace when this runs under
    ``ip netns exec`` (there the namespaces' handles and the cgroups are the real ones)."""
    prefix = mountns.host_prefix()
    if not prefix:
        from meshgate.runtime.manifest import teardown

        return teardown(home, force=force)
    argv = [*prefix, sys.executable, "-c", _TEARDOWN, str(home.resolve()), "1" if force else "0"]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode not in (0, 3):
        raise RuntimeError(f"teardown failed: {proc.stderr.strip()}")
    return proc.returncode == 0


def _remove_leftover_files(home: Path) -> None:
    """What a killed control plane could not remove itself."""
    for leftover in (pid_file(home), token_file(home), api_socket(home)):
        leftover.unlink(missing_ok=True)


def _remove_runtime_files(home: Path) -> None:
    """After a down, only the store, the logs and an empty manifest remain: lock files,
    readiness markers and the DNS zone (derived, rewritten by the next up) go."""
    import shutil

    for leftover in (
        home / "control-plane.lock",
        home / "runtime" / "manifest.lock",
        home / "runtime" / "dns.ready",
    ):
        leftover.unlink(missing_ok=True)
    shutil.rmtree(home / "dns", ignore_errors=True)


def spawn_detached(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    """Start a background process (control plane, node agent) in its own session, its
    output appended to ``log``: it outlives the command that started it."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
