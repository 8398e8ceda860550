"""Thin wrappers over iproute2 for network namespaces, links and commands run inside them.

Rules:
- Shell out to `ip` (Debian's iproute2); never touch the host's own network namespace: every
  link/address/route command here takes the namespace it acts in.
- A failed command raises `CommandError` carrying the command and its stderr.
- Namespaces live as bind mounts under /run/netns (iproute2's convention); `ip netns exec` is the
  only way in that also bind-mounts /etc/netns/NAME/resolv.conf, so commands that resolve names
  go through it.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

NETNS_RUN = Path("/run/netns")


class CommandError(RuntimeError):
    def __init__(self, argv: Sequence[str], code: int, stderr: str) -> None:
        super().__init__(f"{' '.join(argv)!r} failed ({code}): {stderr.strip()}")
        self.argv = list(argv)
        self.code = code
        self.stderr = stderr


def run(argv: Sequence[str], check: bool = True, input_text: str | None = None) -> str:
    proc = subprocess.run(list(argv), input=input_text, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise CommandError(argv, proc.returncode, proc.stderr)
    return proc.stdout


def exec_prefix(netns: str) -> list[str]:
    return ["ip", "netns", "exec", netns]


def run_in(netns: str, argv: Sequence[str], check: bool = True) -> str:
    return run([*exec_prefix(netns), *argv], check=check)


def path(netns: str) -> Path:
    return NETNS_RUN / netns


def exists(netns: str) -> bool:
    return path(netns).exists()


def list_names(prefix: str) -> list[str]:
    try:
        return sorted(n for n in os.listdir(NETNS_RUN) if n.startswith(prefix))
    except FileNotFoundError:
        return []


def add(netns: str) -> None:
    """Create a namespace and bring its loopback up (a new namespace starts with `lo` down)."""
    run(["ip", "netns", "add", netns])
    ip(netns, "link", "set", "lo", "up")


def delete(netns: str) -> None:
    if exists(netns):
        run(["ip", "netns", "del", netns])


def ip(netns: str, *args: str, check: bool = True) -> str:
    """`ip -n NETNS ARGS...`: an iproute2 command acting inside `netns`."""
    return run(["ip", "-n", netns, *args], check=check)


def sysctl(netns: str, key: str, value: str) -> None:
    """Set a per-namespace sysctl (net.*) from inside the namespace."""
    run_in(netns, ["sysctl", "-qw", f"{key}={value}"])
