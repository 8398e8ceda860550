"""The real programs behind world hosts with a ``backend``: httpbin, nginx, squid.

Rules:
- Each program runs in the world's network namespace, listening on its host's address only
  (``worldconf`` binds the configs), inside a sandbox of its own (``sandbox``: a fresh root,
  the host's programs read-only), as `nobody` with no capabilities; the world namespace lets
  unprivileged programs bind low ports (``ip_unprivileged_port_start=0``, a per-namespace
  setting). httpbin is Debian's (python3-httpbin under Debian's gunicorn, the system
  Python's: PyPI's httpbin pins a greenlet older than the test browser's driver needs, and
  a venv under /root is out of `nobody`'s reach).
- What a program sees: its config where it looks for it (/etc/nginx/nginx.conf,
  /etc/squid/squid.conf), the user's ``files`` read-only at their places, the host's world
  certificate and the world CA at /srv/meshgate-world/{tls.crt,tls.key,ca.crt}, an
  /etc/hosts with the world's names, an /etc/resolv.conf naming the mesh DNS, and
  writable /run, /var/log/<program> and its spool/temp directories. All of them are
  copies made at each start in ``S/world/hosts/<host>/`` (owned by the program's user, so
  a key stays 0600), never the user's files themselves.
- Logs: ``S/logs/world/<host>/`` is the program's /var/log/<program> (nginx's access.log
  and error.log, squid's access.log and cache.log) and holds its standard output and error
  as ``<program>.log`` (gunicorn's access log for httpbin).
- httpbin runs as two gunicorn servers (gthread workers, so `/delay/N` holds one thread):
  plain HTTP on the host's http ports, TLS with the world certificate on its https ports.
- Processes are recorded in the manifest under ``node/world/<host>/<program>[:<port>]``:
  the control plane restarts one that dies, and teardown ends them. A running program whose
  inputs (backend, config and files contents, world names) are unchanged is kept.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from meshgate.runtime import envoy, launch, manifest, names, netns, procs, sandbox, worldconf
from meshgate.runtime.world import Host, World

GUNICORN = "/usr/bin/gunicorn"  # Debian's, run by the system Python that has its httpbin
HTTPBIN_PACKAGE = "/usr/lib/python3/dist-packages/httpbin"

if TYPE_CHECKING:  # worldca imports cryptography, which only `up` needs
    from meshgate.runtime.worldca import WorldPki

KEY_PREFIX = "node/world/"
NOBODY = 65534
READY_TIMEOUT = 20.0
WORLD_CERTS = "/srv/meshgate-world"


@dataclass(frozen=True)
class WorldProc:
    key: str
    argv: list[str]
    log: Path
    # Where it listens once ready: (address, port) in the world's namespace.
    listens: tuple[str, int]
    fingerprint: str
    env: dict[str, str] = field(default_factory=dict)


def host_dir(state_dir: Path, host: Host) -> Path:
    return state_dir / "world" / "hosts" / host.names[0]


def log_dir(state_dir: Path, host: Host) -> Path:
    """Where a world host's program writes its logs (documented in docs/world.md)."""
    return state_dir / "logs" / "world" / host.names[0]


def _owned_dir(path: Path, uid: int) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, uid, uid)
    os.chmod(path, 0o755)
    return path


def _copy(src: Path, dest: Path, uid: int, mode: int = 0o644) -> str:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    os.chown(dest, uid, uid)
    os.chmod(dest, mode)
    return str(dest)


def _write(dest: Path, text: str, uid: int) -> str:
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(text, encoding="utf-8")
    os.chown(dest, uid, uid)
    os.chmod(dest, 0o644)
    return str(dest)


def prepare(state_dir: Path, inet: str, world: World, host: Host, pki: WorldPki) -> list[WorldProc]:
    """Lay out the host's files and give the processes that serve it."""
    assert host.backend is not None
    kind = host.backend.kind
    uid, priv = NOBODY, envoy.setpriv_argv(NOBODY, NOBODY, [])
    d = host_dir(state_dir, host)
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    logs = _owned_dir(log_dir(state_dir, host), uid)
    server = pki.servers[host.address]
    files = {
        "/etc/hosts": _write(d / "etc" / "hosts", worldconf.hosts_file(world.zone()), uid),
        "/etc/resolv.conf": _write(
            d / "etc" / "resolv.conf", f"nameserver {names.BRIDGE_IP}\n", uid
        ),
    }
    _copy(server.cert, d / "world" / "tls.crt", uid)
    _copy(server.key, d / "world" / "tls.key", uid, 0o600)
    _copy(pki.ca_cert, d / "world" / "ca.crt", uid)
    mounts = [sandbox.Mount(str(d / "world"), WORLD_CERTS, read_only=True)]
    digest = hashlib.sha256(host.model_dump_json().encode())
    digest.update(repr(sorted(world.zone().items())).encode())
    # A user's files, one read-only directory per directory they go to (a bind of a single
    # file would need its parents made, which bwrap makes private to root).
    by_dir: dict[str, dict[str, Path]] = {}
    for inside, here in sorted(host.backend.files.items()):
        parent, _, name = inside.rpartition("/")
        by_dir.setdefault(parent, {})[name] = Path(here)
    for i, (inside_dir, entries) in enumerate(sorted(by_dir.items())):
        for name, src in entries.items():
            digest.update(src.read_bytes())
            _copy(src, d / "files" / str(i) / name, uid, 0o600)
        os.chown(d / "files" / str(i), uid, uid)
        mounts.append(sandbox.Mount(str(d / "files" / str(i)), inside_dir, read_only=True))
    mounts.append(sandbox.Mount(str(_owned_dir(d / "run", uid)), "/run"))
    if kind != "httpbin":
        text = worldconf.DEFAULT_SQUID
        if host.backend.config is not None:
            text = Path(host.backend.config).read_text(encoding="utf-8")
        if kind == "squid":
            # Its ICMP helper needs a raw socket (a capability): without it squid exits.
            text = "pinger_enable off\n" + text
        source = host.backend.config or "meshgate's default squid.conf"
        bound = worldconf.bind_config(kind, text, host.address, source)
        digest.update(bound.encode())
        files[f"/etc/{kind}/{kind}.conf"] = _write(d / f"{kind}.conf", bound, uid)
        mounts.append(sandbox.Mount(str(logs), f"/var/log/{kind}"))
        spool = "/var/lib/nginx" if kind == "nginx" else "/var/spool/squid"
        mounts.append(sandbox.Mount(str(_owned_dir(d / "spool", uid)), spool))
        if kind == "squid":
            mounts.append(sandbox.Mount(str(_owned_dir(d / "cache", uid)), "/var/cache/squid"))
    box = sandbox.Sandbox(hostname=host.names[0][:63], files=files, mounts=tuple(mounts))
    prefix = [*netns.exec_prefix(inet), *sandbox.bwrap_argv(box), *priv]
    fingerprint = digest.hexdigest()
    keys = planned_keys(host)
    if kind == "nginx":
        argv = [*prefix, "nginx", "-g", "daemon off;"]
        return [WorldProc(keys[0], argv, logs / "nginx.log", _first_port(host), fingerprint)]
    if kind == "squid":
        argv = [*prefix, "squid", "-N", "-f", "/etc/squid/squid.conf"]
        return [WorldProc(keys[0], argv, logs / "squid.log", _first_port(host), fingerprint)]
    out = []
    for key, p in zip(keys, host.ports, strict=True):
        tls = []
        if p.protocol == "https":
            tls = ["--certfile", f"{WORLD_CERTS}/tls.crt", "--keyfile", f"{WORLD_CERTS}/tls.key"]
        argv = [
            *prefix, GUNICORN,
            "--worker-class", "gthread", "--workers", "1", "--threads", "16",
            "--bind", f"{host.address}:{p.port}", "--access-logfile", "-",
            "--error-logfile", "-", *tls, "httpbin:app",
        ]  # fmt: skip
        out.append(
            WorldProc(
                key,
                argv,
                logs / f"httpbin-{p.port}.log",
                (host.address, p.port),
                fingerprint,
                {"PYTHONDONTWRITEBYTECODE": "1", "HOME": "/tmp"},
            )
        )
    return out


def _first_port(host: Host) -> tuple[str, int]:
    return host.address, min(p.port for p in host.ports)


def listening(inet: str, address: str, port: int) -> bool:
    """Whether something listens on address:port (TCP) in the world's namespace."""
    out = subprocess.run(
        [*netns.exec_prefix(inet), "ss", "-Hltn", f"src {address}:{port}"],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.returncode == 0 and bool(out.stdout.strip())


def _recorded(man: manifest.Manifest) -> dict[str, dict[str, object]]:
    return {k: v for k, v in man.read()["processes"].items() if k.startswith(KEY_PREFIX)}


def _proc_id(rec: dict[str, object]) -> procs.ProcId:
    return procs.ProcId(int(str(rec["pid"])), int(str(rec["start_time"])))


def _stop(man: manifest.Manifest, keys: list[str]) -> None:
    recs = _recorded(man)
    ids = [_proc_id(recs[k]) for k in keys if k in recs]
    procs.terminate(ids, spare_leaders={p.pid for p in ids})
    for k in keys:
        man.forget_process(k)


def stop_all(man: manifest.Manifest) -> None:
    _stop(man, list(_recorded(man)))


def _tail(path: Path, lines: int = 8) -> str:
    try:
        return "".join(path.read_text(errors="replace").splitlines(keepends=True)[-lines:])
    except OSError:
        return ""


def ensure(man: manifest.Manifest, state_dir: Path, inet: str, world: World, pki: WorldPki) -> None:
    """Run every backend host's programs (and nothing else of ours in the world)."""
    hosts = world.backend_hosts()
    for h in hosts:
        assert h.backend is not None
        if h.backend.kind == "httpbin":
            missing = [
                pkg
                for path, pkg in ((GUNICORN, "gunicorn"), (HTTPBIN_PACKAGE, "python3-httpbin"))
                if not os.path.exists(path)
            ]
        else:
            program = h.backend.kind
            missing = [] if shutil.which(program, path=launch.DEFAULT_PATH) else [program]
        if missing:
            raise RuntimeError(
                f"world host {h.names[0]}: {', '.join(missing)} not installed "
                f"(Debian's {' and '.join(missing)}; `make deps` installs them as root)"
            )
    if hosts:
        netns.sysctl(inet, "net.ipv4.ip_unprivileged_port_start", "0")
    recorded = _recorded(man)
    running = {k for k, rec in recorded.items() if procs.is_alive(_proc_id(rec))}
    # Those of hosts the world no longer has, and dead ones (started again below).
    planned = {k for h in hosts for k in planned_keys(h)}
    _stop(man, [k for k in recorded if k not in planned or k not in running])
    wanted: dict[str, WorldProc] = {}
    for h in hosts:
        stamp = host_dir(state_dir, h) / ".fingerprint"
        old = stamp.read_text() if stamp.exists() else None
        plan = prepare(state_dir, inet, world, h, pki)
        if old == plan[0].fingerprint and all(p.key in running for p in plan):
            stamp.write_text(old)
            continue  # running as asked: keep it
        _stop(man, [p.key for p in plan])
        stamp.write_text(plan[0].fingerprint)
        wanted.update((p.key, p) for p in plan)
    started = []
    for p in wanted.values():
        proc = launch.spawn(p.argv, p.log, env=p.env)
        pid = procs.identify(proc.pid)
        if pid is not None:
            man.record_process(p.key, pid, p.argv)
        started.append((p, proc))
    deadline = time.monotonic() + READY_TIMEOUT
    for p, proc in started:
        while not listening(inet, *p.listens):
            if proc.poll() is not None or time.monotonic() > deadline:
                why = f"exited with {proc.returncode}" if proc.poll() is not None else "not ready"
                raise RuntimeError(
                    f"world {p.key.removeprefix(KEY_PREFIX)} {why}; see {p.log}:\n{_tail(p.log)}"
                )
            time.sleep(0.1)


def planned_keys(host: Host) -> list[str]:
    """The manifest keys of the processes serving ``host``."""
    assert host.backend is not None
    base = f"{KEY_PREFIX}{host.names[0]}/{host.backend.kind}"
    if host.backend.kind == "httpbin":
        return [f"{base}:{p.port}" for p in host.ports]
    return [base]
