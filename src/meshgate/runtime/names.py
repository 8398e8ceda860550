"""Every host-global name the runtime uses, derived from the state directory.

Rules:
- One state directory is one mesh. Its mesh id is the first 6 hex digits of the sha256 of the
  directory's realpath, so two meshes on one host never share a name and the same directory always
  maps to the same names (a restarted control plane finds its namespaces again).
- Every host-global name (network namespace, `/etc/netns` entry, runtime directory) starts with
  `mg-<mesh id>` or lives under `/run/meshgate/<mesh id>/`; teardown deletes only such names.
- Interface names are at most 15 bytes (IFNAMSIZ - 1); Unix socket paths at most 107 bytes.
- Pure functions only: nothing here touches the system.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

# The same override as meshgate.home, so both agree on where the runtime directory is.
RUN_ROOT = Path(os.environ.get("MESHGATE_RUN_ROOT", "/run/meshgate"))
NETNS_PREFIX = "mg-"
IFNAME_MAX = 15
SOCKET_PATH_MAX = 107

BRIDGE = "mgbr0"
BRIDGE_IP = "10.34.0.1"
POD_PREFIX_LEN = 16
POD_NETWORK = "10.34.0.0/16"
NODES_NETWORK = "10.32.0.0/11"  # every node's pod range and link (docs/nodes.md)
NODE_TO_INET = "mginet0"
INET_TO_NODE = "mgnode0"
NODE_LINK_IP = "203.0.113.1"
INET_LINK_IP = "203.0.113.2"
LINK_PREFIX_LEN = 30
POD_IFNAME = "eth0"


def mesh_id(state_dir: str | os.PathLike[str]) -> str:
    """The 6-hex-digit id of the mesh whose state lives in `state_dir`."""
    real = os.path.realpath(os.fspath(state_dir))
    return hashlib.sha256(real.encode()).hexdigest()[:6]


def netns_prefix(mid: str) -> str:
    """The prefix shared by every network namespace of mesh `mid`."""
    return f"{NETNS_PREFIX}{mid}-"


def node_netns(mid: str) -> str:
    return f"{netns_prefix(mid)}node"


def inet_netns(mid: str) -> str:
    return f"{netns_prefix(mid)}inet"


def pod_id(namespace: str, name: str) -> str:
    """A short stable id for a pod; 8 hex digits keeps collisions unlikely for thousands of pods."""
    return hashlib.sha256(f"{namespace}/{name}".encode()).hexdigest()[:8]


def pod_netns(mid: str, pid: str) -> str:
    return f"{netns_prefix(mid)}{pid}"


def pod_host_ifname(pid: str) -> str:
    """The node-side end of a pod's veth pair (inside the node namespace)."""
    name = f"mgv{pid}"
    assert len(name) <= IFNAME_MAX
    return name


def runtime_dir(mid: str) -> Path:
    """World-readable (0755) directory for what uid 1337 must open: bootstraps, sockets."""
    return RUN_ROOT / mid


def xds_socket(mid: str) -> Path:
    # A directory of its own (root:1337, 0750): proxies' sandboxes bind the directory, so a
    # control plane that restarts and makes a new socket is reached again.
    path = runtime_dir(mid) / "xds" / "xds.sock"
    assert len(os.fsencode(path)) <= SOCKET_PATH_MAX
    return path


def etc_netns_dir(netns: str) -> Path:
    """Where `ip netns exec` finds the per-namespace resolv.conf it bind-mounts."""
    return Path("/etc/netns") / netns


def envoy_copy_dir(version: str) -> Path:
    """Shared (not per-mesh) place for a copy of the Envoy binary that uid 1337 can execute."""
    return RUN_ROOT / f"envoy-{version}"
