"""A joined node's network: its node namespace and bridge, routed to the first node.

Rules:
- The joined node's namespace is ``mg-<its mesh id>-node`` (named after its own state
  directory, as the first node's is), bridge ``mgbr0`` with the first address of its
  podCIDR, ip_forward on. Its own DNS server (``runtime.dns``, the zone the control
  plane serves, kept in this state directory's ``dns/``) listens on that bridge address,
  and its pods' resolv.conf names it, so they resolve while the first node's DNS is down;
  names outside the zone are forwarded to the first node's DNS. ``ensure_dns`` starts it
  (again, when it died), recorded in the manifest so ``down`` stops it.
- One veth pair links it to the first node's namespace: ``mgup0`` here (the link's .2),
  ``mgj<mesh id>`` there (.1); each side routes the other's pod range over it, and the
  joined node's default route is the first node (its way to the world, which routes the
  joined ranges back): NetworkPolicy and the enforced exit, installed here by the agent,
  decide what may leave. Both ends and the routes through them go when this namespace is
  deleted (``down``), so the first node keeps nothing of a node that left.
- The proxies' xDS client certificate, key and the mesh CA are written to the runtime
  directory's ``xds/`` (root:1337, 0750; files 0640), which every proxy sandbox of this
  node mounts (``containers.Launcher.proxy_sandbox``).
- Everything is recorded in this state directory's manifest before it is made; ``up``
  is idempotent.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from meshgate.runtime import dns, envoy, launch, manifest, names, netns, procs

NODE_IF = "mgup0"
DNS_KEY = "node/dns"
DNS_READY_TIMEOUT = 10.0


@dataclass(frozen=True)
class JoinedNetwork:
    first_netns: str  # the first node's namespace
    first_cidr: str  # its pod range
    pod_cidr: str  # this node's
    gateway: str  # this node's bridge address
    link_first: str
    link_node: str
    link_prefix: int = 30


def first_side_ifname(mid: str) -> str:
    name = f"mgj{mid}"
    assert len(name) <= names.IFNAME_MAX
    return name


class JoinedNode:
    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        self.state_dir = Path(os.path.realpath(state_dir))
        self.mesh_id = names.mesh_id(self.state_dir)
        self.manifest = manifest.Manifest(self.state_dir)
        self.netns = names.node_netns(self.mesh_id)
        self.runtime_dir = names.runtime_dir(self.mesh_id)
        self.tls_dir = names.xds_socket(self.mesh_id).parent

    def up(self, net: JoinedNetwork, tls: dict[str, bytes]) -> None:
        """Make (or adopt) the namespace, bridge, link and routes; write `tls` (file name
        -> content) for the proxies."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.manifest.claim_owner()
        self.manifest.record_dir(self.runtime_dir)
        names.RUN_ROOT.mkdir(mode=0o755, exist_ok=True)
        self.runtime_dir.mkdir(mode=0o755, exist_ok=True)
        os.chmod(self.runtime_dir, 0o755)
        self._tls(tls)
        ns = self.netns
        if not netns.exists(ns):
            self.manifest.record_netns(ns)
            netns.add(ns)
        prefix = net.pod_cidr.split("/")[1]
        if not netns.ip(ns, "link", "show", names.BRIDGE, check=False):
            netns.ip(ns, "link", "add", names.BRIDGE, "type", "bridge")
            netns.ip(ns, "addr", "add", f"{net.gateway}/{prefix}", "dev", names.BRIDGE)
        # A fixed MAC, as the first node's bridge has (see runtime.node).
        mac = "02:" + ":".join(self.mesh_id[i : i + 2] for i in range(0, 6, 2)) + ":00:01"
        netns.ip(ns, "link", "set", names.BRIDGE, "address", mac)
        netns.ip(ns, "link", "set", names.BRIDGE, "up")
        netns.sysctl(ns, "net.ipv4.ip_forward", "1")
        self._link(net)

    def _link(self, net: JoinedNetwork) -> None:
        ns, first = self.netns, net.first_netns
        if not netns.exists(first):
            raise RuntimeError(f"the first node's namespace {first} does not exist")
        there = first_side_ifname(self.mesh_id)
        if not netns.ip(ns, "link", "show", NODE_IF, check=False):
            self.manifest.record_veth(ns, NODE_IF)
            netns.ip(first, "link", "del", there, check=False)  # left by a killed agent
            netns.ip(
                ns, "link", "add", NODE_IF, "type", "veth", "peer", "name", there, "netns", first
            )
            netns.ip(ns, "addr", "add", f"{net.link_node}/{net.link_prefix}", "dev", NODE_IF)
            netns.ip(first, "addr", "add", f"{net.link_first}/{net.link_prefix}", "dev", there)
        netns.ip(ns, "link", "set", NODE_IF, "up")
        netns.ip(first, "link", "set", there, "up")
        netns.sysctl(first, "net.ipv4.ip_forward", "1")
        netns.ip(ns, "route", "replace", net.first_cidr, "via", net.link_first)
        netns.ip(ns, "route", "replace", "default", "via", net.link_first)
        netns.ip(first, "route", "replace", net.pod_cidr, "via", net.link_node)

    def ensure_dns(self, address: str, upstream: str) -> None:
        """Start this node's DNS server on `address` (the bridge's) unless it runs."""
        rec = self.manifest.read()["processes"].get(DNS_KEY)
        if rec is not None and procs.is_alive(procs.ProcId(rec["pid"], rec["start_time"])):
            return
        zone = dns.zone_dir(self.state_dir)
        zone.mkdir(parents=True, exist_ok=True)
        ready = self.manifest.dir / "dns.ready"
        ready.unlink(missing_ok=True)
        argv = [
            *netns.exec_prefix(self.netns),
            sys.executable, "-m", "meshgate.runtime.dns",
            "--zone-dir", str(zone), "--address", address, "--port", "53",
            "--ready-file", str(ready), "--upstream", upstream,
        ]  # fmt: skip
        log_dir = self.state_dir / "logs" / "node"
        log_dir.mkdir(parents=True, exist_ok=True)
        proc = launch.spawn(argv, log_dir / "dns.log")
        pid = procs.identify(proc.pid)
        if pid is not None:
            self.manifest.record_process(DNS_KEY, pid, argv)
        deadline = time.monotonic() + DNS_READY_TIMEOUT
        while not ready.exists():
            if proc.poll() is not None:
                raise RuntimeError(f"the node's DNS exited with {proc.returncode}; see the log")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the node's DNS not ready after {DNS_READY_TIMEOUT}s")
            time.sleep(0.05)

    def _tls(self, files: dict[str, bytes]) -> None:
        d = self.tls_dir
        d.mkdir(mode=0o750, exist_ok=True)
        os.chown(d, 0, envoy.PROXY_GID)
        os.chmod(d, 0o750)
        for name, data in files.items():
            path = d / name
            tmp = d / f".{name}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.chown(tmp, 0, envoy.PROXY_GID)
            os.chmod(tmp, 0o640)
            os.replace(tmp, path)

    def down(self, grace: float = 2.0) -> None:
        manifest.teardown(self.state_dir, force=True, grace=grace)
