"""A control plane's place among the mesh's replicas: its election, its registration,
and what ``status`` says about them (see ``leader`` and ``replicas``; docs/replicas.md).

Rules:
- With SQLite there is one control plane per state directory: it always leads, owns the
  node, and ``status`` says nothing about replicas (as before replicas existed).
- With etcd (the state directory remembers ``up --store``), ``found_or_join`` runs before
  the control plane is built (the mesh's secrets must be in the state directory before
  its CA loads), and ``start``/``leave`` frame its life: leave resigns at once (another
  replica leads within its poll), deregisters, and with ``down`` gives the xDS slot back.
- Membership never stops the control plane: etcd errors are logged and retried.
- Each replica publishes the proxies connected to it (compact, as ``proxy-status`` lists
  them) under ``control/proxies/<id>`` on its registration's lease, when they changed, at
  most every ``REGISTRATION_EVERY``; ``mesh_proxies`` merges every replica's, so
  ``proxy-status`` on any replica lists the mesh's proxies, each with the replica serving
  it. A proxy listed by two replicas (it moved; the old one's list outlives it by at most
  its lease) is shown connected rather than disconnected, else as the asking replica
  sees it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from meshgate.runtime import names
from meshgate.server.casync import CaSync
from meshgate.server.leader import AlwaysLeader, Etcd, LeaderElection, Leadership
from meshgate.server.replicas import (
    Mesh,
    Registration,
    claim_slot,
    join,
    release_slot,
    replicas,
    xds_slot_socket,
)
from meshgate.store import Fence, store_choice
from meshgate.store.etcd_conn import EtcdConfig, parse_store_url

log = logging.getLogger("meshgate.server")

REGISTRATION_EVERY = 1.5  # seconds between refreshes of this replica's registration
PROXIES_PREFIX = "proxies/"


def etcd_config(home: Path) -> EtcdConfig | None:
    """The etcd the state directory's store is on (``up --store``); None: SQLite."""
    choice = store_choice(home)
    if not choice["url"].startswith("etcd://"):
        return None
    options = {k: v for k, v in choice.items() if k != "url"}
    return parse_store_url(choice["url"], **options)


async def found_or_join(home: Path, config: EtcdConfig) -> Mesh:
    """Found or join the mesh on etcd, and take an xDS slot (see ``replicas``)."""
    etcd = Etcd(config)
    try:
        mesh = await join(etcd, home)
        mesh = dataclasses.replace(mesh, slot=await claim_slot(etcd, mesh))
    finally:
        await etcd.close()
    log.info(
        "replica %s joined the mesh on %s: %s, xDS slot %s",
        mesh.replica,
        config.url,
        "owns the node" if mesh.owns_node else f"node owner {mesh.node_owner}",
        mesh.slot,
    )
    return mesh


class Membership:
    def __init__(
        self,
        home: Path,
        etcd: EtcdConfig | None,
        mesh: Mesh | None,
        on_change: Callable[[bool], None],
        proxies: Callable[[], list[dict[str, Any]]] = list,
        on_ca_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.proxies = proxies  # the proxies connected here, compact
        self.mesh = mesh
        self.owns_node = mesh is None or mesh.owns_node
        self.store_url = etcd.url if etcd is not None else None
        identity = {"replica": names.mesh_id(home), "home": str(home), "pid": os.getpid()}
        self.leadership: Leadership = AlwaysLeader(identity)
        self._election: LeaderElection | None = None
        self._etcd: Etcd | None = None
        self._registration: Registration | None = None
        self.ca_sync: CaSync | None = None  # the CA directory shared through etcd
        self._tasks: list[asyncio.Task[None]] = []
        self.replicas: list[dict[str, Any]] = []  # as last read from etcd
        self._published: bytes | None = None
        if mesh is not None and etcd is not None:
            self._etcd = Etcd(etcd)
            self._election = LeaderElection(Etcd(etcd), identity, on_change=on_change)
            self.leadership = self._election
            slot = None if mesh.slot is None else str(xds_slot_socket(mesh.node_owner, mesh.slot))
            self._registration = Registration(
                self._etcd, mesh, {**identity, "xds": slot, "ownsNode": self.owns_node}
            )
            self.ca_sync = CaSync(self._etcd, home, on_ca_change)

    @property
    def leading(self) -> bool:
        return self.leadership.leading

    async def ca_rotated(self) -> None:
        """A rotation started here: every replica is to have it (casync's rules). When
        etcd does not take it now, it is published at the next poll that reaches etcd."""
        if self.ca_sync is None:
            return
        try:
            await self.ca_sync.publish()
        except Exception as exc:
            self.ca_sync.pending = True
            log.warning("CA rotation not published to etcd yet (%r): retried", exc)

    def fence(self) -> Fence | None:
        """What the controllers' writes are fenced with (leader.py's rules)."""
        return self.leadership.fence()

    def xds_socket(self, single: Path) -> Path:
        """Where this control plane serves xDS: its slot's socket, else ``single``."""
        if self.mesh is None or self.mesh.slot is None:
            return single
        return xds_slot_socket(self.mesh.node_owner, self.mesh.slot)

    def start(self) -> None:
        if self._election is not None:
            self._tasks = [
                asyncio.create_task(self._election.run()),
                asyncio.create_task(self._register_loop()),
            ]

    async def _register_loop(self) -> None:
        """Keep this replica registered, and the list of replicas fresh for ``status``."""
        assert self._registration is not None and self._etcd is not None
        etcd = self._etcd
        while True:
            try:
                renewed = await self._registration.refresh()
                self.replicas = await replicas(etcd)
                await self._publish_proxies(etcd, again=renewed)
            except Exception as exc:
                log.warning("replica registration on etcd %s failed: %r", etcd.endpoint, exc)
            if self.ca_sync is not None:
                try:
                    await self.ca_sync.poll(self.leading)
                except Exception as exc:
                    log.warning("CA directory sync with etcd %s failed: %r", etcd.endpoint, exc)
            await asyncio.sleep(REGISTRATION_EVERY)

    async def _publish_proxies(self, etcd: Etcd, again: bool) -> None:
        assert self.mesh is not None and self._registration is not None
        body = json.dumps(self.proxies(), sort_keys=True).encode()
        if body == self._published and not again:
            return
        key = etcd.key(f"{PROXIES_PREFIX}{self.mesh.replica}")
        lease = self._registration.lease
        await etcd.call(lambda c: c.put(key, body, lease=lease))
        self._published = body

    async def mesh_proxies(self, own: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Every replica's proxies (``own``: this one's, fresh), each naming its replica
        (``controlPlane``); only ``own`` when etcd does not answer."""
        if self.mesh is None or self._etcd is None:
            return own
        me = self.mesh.replica
        merged = {p["nodeId"]: {**p, "controlPlane": me} for p in own}
        try:
            prefix = self._etcd.key(PROXIES_PREFIX)
            got = await self._etcd.call(lambda c: c.get_prefix(prefix))
        except Exception as exc:
            log.warning("proxy-status: other replicas' proxies unknown (etcd: %r)", exc)
            return list(merged.values())
        for kv in sorted(got, key=lambda kv: kv.key):
            replica = kv.key[len(prefix) :].decode()
            if replica == me:
                continue
            try:
                listed = json.loads(kv.value)
            except ValueError:
                continue
            for p in listed:
                held = merged.get(p.get("nodeId"))
                if held is None or (p.get("connected") and not held.get("connected")):
                    merged[p["nodeId"]] = {**p, "controlPlane": replica}
        return list(merged.values())

    async def leave(self, teardown: bool) -> None:
        """Resign (revoke the leader lease: another replica leads at once), deregister,
        and with ``teardown`` (``down``) give the xDS slot back."""
        if not self._tasks:
            return
        self._tasks[1].cancel()
        assert self._election is not None
        await self._election.stop()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        assert self._registration is not None and self._etcd is not None
        try:
            await self._registration.remove()
            if teardown and self.mesh is not None:
                await release_slot(self._etcd, self.mesh)
        except Exception as exc:
            log.warning("leaving etcd cleanly failed (the leases expire anyway): %r", exc)
        await self._etcd.close()

    def status(self) -> dict[str, Any]:
        """Who leads, and (with etcd) the mesh's replicas and which one owns the node."""
        if self.mesh is None:
            return {}
        lead = self.leadership.describe()
        leader = lead.get("leader") or {}
        return {
            "store": self.store_url,
            "leader": (
                f"{leader.get('replica')} (pid {leader.get('pid')}, {leader.get('home')})"
                + (" - this replica" if self.leading else "")
                if leader
                else "<none>"
            ),
            "replica": {
                "id": self.mesh.replica,
                "leading": self.leading,
                "ownsNode": self.owns_node,
                "nodeOwner": f"{self.mesh.node_owner} ({self.mesh.node_home})",
                "xdsSlot": self.mesh.slot,
                "election": lead.get("election"),
                "leaderTransitions": lead.get("transitions"),
            },
            "replicas": {
                str(r.get("replica")): f"pid {r.get('pid')} {r.get('home')}"
                + (" (node owner)" if r.get("ownsNode") else "")
                for r in self.replicas
            },
        }
