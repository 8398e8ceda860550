"""A container's sandbox, as a container runtime makes one: the argv that starts a process
inside it (bubblewrap) and the argv that enters it later (nsenter, for exec and probes).

Rules:
- Each app container gets its own mount, PID, IPC and UTS namespaces; the pod's network
  namespace is shared (the caller starts bwrap through `ip netns exec`). The hostname is the
  pod's name. With a shared process namespace (`shareProcessNamespace: true`), the
  container joins the pod's PID namespace instead of making its own.
- The filesystem: the root is a fresh tmpfs (the container's writable layer, gone when the
  container ends) holding empty /tmp, /var/tmp (1777), /run and /root; the host's programs
  and libraries (/usr and the /bin, /sbin, /lib* beside it) are bound read-only; /etc is the
  host's, read-only, with what the host keeps from other users (entries that are not
  world-readable) and /etc/netns (other pods' files) masked; the pod's own
  hosts, resolv.conf, hostname and trust store replace the host's. Nothing else of the
  host is there: not /root, /home, /var, /opt, meshgate's state directory or /run/meshgate.
  A path asked to be hidden that lies under a bound tree is masked as well.
- /proc is the container's own (its PID namespace); /dev is a minimal one; /sys is
  read-only, without the cgroup hierarchy (an app must not move itself into the proxy's
  cgroup, which exempts it from capture).
- Volumes are bound at their mount paths, read-only when asked. A mount path under /etc
  that the host lacks is made in the container's /etc (then rebuilt on a tmpfs); one under
  a host directory of /etc (say /etc/ssl/mine) cannot be, as that directory is read-only.
- bubblewrap runs as root and keeps every capability here (`--cap-add ALL`): the user,
  groups and capability bounding set of the container are set by setpriv inside, exactly
  as outside a sandbox. bwrap is pid 1 of the container (its reaper), so the app is never
  pid 1 and handles signals as it would under a container runtime's init.
- Host layout (which of /bin, /lib... are symlinks, which /etc entries are private) is read
  once per process; it only changes when the host's packages do.
"""

from __future__ import annotations

import functools
import os
import stat
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

BWRAP = "bwrap"
# Top-level entries that hold the host's programs and libraries (merged-/usr symlinks on
# Debian, directories elsewhere).
PROGRAM_ROOTS = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32")
ALWAYS_HIDDEN_ETC = ("netns",)


@dataclass(frozen=True)
class Mount:
    """A volume mounted into the container: `source` on the host at `target` inside."""

    source: str
    target: str
    read_only: bool = False


@dataclass(frozen=True)
class Sandbox:
    hostname: str
    # Files that replace the host's inside the container, by absolute path (/etc/hosts...).
    files: dict[str, str] = field(default_factory=dict)
    mounts: tuple[Mount, ...] = ()
    working_dir: str = "/"
    hidden: tuple[str, ...] = ()
    # An open descriptor of the pod's PID namespace to join (shareProcessNamespace).
    pidns_fd: int | None = None


@dataclass(frozen=True)
class HostLayout:
    roots: tuple[tuple[str, str | None], ...]  # (name, symlink target or None for a dir)
    etc: tuple[tuple[str, str | None], ...]  # shown top-level /etc entries, as above
    private: tuple[tuple[str, bool], ...]  # (path, is_dir) under /etc that must not show
    hidden_top: tuple[tuple[str, bool], ...] = ()  # top-level /etc entries left out


@functools.cache
def host_layout() -> HostLayout:
    return read_layout(Path("/"))


def read_layout(root: Path) -> HostLayout:
    roots = tuple(
        (name, _link(root / name)) for name in PROGRAM_ROOTS if os.path.lexists(root / name)
    )
    etc: list[tuple[str, str | None]] = []
    private: list[tuple[str, bool]] = []
    hidden_top: list[tuple[str, bool]] = []
    etc_dir = root / "etc"
    for entry in sorted(os.listdir(etc_dir)) if etc_dir.is_dir() else []:
        path = etc_dir / entry
        target = _link(path)
        if entry in ALWAYS_HIDDEN_ETC or (target is None and not _world_readable(path)):
            # Left out: /etc/shadow, /etc/gshadow, other pods' files...
            hidden_top.append((f"/etc/{entry}", target is None and path.is_dir()))
            continue
        etc.append((entry, target))
        if target is None and path.is_dir():
            private.extend(_private_under(path, root))
    return HostLayout(tuple(roots), tuple(etc), tuple(private), tuple(hidden_top))


def _link(path: Path) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


def _world_readable(path: Path) -> bool:
    try:
        st = os.lstat(path)
    except OSError:
        return False
    need = 0o005 if stat.S_ISDIR(st.st_mode) else 0o004
    return st.st_mode & need == need


def _private_under(top: Path, root: Path) -> Iterable[tuple[str, bool]]:
    """Entries below `top` that other users may not read (not followed into)."""
    for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
        for name in list(dirnames):
            p = Path(dirpath) / name
            if not os.path.islink(p) and not _world_readable(p):
                dirnames.remove(name)
                yield "/" + str(p.relative_to(root)), True
        for name in filenames:
            p = Path(dirpath) / name
            if not os.path.islink(p) and not _world_readable(p):
                yield "/" + str(p.relative_to(root)), False


def _under(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


def visible_roots(layout: HostLayout) -> list[str]:
    """The host trees a container sees (read-only)."""
    return [f"/{n}" for n, t in layout.roots if t is None] + ["/etc"]


def bwrap_argv(sb: Sandbox, layout: HostLayout | None = None) -> list[str]:
    """The bubblewrap command line (up to and including `--`) for a container's sandbox."""
    layout = layout or host_layout()
    # No --die-with-parent: a container outlives the control plane that started it.
    a: list[str] = [BWRAP, "--cap-add", "ALL"]
    a += ["--unshare-ipc", "--unshare-uts", "--hostname", sb.hostname]
    if sb.pidns_fd is None:
        a += ["--unshare-pid"]
    else:
        a += ["--pidns", str(sb.pidns_fd)]
    for name, target in layout.roots:
        a += ["--symlink", target, f"/{name}"] if target else ["--ro-bind", f"/{name}", f"/{name}"]
    # A mount at a path the host's /etc lacks needs an /etc that can take a new directory.
    new_in_etc = [
        m.target for m in sb.mounts if _under(m.target, "/etc") and not os.path.lexists(m.target)
    ]
    a += _etc(sb, layout, rebuild=bool(new_in_etc))
    for path, is_dir in layout.private:
        if not any(_under(path, f) for f in sb.files):
            a += _mask(path, is_dir)
    for dest, src in sorted(sb.files.items()):
        a += ["--ro-bind", src, dest]
    roots = visible_roots(layout)
    for path in sb.hidden:
        if any(_under(path, r) for r in roots) and os.path.lexists(path):
            a += _mask(path, os.path.isdir(path))
    a += ["--ro-bind", "/sys", "/sys"]
    a += ["--tmpfs", "/sys/fs/cgroup", "--remount-ro", "/sys/fs/cgroup"]
    a += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/dev/shm"]
    a += ["--perms", "1777", "--dir", "/tmp", "--perms", "1777", "--dir", "/var/tmp"]
    a += ["--dir", "/run", "--symlink", "../run", "/var/run", "--perms", "0700", "--dir", "/root"]
    made = {"/", "/tmp", "/var", "/var/tmp", "/run", "/root", "/dev", "/proc", "/sys", "/etc"}
    for m in sb.mounts:
        # bwrap would make missing parents 0700: a non-root user could not reach the mount.
        for parent in reversed(PurePosixPath(m.target).parents):
            p = str(parent)
            if p not in made and (
                not any(_under(p, r) for r in roots)
                or (_under(p, "/etc") and p != "/etc" and not os.path.lexists(p))
            ):
                a += ["--perms", "0755", "--dir", p]
                made.add(p)
        a += ["--ro-bind" if m.read_only else "--bind", m.source, m.target]
    # Last, and not recursive: volumes mounted under /etc stay writable unless asked not to.
    a += ["--remount-ro", "/etc"]
    wd = sb.working_dir or "/"
    inside = [*roots, *(m.target for m in sb.mounts)]
    if wd != "/" and not any(_under(wd, t) for t in inside):
        a += ["--dir", wd]  # made in the container's own writable root
    a += ["--chdir", wd, "--"]
    return a


def _etc(sb: Sandbox, layout: HostLayout, rebuild: bool = False) -> list[str]:
    """The host's /etc, read-only, without its left-out entries. Bound whole when every file
    the pod replaces is a plain entry of it (a mount over each is then enough: two dozen
    mounts); else (or with `rebuild`: a volume at a path /etc lacks) rebuilt entry by entry
    on a tmpfs, since a mount cannot replace a symlink or add a file or directory in a
    read-only tree (ten times the mounts, about 35 ms more a start)."""
    plain = {f"/etc/{name}" for name, target in layout.etc if target is None}
    if not rebuild and all(dest in plain for dest in sb.files):
        out = ["--ro-bind", "/etc", "/etc"]
        for path, is_dir in layout.hidden_top:
            out += _mask(path, is_dir)
        return out
    out = ["--tmpfs", "/etc"]  # a mount of its own, so it can be made read-only at the end
    for name, target in layout.etc:
        dest = f"/etc/{name}"
        if dest not in sb.files:
            out += ["--symlink", target, dest] if target else ["--ro-bind", dest, dest]
    for path, is_dir in layout.hidden_top:  # shown masked, as when /etc is bound whole
        if path not in sb.files:
            out += _mask(path, is_dir)
    return out


def _mask(path: str, is_dir: bool) -> list[str]:
    """Hide a host path: an empty read-only directory, or an empty file, in its place."""
    if is_dir:
        return ["--tmpfs", path, "--remount-ro", path]
    return ["--ro-bind", "/dev/null", path]


def sees(path: str, layout: HostLayout | None = None) -> bool:
    """Whether a host path (a command the container runs) is visible inside a sandbox."""
    layout = layout or host_layout()
    real = os.path.realpath(path)
    tops = [f"/{n}" for n, _ in layout.roots] + ["/etc"]
    return any(_under(path, t) or _under(real, t) for t in tops)


@functools.cache
def describe() -> str:
    """One line for `status`: the sandbox tool and its version."""
    try:
        out = subprocess.run([BWRAP, "--version"], capture_output=True, text=True, check=False)
    except OSError:
        return f"{BWRAP} not found: pods cannot start (install bubblewrap)"
    return out.stdout.strip() or BWRAP


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as f:
            return [int(k) for k in f.read().split()]
    except OSError:
        return []


def container_pid(outer_pid: int) -> int | None:
    """The sandbox's first process as the host sees it (bwrap's only child): its pid 1 (the
    reaper) in a PID namespace of its own, or the app itself in a shared one."""
    kids = _children(outer_pid)
    return kids[0] if kids else None


def entry_pid(outer_pid: int, timeout: float = 2.0) -> int | None:
    """The process whose namespaces `exec` enters, once the sandbox is set up (until then
    its mount namespace is half made): the reaper once it has started the app, or the app
    once bwrap has become it. None if there is no sandbox (any more) or it is not ready."""
    deadline = time.monotonic() + timeout
    while True:
        inner = container_pid(outer_pid)
        if inner is None and not os.path.exists(f"/proc/{outer_pid}"):
            return None  # no sandbox any more
        if inner is not None:
            try:
                is_bwrap = os.path.basename(os.readlink(f"/proc/{inner}/exe")) == BWRAP
            except OSError:
                is_bwrap = True  # gone or changing: look again
            if not is_bwrap or _children(inner):
                return inner
        # Just started: bwrap has not forked, or not finished the mounts, yet.
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.005)


def enter_argv(pid: int) -> list[str]:
    """Run a command inside the sandbox of process `pid`: its mount, UTS, IPC, network and
    PID namespaces (so /proc, /tmp and the hostname are the container's own)."""
    return ["nsenter", "-t", str(pid), "-m", "-u", "-i", "-n", "-p", "--"]
