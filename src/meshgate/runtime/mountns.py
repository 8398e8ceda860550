"""Running the control plane in the host's mount namespace when ``up`` runs under
``ip netns exec``.

Why: ``ip netns exec NS CMD`` gives CMD a mount namespace of its own (a slave copy of its
caller's) and mounts there a /sys for NS. In it, meshgate would lose two things it needs:
the cgroup v2 hierarchy (under /sys, not remounted: the proxies' capture exemption falls
back to uid 1337) and shared namespace handles (what ``ip netns add`` mounts under
/run/netns there is seen by no other process, so ``meshgate exec``, ``down`` after a
``kill -9`` and every later command would find empty files).

Rules:
- ``netns_exec_mount()`` tells that mount namespace by its signature: /sys is a sysfs whose
  source is the name of a namespace under /run/netns (what ``ip netns exec`` mounts).
- ``host_prefix()`` then returns ``nsenter --mount=<that of the nearest ancestor process in
  another mount namespace> --wd=<cwd>``: the mount namespace ``ip netns exec`` was called
  from. Only the mount namespace changes; the network namespace (the one ``up`` runs in,
  which the uplink attaches to) is kept. Otherwise it returns [] and nothing changes.
- Pure reading of /proc; nothing is mounted or changed.
"""

from __future__ import annotations

import os
from pathlib import Path

from meshgate.runtime import netns


def _mounts(pid: str = "self") -> list[tuple[str, str, str]]:
    """(mount point, fs type, source) of each mount, in mount order."""
    out = []
    with open(f"/proc/{pid}/mountinfo", encoding="utf-8") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            fields = post.split()
            if len(fields) >= 2:
                out.append((pre.split()[4], fields[0], fields[1]))
    return out


def netns_exec_mount() -> str | None:
    """The namespace name when this process runs in a mount namespace made by
    ``ip netns exec NAME`` (its /sys is NAME's sysfs), else None."""
    try:
        sys_mounts = [m for m in _mounts() if m[0] == "/sys"]
    except OSError:
        return None
    if not sys_mounts:
        return None
    _, fstype, source = sys_mounts[-1]
    if fstype == "sysfs" and source != "sysfs" and (netns.NETNS_RUN / source).exists():
        return source
    return None


def _mnt(pid: int | str) -> tuple[int, int] | None:
    try:
        st = os.stat(f"/proc/{pid}/ns/mnt")
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _ppid(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def outer_mount_pid() -> int | None:
    """The nearest ancestor in another mount namespace than ours, or None."""
    mine = _mnt("self")
    pid = os.getpid()
    try:
        while pid > 1:
            pid = _ppid(pid)
            theirs = _mnt(pid)
            if theirs is not None and theirs != mine:
                return pid
    except (OSError, ValueError, IndexError):
        return None
    return None


def host_prefix() -> list[str]:
    """A command prefix that runs in the mount namespace ``ip netns exec`` left ([] when
    this process is not in one such, or no ancestor shows where it came from)."""
    if netns_exec_mount() is None:
        return []
    pid = outer_mount_pid()
    if pid is None:
        return []
    return ["nsenter", f"--mount=/proc/{pid}/ns/mnt", f"--wd={os.getcwd()}"]
