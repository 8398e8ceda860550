"""Control-plane replicas on one etcd: the mesh they share, and where each serves xDS.

Rules:
- The mesh record (``<store prefix>/control/mesh``) is written once, by the first control plane that
  starts on an empty etcd, in one transaction that succeeds only if it is absent. It names
  the NODE OWNER: that control plane's state directory and mesh id. The node owner runs
  the node (namespaces, bridge, DNS, the world) and every pod and proxy on it (the
  kubelet's role); any other control plane started on the same etcd (another
  ``MESHGATE_HOME``) is a replica without a node: it serves the API and xDS, and runs the
  controllers when it leads. The node owner restarted (same state directory) is the node
  owner again; pods and proxies outlive it as they outlive any control-plane restart.
  A node owner whose state directory is gone (its node can never come back: its manifest
  went with it) and that is not running is replaced: the next control plane to start
  takes the node over (one transaction on the record's revision, so only one does).
- The same transaction stores the mesh's secrets: every file of the node owner's
  ``security/`` directory (the CA root and key, rotation state, the key proxies'
  xDS credentials are derived from), as Istio keeps ``istio-ca-secret`` in its cluster.
  Every later start (a replica, the node owner restarted) writes etcd's copy into its
  own ``security/`` before its CA loads, so every replica
  issues certificates the proxies trust and accepts every proxy's credential. They are
  secrets in etcd: protect etcd as you would the CA key (TLS, auth, disk).
- xDS slots: the proxies' bootstraps list ``XDS_SLOTS`` socket paths in the node owner's
  runtime directory, ``xds/xds-<n>.sock``; each replica claims one slot (``control/
  xds-slots/<n>`` holding its mesh id, kept across restarts, given back by ``down``) and
  serves there. A replica started later takes a free slot its proxies already list, so no
  proxy restarts for it (the proxies' sandboxes bind the whole directory).
- Each replica registers itself under ``control/replicas/<mesh id>`` with a lease of its
  own (``REPLICA_TTL``), so ``status`` lists the replicas alive now.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshgate.home import mesh_id
from meshgate.runtime import names
from meshgate.server.leader import Etcd

# Keys under ``<store prefix>/control/`` (``Etcd.key``).
log = logging.getLogger("meshgate.replicas")

MESH_KEY = "mesh"
SECURITY_PREFIX = "mesh-security/"
SLOT_PREFIX = "xds-slots/"
REPLICA_PREFIX = "replicas/"
XDS_SLOTS = 5
REPLICA_TTL = 5


class ReplicaError(Exception):
    pass


@dataclass(frozen=True)
class Mesh:
    node_owner: str  # the mesh id (and runtime directory name) of the node owner
    node_home: str
    replica: str  # this control plane's mesh id
    slot: int | None = None

    @property
    def owns_node(self) -> bool:
        return self.node_owner == self.replica

    def xds_sockets(self) -> list[str]:
        """Every slot's socket, as each proxy's bootstrap lists them."""
        return [str(xds_slot_socket(self.node_owner, n)) for n in range(XDS_SLOTS)]


def xds_slot_socket(node_owner: str, slot: int) -> Path:
    return names.xds_socket(node_owner).parent / f"xds-{slot}.sock"


def _security_files(home: Path) -> dict[str, bytes]:
    root = home / "security"
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.name.endswith(".tmp"):
            out[str(path.relative_to(root))] = path.read_bytes()
    return out


def write_security(home: Path, files: dict[str, bytes]) -> None:
    root = home / "security"
    for rel, content in files.items():
        if ".." in Path(rel).parts or Path(rel).is_absolute():
            raise ReplicaError(f"etcd {SECURITY_PREFIX}{rel}: not a path inside security/")
        path = root / rel
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
        os.replace(tmp, path)
    os.chmod(root, 0o700)


def ensure_local_secrets(home: Path) -> None:
    """Make the CA root and the credential key now (they are made on first use)."""
    from meshgate.security import proxy_credentials
    from meshgate.security.ca import MeshCA

    MeshCA(home).trust_bundle()
    proxy_credentials.load_or_create_key(home)


async def join(etcd: Etcd, home: Path) -> Mesh:
    """The mesh this control plane belongs to: founded here if etcd has none yet (this
    one owns the node), else joined (its secrets copied into ``home``)."""
    me = mesh_id(home)
    mesh_key = etcd.key(MESH_KEY)
    found = await etcd.call(lambda c: c.get(mesh_key))
    if found is None:
        ensure_local_secrets(home)
        record = json.dumps({"nodeOwner": me, "nodeHome": str(home.resolve())}).encode()
        files = _security_files(home)
        won, _ = await etcd.call(
            lambda c: c.transaction(
                compare=[c.transactions.create(mesh_key) == 0],
                success=[
                    c.transactions.put(mesh_key, record),
                    *(
                        c.transactions.put(etcd.key(SECURITY_PREFIX + rel), content)
                        for rel, content in files.items()
                    ),
                ],
                failure=[],
            ),
            timeout=5.0,
        )
        if won:
            return Mesh(me, str(home.resolve()), me)
        found = await etcd.call(lambda c: c.get(mesh_key))
        if found is None:
            raise ReplicaError(f"etcd {mesh_key.decode()}: neither written nor readable")
    try:
        data = json.loads(found.value)
        mesh = Mesh(str(data["nodeOwner"]), str(data["nodeHome"]), me)
    except (ValueError, KeyError, TypeError) as exc:
        raise ReplicaError(f"etcd {mesh_key.decode()}: not a mesh record ({exc})") from None
    if not mesh.owns_node and await _node_gone(etcd, mesh):
        record = json.dumps({"nodeOwner": me, "nodeHome": str(home.resolve())}).encode()
        taken, _ = await etcd.call(
            lambda c: c.transaction(
                compare=[c.transactions.mod(mesh_key) == found.mod_revision],
                success=[c.transactions.put(mesh_key, record)],
                failure=[],
            )
        )
        if taken:
            log.warning(
                "the node owner %s is gone (no %s, not running): %s owns the node now",
                mesh.node_owner,
                mesh.node_home,
                me,
            )
            mesh = Mesh(me, str(home.resolve()), me)
    # The mesh's secrets are etcd's (a node owner restarted finds its own again).
    sec = etcd.key(SECURITY_PREFIX)
    got = await etcd.call(lambda c: c.get_prefix(sec), timeout=5.0)
    files = {kv.key[len(sec) :].decode(): kv.value for kv in got}
    if not files:
        raise ReplicaError(f"etcd {SECURITY_PREFIX}: the mesh's CA is missing")
    write_security(home, files)
    return mesh


async def _node_gone(etcd: Etcd, mesh: Mesh) -> bool:
    """The node owner can never come back: its state directory (on this machine: the node
    runs here) is gone, and it is not running (no registration)."""
    if Path(mesh.node_home).exists():
        return False
    alive = await etcd.call(lambda c: c.get(etcd.key(f"{REPLICA_PREFIX}{mesh.node_owner}")))
    return alive is None


async def claim_slot(etcd: Etcd, mesh: Mesh) -> int:
    """This replica's xDS slot: the one it held before, else the first free one."""
    slots = etcd.key(SLOT_PREFIX)
    held = await etcd.call(lambda c: c.get_prefix(slots))
    taken = {}
    for kv in held:
        slot = kv.key[len(slots) :].decode()
        if slot.isdigit():
            taken[int(slot)] = kv.value.decode()
    for slot, owner in taken.items():
        if owner == mesh.replica:
            return slot
    for slot in range(XDS_SLOTS):
        if slot in taken:
            continue
        if await _put_if_absent(etcd, etcd.key(f"{SLOT_PREFIX}{slot}"), mesh.replica.encode()):
            return slot
    raise ReplicaError(
        f"all {XDS_SLOTS} xDS slots are taken ({', '.join(sorted(taken.values()))}); "
        "`meshgate down` a replica to free one"
    )


async def _put_if_absent(etcd: Etcd, key: bytes, value: bytes) -> bool:
    won, _ = await etcd.call(
        lambda c: c.transaction(
            compare=[c.transactions.create(key) == 0],
            success=[c.transactions.put(key, value)],
            failure=[],
        )
    )
    return bool(won)


async def release_slot(etcd: Etcd, mesh: Mesh) -> None:
    if mesh.slot is None:
        return
    key = etcd.key(f"{SLOT_PREFIX}{mesh.slot}")
    await etcd.call(
        lambda c: c.transaction(
            compare=[c.transactions.value(key) == mesh.replica.encode()],
            success=[c.transactions.delete(key)],
            failure=[],
        )
    )


class Registration:
    """This replica under ``/meshgate/replicas/<id>`` for as long as it lives."""

    def __init__(self, etcd: Etcd, mesh: Mesh, info: dict[str, Any]) -> None:
        self.etcd = etcd
        self.key = etcd.key(f"{REPLICA_PREFIX}{mesh.replica}")
        self.value = json.dumps(info, sort_keys=True).encode()
        self._lease: Any = None

    @property
    def lease(self) -> Any:
        return self._lease

    async def refresh(self) -> bool:
        """Register (again, after a lost lease: True), or keep the registration alive."""
        if self._lease is not None:
            reply = await self.etcd.call(lambda c: c.refresh_lease(self._lease.id))
            if reply is not None and reply.TTL > 0:
                return False
        lease = await self.etcd.call(lambda c: c.lease(REPLICA_TTL))
        await self.etcd.call(lambda c: c.put(self.key, self.value, lease=lease))
        self._lease = lease
        return True

    async def remove(self) -> None:
        if self._lease is not None:
            lease, self._lease = self._lease, None
            await self.etcd.call(lambda c: c.revoke_lease(lease.id))


async def replicas(etcd: Etcd) -> list[dict[str, Any]]:
    """The replicas registered now."""
    got = await etcd.call(lambda c: c.get_prefix(etcd.key(REPLICA_PREFIX)))
    out = []
    for kv in got:
        try:
            out.append(json.loads(kv.value))
        except ValueError:
            continue
    return sorted(out, key=lambda r: str(r.get("replica")))
