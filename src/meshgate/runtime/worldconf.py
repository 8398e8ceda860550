"""The configs of a world host's real program: checked, and bound to the host's address.

Rules:
- Every world host shares the world's network namespace, so a program must listen on its
  own host's address only (a wildcard bind would take the port from every other host). A
  user's config says `listen 443` as it would on a machine of its own: nginx's `listen` and
  squid's `http_port`/`https_port` with no address, `*` or `0.0.0.0` are bound to the
  host's address; the host's own address and loopback are kept; IPv6 ones are dropped (the
  world is IPv4); any other address is an error naming the file, line and directive.
- Only the first argument of those directives is rewritten, in a copy; the user's file is
  never touched. Comments are ignored.
- meshgate starts nginx in the foreground (`-g 'daemon off;'`): its config may not set
  `daemon`. A `user` directive is harmless (the program is not root; it only warns).
- Files given to a program are mounted where it expects them, never over the host's
  program trees (/usr, /bin, /lib...) nor over /proc, /sys, /dev, /run or /tmp. The files
  of one directory are mounted as that directory: under /etc it must be a directory of its
  own directly below /etc that the host does not have (/etc/nginx-ca-certs, not
  /etc/nginx/certs), since the host's /etc is shown read-only.
- Pure but for `check_target`, which looks whether a directory exists on the host.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import PurePosixPath

# Directives whose first argument is where the program listens, per program.
LISTEN = {"nginx": ("listen",), "squid": ("http_port", "https_port")}
# Directives meshgate sets itself, per program.
OWNED = {"nginx": ("daemon",)}
FORBIDDEN_TARGETS = (
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
    "/proc", "/sys", "/dev", "/run", "/tmp",
)  # fmt: skip

# squid's config when the user gives none: the http-proxy task's, logging to the usual place.
DEFAULT_SQUID = """\
http_port 3128
acl SSL_ports port 443
acl CONNECT method CONNECT
http_access deny CONNECT !SSL_ports
http_access allow all
cache deny all
access_log stdio:/var/log/squid/access.log squid
cache_log /var/log/squid/cache.log
coredump_dir /var/spool/squid
"""

_DIRECTIVE = re.compile(r"^(\s*)([A-Za-z_]+)(\s+)([^\s;#]+)")


class ConfigError(ValueError):
    """A config meshgate cannot run; the message names the file, line and directive."""


def check_target(path: str) -> None:
    """A path inside a program's sandbox where a user's file may be mounted."""
    p = PurePosixPath(path)
    if not p.is_absolute() or ".." in p.parts:
        raise ValueError(f"{path}: a file's place inside is an absolute path without '..'")
    for top in FORBIDDEN_TARGETS:
        if p == PurePosixPath(top) or PurePosixPath(top) in p.parents:
            raise ValueError(f"{path}: files cannot be mounted under {top}")
    parent = p.parent
    if parent == PurePosixPath("/") or parent == PurePosixPath("/etc"):
        raise ValueError(f"{path}: give the file a directory of its own (e.g. /etc/NAME/...)")
    if PurePosixPath("/etc") in parent.parents and (
        parent.parent != PurePosixPath("/etc") or os.path.lexists(parent)
    ):
        raise ValueError(
            f"{path}: under /etc, a file goes in a new directory directly below /etc "
            "(the host's /etc is read-only to the program)"
        )


def _bound(arg: str, address: str) -> str | None:
    """``arg`` (a listen address) bound to ``address``; None to drop it; raises if foreign."""
    if arg.isdigit():
        return f"{address}:{arg}"
    if arg.startswith("["):
        return None  # IPv6: the world has none
    host, sep, port = arg.rpartition(":")
    if not sep or not port.isdigit():
        return arg  # a unix socket, or nothing we know: the program judges it
    if host in ("*", "0.0.0.0"):
        return f"{address}:{port}"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        if host == "localhost":
            return arg
        raise ValueError(f"listens on {host!r}: give a port or the host's address") from None
    if str(ip) == address or ip.is_loopback:
        return arg
    raise ValueError(f"listens on {host}, not on the host's address {address}")


def bind_config(kind: str, text: str, address: str, source: str) -> str:
    """``text`` (the config of program ``kind``) with its listening directives bound to
    ``address``; ``source`` names the file in errors."""
    out = []
    for n, line in enumerate(text.splitlines(keepends=True), start=1):
        m = _DIRECTIVE.match(line)
        if m is None:
            out.append(line)
            continue
        directive = m.group(2)
        if directive in OWNED.get(kind, ()):
            raise ConfigError(f"{source}:{n}: {directive}: meshgate sets this itself; leave it out")
        if directive not in LISTEN.get(kind, ()):
            out.append(line)
            continue
        try:
            bound = _bound(m.group(4), address)
        except ValueError as exc:
            raise ConfigError(f"{source}:{n}: {directive} {m.group(4)}: {exc}") from None
        if bound is None:
            out.append(f"{m.group(1)}# (meshgate: IPv6 dropped) {line.lstrip()}")
        else:
            out.append(line[: m.start(4)] + bound + line[m.end(4) :])
    return "".join(out)


def hosts_file(zone: Mapping[str, list[str]]) -> str:
    """/etc/hosts for a world program: loopback and the world's names."""
    lines = ["127.0.0.1 localhost\n"]
    lines += [f"{addrs[0]} {name}\n" for name, addrs in sorted(zone.items()) if addrs]
    return "".join(lines)
