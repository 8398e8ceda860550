"""Starting detached processes with their output in a size-bounded log file.

Rules:
- A started process is detached: its own session (so it survives the control plane and can be
  killed as a group), stdin from /dev/null, stdout and stderr appended to one log file.
- The log file is opened by us (root) and handed over as a descriptor, so a process running as
  another uid can write it without being able to open the state directory.
- The environment is exactly what the caller gives (never the control plane's own, which may
  hold secrets), plus a default PATH.
- Logs are bounded: `trim_log` keeps the tail once a file passes its limit. The writer holds the
  file with O_APPEND, so truncating in place is safe for it.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
LOG_LIMIT = 10 * 1024 * 1024
LOG_KEEP = 2 * 1024 * 1024


def spawn(
    argv: Sequence[str],
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    pass_fds: tuple[int, ...] = (),
) -> subprocess.Popen[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    full_env = {"PATH": DEFAULT_PATH, **(env or {})}
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=cwd,
            start_new_session=True,
            close_fds=True,
            pass_fds=pass_fds,
        )


def trim_log(path: Path, limit: int = LOG_LIMIT, keep: int = LOG_KEEP) -> bool:
    """Keep the last `keep` bytes of `path` once it is larger than `limit`; True if trimmed."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return False
    if size <= limit:
        return False
    with open(path, "r+b") as f:
        f.seek(max(0, size - keep))
        tail = f.read()
        # Start at a line boundary so the kept log does not begin mid-line.
        nl = tail.find(b"\n")
        if 0 <= nl < len(tail) - 1:
            tail = tail[nl + 1 :]
        f.seek(0)
        f.write(tail)
        f.truncate(len(tail))
    return True


def resolve_command(cmd: str, path_env: str) -> str | None:
    """Where `cmd` would be found by exec with PATH `path_env`, or None (a missing command)."""
    if "/" in cmd:
        return cmd if os.access(cmd, os.X_OK) and not os.path.isdir(cmd) else None
    for d in path_env.split(":"):
        cand = os.path.join(d or ".", cmd)
        if os.access(cand, os.X_OK) and not os.path.isdir(cand):
            return cand
    return None
