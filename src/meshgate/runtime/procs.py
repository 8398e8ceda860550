"""Process identity and termination by PID, safe against PID reuse.

Rules:
- A process is identified by (pid, start time), the start time being field 22 of
  /proc/PID/stat (clock ticks since boot, unchanged across exec). Never signal a PID whose
  start time differs from the recorded one: the number may belong to someone else by now.
- A zombie counts as dead (it runs nothing). Nothing here reaps children: the owner of a
  `subprocess.Popen` must keep the exit status for itself.
- Processes are started in their own session, so the process group id equals the pid; killing
  the group also ends what the process forked (a container's shell children).
- No name-based killing anywhere.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Collection
from dataclasses import dataclass


@dataclass(frozen=True)
class ProcId:
    pid: int
    start_time: int


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # comm may contain spaces and parentheses; everything after the last ')' is well formed.
    return data[data.rfind(")") + 2 :].split()


def start_time(pid: int) -> int | None:
    """The start time of `pid` in clock ticks since boot, or None if it does not exist."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    return int(fields[19])


def identify(pid: int) -> ProcId | None:
    st = start_time(pid)
    return None if st is None else ProcId(pid, st)


def is_alive(proc: ProcId) -> bool:
    """True when the recorded process still runs (same start time, not a zombie)."""
    fields = _stat_fields(proc.pid)
    if fields is None:
        return False
    return fields[0] != "Z" and int(fields[19]) == proc.start_time


def _signal(proc: ProcId, sig: int, group: bool, spare_leader: bool = False) -> None:
    if not is_alive(proc):
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if group and os.getpgid(proc.pid) == proc.pid:
            if spare_leader:
                for pid in _group_members(proc.pid):
                    if pid != proc.pid:
                        with contextlib.suppress(ProcessLookupError, PermissionError):
                            os.kill(pid, sig)
            else:
                os.killpg(proc.pid, sig)
        else:
            os.kill(proc.pid, sig)


def _group_members(pgid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        fields = _stat_fields(int(entry)) if entry.isdigit() else None
        if fields is not None and int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(entry))
    return found


def kill_leftovers(leader: int) -> None:
    """SIGKILL what is left of the process group of `leader`, a container's process that has
    died: a sandbox whose leader was killed leaves its inner processes running otherwise
    (a proxy's would hold the ports its replacement needs). The kernel never hands out a
    PID still in use as a group id, so the group's members are the container's own."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(leader, signal.SIGKILL)
    deadline = time.monotonic() + 2.0
    while _group_members(leader) and time.monotonic() < deadline:
        time.sleep(0.01)


def terminate(
    procs: list[ProcId],
    grace: float = 2.0,
    group: bool = True,
    spare_leaders: Collection[int] = (),
) -> None:
    """SIGTERM every live process, wait up to `grace` seconds, then SIGKILL the survivors.

    A leader in `spare_leaders` (a sandbox's bwrap, whose own death would kill its container
    at once) is not sent SIGTERM: the rest of its group is, and the leader ends with them,
    reporting their exit status. SIGKILL goes to the whole group."""
    for p in procs:
        _signal(p, signal.SIGTERM, group, p.pid in spare_leaders)
    deadline = time.monotonic() + max(grace, 0.0)
    live = [p for p in procs if is_alive(p)]
    while live and time.monotonic() < deadline:
        time.sleep(0.02)
        live = [p for p in live if is_alive(p)]
    for p in live:
        _signal(p, signal.SIGKILL, group)
    deadline = time.monotonic() + 2.0
    while live and time.monotonic() < deadline:
        live = [p for p in live if is_alive(p)]
        if live:
            time.sleep(0.02)


def pids_in_netns(netns_path: str) -> list[int]:
    """Every process whose network namespace is the one bound at `netns_path`."""
    try:
        target = os.stat(netns_path)
    except FileNotFoundError:
        return []
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            st = os.stat(f"/proc/{entry}/ns/net")
        except (FileNotFoundError, PermissionError, ProcessLookupError):
            continue
        if (st.st_dev, st.st_ino) == (target.st_dev, target.st_ino):
            found.append(int(entry))
    return found
