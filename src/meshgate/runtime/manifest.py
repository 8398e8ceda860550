"""The runtime manifest: a crash-safe record of everything the runtime creates on the host.

Rules:
- The manifest is JSON at `<state_dir>/runtime/manifest.json`. Every change happens under an
  exclusive flock and is written atomically (temp file, fsync, rename, fsync of the directory).
- Record BEFORE create: a namespace, veth, /etc/netns entry or directory is written to the
  manifest before it exists, so a crash at any point leaves a manifest naming everything that
  might exist. A process is recorded (pid + start time) right after spawn; the gap is covered
  by teardown killing every process found inside our namespaces.
- `teardown(state_dir, force)` needs nothing but the state directory: it works after the owning
  objects are gone, after kill -9 of the control plane, and is idempotent. Order: processes
  uplink (its rules and settings in the namespace `up` ran in: ``uplink.remove``), processes
  (by pid, start time checked), then everything still running inside our namespaces, then links,
  namespaces, /etc/netns entries, directories. Only names derived from this state directory's
  mesh id are ever deleted.
- Other runtime modules keep their own JSON-able state in named sections (`section()`), so a new
  `Runtime` over the same state directory can re-adopt live pods.
- `peek()` is for the control plane's looks at every pass: the manifest parsed once per write
  (every write renames a new file into place, so inode, mtime and size name a version; a
  count of this process's writes joins them, as timestamps are coarse and an inode can come
  back) and shared between callers, who must not change it; `read()` and `edit()` give
  private copies.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from meshgate.runtime import capture, names, netns, procs
from meshgate.runtime.sandbox import BWRAP

MANIFEST_VERSION = 1
_writes = 0  # manifests written by this process (any instance): part of peek()'s version


def manifest_dir(state_dir: str | os.PathLike[str]) -> Path:
    return Path(state_dir) / "runtime"


def _empty(state_dir: Path) -> dict[str, Any]:
    return {
        "version": MANIFEST_VERSION,
        "mesh_id": names.mesh_id(state_dir),
        "state_dir": os.path.realpath(state_dir),
        "owner": None,
        "netns": [],
        "veths": [],
        "etc_netns": [],
        "dirs": [],
        "cgroups": [],
        "processes": {},
        "sections": {},
    }


class Manifest:
    """Load/modify/save access to one state directory's manifest."""

    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        self.state_dir = Path(os.path.realpath(state_dir))
        self.dir = manifest_dir(self.state_dir)
        self.path = self.dir / "manifest.json"
        self.lock_path = self.dir / "manifest.lock"
        self.mesh_id = names.mesh_id(self.state_dir)
        self._peeked: tuple[tuple[int, int, int, int], dict[str, Any]] | None = None

    def peek(self) -> dict[str, Any]:
        """The manifest as last written, shared: read-only for the caller."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return _empty(self.state_dir)
        version = (_writes, st.st_ino, st.st_mtime_ns, st.st_size)
        peeked = self._peeked
        if peeked is not None and peeked[0] == version:
            return peeked[1]
        data = self.read()
        self._peeked = (version, data)
        return data

    def read(self) -> dict[str, Any]:
        try:
            with open(self.path, encoding="utf-8") as f:
                data: dict[str, Any] = json.load(f)
        except FileNotFoundError:
            return _empty(self.state_dir)
        return data

    @contextlib.contextmanager
    def edit(self) -> Iterator[dict[str, Any]]:
        """Yield the manifest under an exclusive lock; it is saved when the block ends cleanly."""
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.lock_path, "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                data = self.read()
                yield data
                self._write(data)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _write(self, data: dict[str, Any]) -> None:
        global _writes
        _writes += 1
        fd, tmp = tempfile.mkstemp(prefix=".manifest-", dir=self.dir)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                # Compact: indented output goes through json's pure-Python encoder, five
                # times slower, and every pod start writes the manifest a dozen times.
                json.dump(data, f, sort_keys=True, separators=(",", ":"))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        dfd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    # Recording helpers: each call is one durable write, made before the thing is created.

    def claim_owner(self) -> None:
        me = procs.identify(os.getpid())
        with self.edit() as m:
            m["owner"] = None if me is None else {"pid": me.pid, "start_time": me.start_time}

    def record_netns(self, name: str) -> None:
        self._check_name(name)
        with self.edit() as m:
            _add_unique(m["netns"], name)
            _add_unique(m["etc_netns"], name)

    def record_veth(self, ns: str, ifname: str) -> None:
        with self.edit() as m:
            _add_unique(m["veths"], [ns, ifname])

    def forget_veth(self, ns: str, ifname: str) -> None:
        with self.edit() as m:
            m["veths"] = [v for v in m["veths"] if v != [ns, ifname]]

    def record_dir(self, path: Path) -> None:
        if not str(path).startswith(str(names.runtime_dir(self.mesh_id))):
            raise ValueError(f"refusing to record {path}: outside this mesh's runtime dir")
        with self.edit() as m:
            _add_unique(m["dirs"], str(path))

    def record_cgroup(self, path: Path) -> None:
        if not path.name.startswith(names.netns_prefix(self.mesh_id)):
            raise ValueError(f"refusing to record {path}: not named after mesh {self.mesh_id}")
        with self.edit() as m:
            _add_unique(m.setdefault("cgroups", []), str(path))

    def record_process(self, key: str, proc: procs.ProcId, argv: list[str]) -> None:
        with self.edit() as m:
            m["processes"][key] = {
                "pid": proc.pid,
                "start_time": proc.start_time,
                "argv": argv,
            }

    def forget_process(self, key: str) -> None:
        with self.edit() as m:
            m["processes"].pop(key, None)

    def forget_netns(self, name: str) -> None:
        with self.edit() as m:
            m["netns"] = [n for n in m["netns"] if n != name]
            m["etc_netns"] = [n for n in m["etc_netns"] if n != name]
            m["veths"] = [v for v in m["veths"] if v[0] != name]

    def section(self, name: str) -> dict[str, Any]:
        sec: dict[str, Any] = self.read()["sections"].get(name, {})
        return sec

    def peek_section(self, name: str) -> dict[str, Any]:
        """`section()` from `peek()`: shared, read-only for the caller."""
        sec: dict[str, Any] = self.peek()["sections"].get(name, {})
        return sec

    def set_section(self, name: str, value: dict[str, Any]) -> None:
        with self.edit() as m:
            m["sections"][name] = value

    def _check_name(self, name: str) -> None:
        if not name.startswith(names.netns_prefix(self.mesh_id)):
            raise ValueError(f"refusing to record {name}: not named after mesh {self.mesh_id}")


def private_copy(value: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of part of a `peek()` view, for a caller that will change it."""
    copied: dict[str, Any] = json.loads(json.dumps(value))
    return copied


def _add_unique(items: list[Any], item: Any) -> None:
    if item not in items:
        items.append(item)


class OwnerAliveError(RuntimeError):
    """Teardown without force while the process that owns the mesh still runs."""


def teardown(state_dir: str | os.PathLike[str], force: bool = False, grace: float = 2.0) -> bool:
    """Remove every namespace, process, /etc/netns entry and runtime dir of this mesh; True
    when there was anything to remove.

    Without `force`, refuse while another live process (the control plane) owns the mesh.
    """
    man = Manifest(state_dir)
    data = man.read()
    owner = data.get("owner")
    if owner and not force and owner["pid"] != os.getpid():
        proc = procs.ProcId(owner["pid"], owner["start_time"])
        if procs.is_alive(proc):
            raise OwnerAliveError(
                f"mesh {man.mesh_id} is owned by live process {proc.pid}; use force=True"
            )
    # The uplink first: its rules and settings live outside our namespaces (in the one
    # `up` ran in), and removing them needs nothing of ours to be running.
    from meshgate.runtime import uplink

    had_uplink = bool(man.section(uplink.SECTION))
    errors: list[str] = [f"uplink: {p}" for p in uplink.remove(man)]
    prefix = names.netns_prefix(man.mesh_id)
    recorded = [procs.ProcId(p["pid"], p["start_time"]) for p in data.get("processes", {}).values()]
    # A sandbox's bwrap is spared SIGTERM (its death would SIGKILL its container at once).
    sandboxes = [p["pid"] for p in data.get("processes", {}).values() if BWRAP in p["argv"]]
    procs.terminate(recorded, grace=grace, spare_leaders=sandboxes)
    found = bool(recorded) or had_uplink

    all_ns = sorted(
        {n for n in data.get("netns", []) if n.startswith(prefix)} | set(netns.list_names(prefix))
    )
    # Processes outlive namespaces: anything still inside ours (an exec'd shell, a process
    # spawned before it was recorded) is ours to end.
    strays = [
        p
        for ns in all_ns
        for pid in procs.pids_in_netns(str(netns.path(ns)))
        if pid != os.getpid() and (p := procs.identify(pid)) is not None
    ]
    procs.terminate(strays, grace=grace, group=False)
    rdir = names.runtime_dir(man.mesh_id)
    found = found or bool(all_ns) or rdir.exists()

    for ns, ifname in data.get("veths", []):
        if ns.startswith(prefix) and netns.exists(ns):
            netns.ip(ns, "link", "del", ifname, check=False)
    for ns in all_ns:
        try:
            netns.delete(ns)
        except netns.CommandError as e:
            errors.append(str(e))
    etc = set(data.get("etc_netns", []))
    with contextlib.suppress(FileNotFoundError):
        etc |= {n for n in os.listdir("/etc/netns") if n.startswith(prefix)}
    for ns in sorted(etc):
        if ns.startswith(prefix):
            shutil.rmtree(names.etc_netns_dir(ns), ignore_errors=True)
    for d in data.get("dirs", []):
        if d.startswith(str(rdir)):
            shutil.rmtree(d, ignore_errors=True)
    shutil.rmtree(rdir, ignore_errors=True)
    # emptyDir volumes on disk (in memory, they went with the runtime directory).
    shutil.rmtree(man.state_dir / "volumes", ignore_errors=True)
    for cg in data.get("cgroups", []):
        if Path(cg).name.startswith(prefix):
            found = True
            capture.remove_proxy_cgroup(Path(cg))
    if errors:
        raise RuntimeError("teardown incomplete: " + "; ".join(errors))
    with man.edit() as m:
        fresh = _empty(man.state_dir)
        m.clear()
        m.update(fresh)
    return found
