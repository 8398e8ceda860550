"""Capture in a pod (outbound and inbound), and the one thing that exempts the proxy from it.

Rules:
- Capture redirects the pod's outbound TCP to the sidecar (port 15001) in chain
  MESHGATE_OUTPUT of the pod's own nat table, except 127.0.0.1 and the proxy's traffic.
  The rules live in the pod's network namespace and die with it.
- Outbound rules are written as Istio's istio-iptables writes ISTIO_OUTPUT, with
  MESHGATE_OUTPUT for ISTIO_OUTPUT and MESHGATE_REDIRECT for ISTIO_REDIRECT, in its order:
  excluded ports (``-p tcp --dport P -j RETURN``), the proxy's exemption, 127.0.0.1,
  excluded ranges (``-d CIDR -j RETURN``), included ports (``--dport P -j
  MESHGATE_REDIRECT``, whatever the destination), then included ranges (``-d CIDR -j
  MESHGATE_REDIRECT``, or one ``-j MESHGATE_REDIRECT`` for ``*``; nothing for an empty
  list, which leaves only the included ports captured). The jump from OUTPUT matches TCP
  only (meshgate captures no DNS), so Istio's UDP twins of the port rules are left out,
  and IPv6 ranges are left out of these IPv4 rules (pods have IPv4 addresses only).
- Inbound capture redirects TCP arriving at the pod from outside (nat PREROUTING, chain
  MESHGATE_INBOUND) to the sidecar's inbound port 15006, where mTLS and authorization are
  applied, as Istio's `istio-iptables` does. Which ports: Istio's pod annotations
  `traffic.sidecar.istio.io/includeInboundPorts` (``*``, the default, for all; empty for
  none; else a list) and `excludeInboundPorts`. Connections the pod makes to itself (the
  proxy handing a request to the app included) never pass PREROUTING, so never loop.
- The proxy is recognised by its cgroup (cgroup v2, `-m cgroup --path`), never by its uid
  or gid: an app keeps CAP_SETUID/CAP_SETGID and may become 1337, but it cannot join a
  cgroup without writing to the cgroup filesystem, which its sandbox does not show. The
  cgroup is `mg-<mesh id>-proxies` at the root of the cgroup v2 hierarchy, one per mesh,
  recorded in the manifest before it is made and removed by teardown.
- A process enters that cgroup before it execs (`in_proxy_cgroup` prefixes the argv with
  a shell that writes its own pid to cgroup.procs), so the proxy never opens a socket
  outside it. This is done outside `ip netns exec`, which mounts a /sys without cgroups.
- Without a writable cgroup v2 hierarchy the exemption falls back to uid and gid 1337
  (Istio's rule) and `exemption()` says so: an app that switches to 1337 then escapes.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from pathlib import Path

from meshgate.api.annotations import InboundPorts, OutboundCapture
from meshgate.runtime import envoy, names, netns

log = logging.getLogger(__name__)

CAPTURE_PORT = 15001
CAPTURE_CHAIN = "MESHGATE_OUTPUT"
REDIRECT_CHAIN = "MESHGATE_REDIRECT"
INBOUND_PORT = 15006
INBOUND_CHAIN = "MESHGATE_INBOUND"


@functools.cache
def cgroup2_mount() -> Path | None:
    """Where the cgroup v2 hierarchy is mounted in this (the host's) mount namespace."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as f:
            for line in f:
                pre, _, post = line.partition(" - ")
                if post.split()[:1] == ["cgroup2"]:
                    return Path(pre.split()[4])
    except OSError:
        pass
    return None


def cgroup_name(mid: str) -> str:
    return f"{names.netns_prefix(mid)}proxies"


def proxy_cgroup(mid: str) -> Path | None:
    """The mesh's proxy cgroup directory, or None without a usable cgroup v2 hierarchy."""
    mount = cgroup2_mount()
    if mount is None or not os.access(mount, os.W_OK):
        return None
    return mount / cgroup_name(mid)


def ensure_proxy_cgroup(mid: str) -> Path | None:
    """Create the proxy cgroup (idempotent); None when only the uid fallback is possible."""
    path = proxy_cgroup(mid)
    if path is None:
        return None
    try:
        path.mkdir(exist_ok=True)
    except OSError as exc:
        log.warning("no proxy cgroup (%s): capture exempts uid/gid 1337 instead", exc)
        return None
    return path


def remove_proxy_cgroup(path: Path, timeout: float = 2.0) -> None:
    """rmdir the cgroup once its last process has gone (the kernel refuses before)."""
    deadline = time.monotonic() + timeout
    while path.exists():
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() >= deadline:
                log.warning("cgroup %s still has processes; left in place", path)
                return
            time.sleep(0.05)


def in_proxy_cgroup(cgroup: Path | None, argv: list[str]) -> list[str]:
    """`argv`, run from inside the proxy cgroup (unchanged without one)."""
    if cgroup is None:
        return argv
    return ["sh", "-c", 'echo $$ > "$0" && exec "$@"', str(cgroup / "cgroup.procs"), *argv]


def exemption(cgroup: Path | None) -> list[str]:
    """The iptables matches that let the proxy's own connections out uncaptured."""
    if cgroup is not None:
        return [f"-m cgroup --path /{cgroup.name}"]
    return [f"-m owner --uid-owner {envoy.PROXY_UID}", f"-m owner --gid-owner {envoy.PROXY_GID}"]


def _inbound_rules(ports: InboundPorts) -> list[str]:
    if ports.none:
        return []
    lines = [f":{INBOUND_CHAIN} - [0:0]", f"-A PREROUTING -p tcp -j {INBOUND_CHAIN}"]
    redirect = f"-j REDIRECT --to-ports {INBOUND_PORT}"
    if ports.include is None:
        lines += [f"-A {INBOUND_CHAIN} -p tcp --dport {p} -j RETURN" for p in ports.exclude]
        lines.append(f"-A {INBOUND_CHAIN} -p tcp {redirect}")
    else:
        kept = [p for p in ports.include if p not in ports.exclude]
        lines += [f"-A {INBOUND_CHAIN} -p tcp --dport {p} {redirect}" for p in kept]
    return lines


def _ipv4(cidrs: tuple[str, ...]) -> list[str]:
    return [c for c in cidrs if ":" not in c]


def _outbound_rules(cgroup: Path | None, outbound: OutboundCapture) -> list[str]:
    chain, redirect = CAPTURE_CHAIN, f"-j {REDIRECT_CHAIN}"
    lines = [
        f":{chain} - [0:0]",
        f":{REDIRECT_CHAIN} - [0:0]",
        f"-A {REDIRECT_CHAIN} -p tcp -j REDIRECT --to-ports {CAPTURE_PORT}",
        f"-A OUTPUT -p tcp -j {chain}",
    ]
    # Port exclusions first, as istio-iptables has them: before anything may redirect.
    lines += [f"-A {chain} -p tcp --dport {p} -j RETURN" for p in outbound.exclude_ports]
    lines += [f"-A {chain} -p tcp {m} -j RETURN" for m in exemption(cgroup)]
    lines.append(f"-A {chain} -d 127.0.0.1/32 -j RETURN")
    # Range exclusions before any inclusion, so an excluded range inside an included one
    # (or inside *) goes direct.
    lines += [f"-A {chain} -d {c} -j RETURN" for c in _ipv4(outbound.exclude_ranges)]
    lines += [f"-A {chain} -p tcp --dport {p} {redirect}" for p in outbound.include_ports]
    if outbound.include_ranges is None:
        lines.append(f"-A {chain} {redirect}")
    else:
        lines += [f"-A {chain} -d {c} {redirect}" for c in _ipv4(outbound.include_ranges)]
    return lines


def rules(
    cgroup: Path | None,
    inbound: InboundPorts | None = None,
    outbound: OutboundCapture | None = None,
) -> str:
    """The iptables-restore input that installs capture in a pod (``inbound`` None: outbound
    capture only; ``outbound`` None: Istio's default, every destination and port)."""
    lines = ["*nat", *_outbound_rules(cgroup, outbound or OutboundCapture())]
    if inbound is not None:
        lines += _inbound_rules(inbound)
    lines += ["COMMIT", ""]
    return "\n".join(lines)


def install(
    ns: str,
    cgroup: Path | None,
    inbound: InboundPorts | None = None,
    outbound: OutboundCapture | None = None,
) -> None:
    netns.run(
        [*netns.exec_prefix(ns), "iptables-restore", "--noflush"],
        input_text=rules(cgroup, inbound, outbound),
    )


def describe(cgroup: Path | None) -> str:
    """One line for `status`: what exempts the proxy from capture."""
    if cgroup is None:
        return f"uid/gid {envoy.PROXY_UID} (no cgroup v2: an app that takes that uid escapes)"
    return f"cgroup {cgroup}"
