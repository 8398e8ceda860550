"""The node: a private network namespace with the pod bridge, the mesh DNS and, optionally, a
simulated internet.

Rules:
- Node namespace `mg-<id>-node`: bridge `mgbr0` with 10.34.0.1/16 (pods get 10.34.x.y), and
  ip_forward=1. meshgate's DNS server runs there on 10.34.0.1:53 (UDP and TCP).
- With a world: namespace `mg-<id>-inet`, linked to the node by a veth pair (node side
  203.0.113.1/30, inet side 203.0.113.2/30); the world's host addresses sit on the inet `lo`;
  the node routes each of them to the inet side and the inet routes the pod network back. No
  NAT. The world's hosts are served by one static Envoy in the inet namespace; https hosts
  use certificates of the world CA (``worldca``), published as ``world-ca.pem`` in the
  runtime directory for pods to trust. Hosts with a backend are served by real programs
  (``worldprocs``) in the same namespace.
- Without a world and without an uplink nothing routes out of the node: there is no link to
  the host network at all. The uplink (``uplink``, opt-in with ``meshgate up --uplink``)
  links the node to the namespace the control plane runs in, and gives the DNS server the
  upstream resolvers it forwards other names to. Without it the DNS forwards nothing.
- `up()` is idempotent and adopts what is already there (a restarted control plane calls it
  again); everything is recorded in the manifest before it is created. `down()` tears down the
  whole mesh (pods included: they live on the node).
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from meshgate.runtime import (
    dns,
    envoy,
    launch,
    manifest,
    names,
    netns,
    procs,
    uplink,
    worldprocs,
)
from meshgate.runtime.world import World, envoy_bootstrap

DNS_KEY = "node/dns"
WORLD_KEY = "node/world-envoy"
READY_TIMEOUT = 10.0


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=1.0)
        self._path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(1.0)
        s.connect(self._path)
        self.sock = s


def admin_get(sock_path: Path, path: str) -> tuple[int, str]:
    """GET `path` from an Envoy admin listening on a Unix socket."""
    conn = _UnixHTTPConnection(str(sock_path))
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace")
    finally:
        conn.close()


class Node:
    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        self.state_dir = Path(os.path.realpath(state_dir))
        self.mesh_id = names.mesh_id(self.state_dir)
        self.manifest = manifest.Manifest(self.state_dir)
        self.netns = names.node_netns(self.mesh_id)
        self.inet = names.inet_netns(self.mesh_id)
        self.runtime_dir = names.runtime_dir(self.mesh_id)
        self.log_dir = self.state_dir / "logs" / "node"

    # -- lifecycle -------------------------------------------------------------------------

    def up(
        self,
        world: World | None = None,
        link: uplink.UplinkConfig | None = None,
        dns_upstreams: tuple[str, ...] = (),
    ) -> None:
        """``link`` (enabled) attaches the node to this process's network namespace;
        ``dns_upstreams`` ("IP:PORT") are where the DNS forwards names it does not know
        (only with the uplink: without a way out there is nobody to ask)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.manifest.claim_owner()
        self._runtime_dir()
        self._node_netns()
        if link is not None and link.enabled:
            uplink.install(self.manifest, self.netns, link)
        else:
            dns_upstreams = ()
            self._no_uplink()
        dns.write_zone(self.state_dir, world.zone() if world else {}, layer="world")
        self._dns(dns_upstreams)
        if world is not None:
            self._inet(world)
            self._world_envoy(world)
        else:
            self._no_world()
        self.manifest.set_section(
            "node",
            {"world": world is not None, "dnsUpstreams": list(dns_upstreams)},
        )

    def down(self, grace: float = 2.0) -> None:
        manifest.teardown(self.state_dir, force=True, grace=grace)

    @property
    def world_admin_socket(self) -> Path:
        return self.runtime_dir / "world-admin.sock"

    # -- steps (each idempotent) -----------------------------------------------------------

    def _runtime_dir(self) -> None:
        self.manifest.record_dir(self.runtime_dir)
        names.RUN_ROOT.mkdir(mode=0o755, exist_ok=True)
        self.runtime_dir.mkdir(mode=0o755, exist_ok=True)
        os.chmod(self.runtime_dir, 0o755)

    def _node_netns(self) -> None:
        ns = self.netns
        if not netns.exists(ns):
            self.manifest.record_netns(ns)
            netns.add(ns)
        if not netns.ip(ns, "link", "show", names.BRIDGE, check=False):
            netns.ip(ns, "link", "add", names.BRIDGE, "type", "bridge")
            netns.ip(
                ns, "addr", "add", f"{names.BRIDGE_IP}/{names.POD_PREFIX_LEN}", "dev", names.BRIDGE
            )
        # A fixed MAC: a bridge without one takes its lowest port's, so the gateway's (and
        # DNS server's) MAC changed whenever a pod came or went, and pods sent to the old one
        # until their neighbour entry expired (a 15-45 s outage after a rollout).
        mac = "02:" + ":".join(self.mesh_id[i : i + 2] for i in range(0, 6, 2)) + ":00:01"
        netns.ip(ns, "link", "set", names.BRIDGE, "address", mac)
        netns.ip(ns, "link", "set", names.BRIDGE, "up")
        netns.sysctl(ns, "net.ipv4.ip_forward", "1")

    def _running(self, key: str) -> bool:
        rec = self.manifest.read()["processes"].get(key)
        return rec is not None and procs.is_alive(procs.ProcId(rec["pid"], rec["start_time"]))

    def _start(self, key: str, argv: list[str], log: Path, ready: Any) -> None:
        proc = launch.spawn(argv, log)
        pid = procs.identify(proc.pid)
        if pid is not None:
            self.manifest.record_process(key, pid, argv)
        deadline = time.monotonic() + READY_TIMEOUT
        while not ready():
            if proc.poll() is not None:
                raise RuntimeError(f"{key} exited with {proc.returncode}; see {log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{key} not ready after {READY_TIMEOUT}s; see {log}")
            time.sleep(0.05)

    def _no_uplink(self) -> None:
        """Remove an uplink left from an earlier `up --uplink`: nothing may route out now."""
        problems = uplink.remove(self.manifest)
        if problems:
            raise uplink.UplinkError("removing the earlier uplink: " + "; ".join(problems))
        self.manifest.forget_veth(self.netns, uplink.NODE_IF)

    def _dns(self, upstreams: tuple[str, ...] = ()) -> None:
        wanted = [arg for u in upstreams for arg in ("--upstream", u)]
        rec = self.manifest.read()["processes"].get(DNS_KEY)
        if self._running(DNS_KEY) and rec is not None:
            argv = rec["argv"]
            running = [
                arg
                for i, flag in enumerate(argv[:-1])
                if flag == "--upstream"
                for arg in (flag, argv[i + 1])
            ]
            if running == wanted:
                return
            # Other upstreams than the running server's (an uplink added or dropped).
            procs.terminate([procs.ProcId(rec["pid"], rec["start_time"])])
            self.manifest.forget_process(DNS_KEY)
        ready_file = self.manifest.dir / "dns.ready"
        ready_file.unlink(missing_ok=True)
        argv = [
            *netns.exec_prefix(self.netns),
            sys.executable,
            "-m",
            "meshgate.runtime.dns",
            "--zone-dir",
            str(dns.zone_dir(self.state_dir)),
            "--address",
            names.BRIDGE_IP,
            "--port",
            "53",
            "--ready-file",
            str(ready_file),
            *wanted,
        ]
        self._start(DNS_KEY, argv, self.log_dir / "dns.log", ready_file.exists)

    def _inet(self, world: World) -> None:
        ns, node = self.inet, self.netns
        if not netns.exists(ns):
            self.manifest.record_netns(ns)
            netns.add(ns)
        if not netns.ip(node, "link", "show", names.NODE_TO_INET, check=False):
            self.manifest.record_veth(node, names.NODE_TO_INET)
            netns.ip(
                node, "link", "add", names.NODE_TO_INET, "type", "veth",
                "peer", "name", names.INET_TO_NODE, "netns", ns,
            )  # fmt: skip
            netns.ip(
                node, "addr", "add", f"{names.NODE_LINK_IP}/{names.LINK_PREFIX_LEN}",
                "dev", names.NODE_TO_INET,
            )  # fmt: skip
            netns.ip(
                ns, "addr", "add", f"{names.INET_LINK_IP}/{names.LINK_PREFIX_LEN}",
                "dev", names.INET_TO_NODE,
            )  # fmt: skip
        netns.ip(node, "link", "set", names.NODE_TO_INET, "up")
        netns.ip(ns, "link", "set", names.INET_TO_NODE, "up")
        netns.ip(ns, "route", "replace", names.POD_NETWORK, "via", names.NODE_LINK_IP)
        # Joined nodes' pods (10.35.0.0/16 ...) reach the world through this node too.
        netns.ip(ns, "route", "replace", names.NODES_NETWORK, "via", names.NODE_LINK_IP)
        for addr in world.addresses():
            netns.ip(ns, "addr", "replace", f"{addr}/32", "dev", "lo")
            netns.ip(node, "route", "replace", f"{addr}/32", "via", names.INET_LINK_IP)

    def _no_world(self) -> None:
        """Remove a world left from an earlier `up(world)`: nothing may route out now."""
        rec = self.manifest.read()["processes"].get(WORLD_KEY)
        if rec is not None:
            procs.terminate([procs.ProcId(rec["pid"], rec["start_time"])])
            self.manifest.forget_process(WORLD_KEY)
        worldprocs.stop_all(self.manifest)
        if netns.exists(self.inet):
            netns.delete(self.inet)  # takes the node side of the veth pair with it
        self.manifest.forget_netns(self.inet)
        self.manifest.forget_veth(self.netns, names.NODE_TO_INET)

    def _world_envoy(self, world: World) -> None:
        from meshgate.runtime.worldca import ensure_world_pki

        pki = ensure_world_pki(self.state_dir, self.runtime_dir, world.https_hosts())
        worldprocs.ensure(self.manifest, self.state_dir, self.inet, world, pki)
        certs = {addr: (c.cert, c.key) for addr, c in pki.servers.items()}
        bootstrap = self.runtime_dir / "world-envoy.json"
        content = json.dumps(envoy_bootstrap(world, self.world_admin_socket, certs), indent=1)
        if self._running(WORLD_KEY):
            if bootstrap.exists() and bootstrap.read_text() == content:
                return
            rec = self.manifest.read()["processes"][WORLD_KEY]
            procs.terminate([procs.ProcId(rec["pid"], rec["start_time"])])
        bootstrap.write_text(content)
        self.world_admin_socket.unlink(missing_ok=True)
        argv = [
            *netns.exec_prefix(self.inet),
            *envoy.envoy_argv(envoy.package_binary(), bootstrap, concurrency=1),
        ]
        self._start(WORLD_KEY, argv, self.log_dir / "world-envoy.log", self._world_ready)

    def _world_ready(self) -> bool:
        try:
            status, body = admin_get(self.world_admin_socket, "/ready")
        except OSError:
            return False
        return status == 200 and "LIVE" in body
