"""The mesh record on a real etcd: the first control plane founds the mesh and owns the
node; another state directory joins it with the same CA and credential key, and takes
its own xDS slot, kept across restarts and given back by ``down``."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest
from tests.etcd_cluster import etcd_cluster

from meshgate.home import mesh_id
from meshgate.security import proxy_credentials
from meshgate.security.ca import MeshCA
from meshgate.server.leader import Etcd
from meshgate.server.replicas import (
    XDS_SLOTS,
    ReplicaError,
    claim_slot,
    join,
    release_slot,
)
from meshgate.store.etcd_conn import parse_store_url


def test_founder_owns_the_node_and_replicas_share_its_secrets(tmp_path: Path) -> None:
    with etcd_cluster(members=1) as cluster:
        config = parse_store_url(cluster.store_url)

        async def scenario() -> None:
            etcd = Etcd(config)
            try:
                first = await join(etcd, tmp_path / "a")
                second = await join(etcd, tmp_path / "b")
                again = await join(etcd, tmp_path / "a")  # the node owner restarted
                assert first.owns_node and again.owns_node and not second.owns_node
                assert second.node_owner == first.replica == mesh_id(tmp_path / "a")
                assert second.xds_sockets() == first.xds_sockets()
                assert len(first.xds_sockets()) == XDS_SLOTS
                assert all(f"/{first.replica}/xds/" in s for s in first.xds_sockets())

                slot_a = await claim_slot(etcd, first)
                slot_b = await claim_slot(etcd, second)
                assert slot_a != slot_b
                assert await claim_slot(etcd, second) == slot_b  # kept across restarts
                await release_slot(etcd, dataclasses.replace(second, slot=slot_b))
                others = [await join(etcd, tmp_path / f"r{i}") for i in range(XDS_SLOTS - 1)]
                for o in others:
                    await claim_slot(etcd, o)
                with pytest.raises(ReplicaError, match="xDS slots are taken"):
                    await claim_slot(etcd, second)
            finally:
                await etcd.close()

        asyncio.run(scenario())
        a, b = MeshCA(tmp_path / "a"), MeshCA(tmp_path / "b")
        assert a.trust_bundle() == b.trust_bundle()
        assert a.root_cert == b.root_cert
        key = proxy_credentials.load_or_create_key(tmp_path / "a")
        assert proxy_credentials.load_or_create_key(tmp_path / "b") == key
        assert oct((tmp_path / "b" / "security").stat().st_mode & 0o777) == "0o700"


def test_sqlite_control_plane_always_leads_and_shows_no_replicas(tmp_path: Path) -> None:
    """With SQLite (no etcd in the state directory's store choice) nothing changes: one
    control plane, the leader, owning the node, and no replica lines in `status`."""
    from meshgate.server.membership import Membership, etcd_config

    assert etcd_config(tmp_path) is None
    members = Membership(tmp_path, None, None, lambda leading: None)
    assert members.leading and members.owns_node
    assert members.status() == {}
    single = tmp_path / "xds.sock"
    assert members.xds_socket(single) == single


def test_a_node_owner_gone_for_good_is_replaced(tmp_path: Path) -> None:
    """Its state directory deleted and not running: the next control plane owns the node
    (and keeps the mesh's CA); while it still runs, or its directory is there, it does not."""
    import shutil

    from meshgate.server.replicas import Registration

    with etcd_cluster(members=1) as cluster:
        config = parse_store_url(cluster.store_url)

        async def scenario() -> None:
            etcd = Etcd(config)
            try:
                first = await join(etcd, tmp_path / "a")
                root = MeshCA(tmp_path / "a").root_cert
                alive = Registration(etcd, first, {"replica": first.replica})
                await alive.refresh()
                shutil.rmtree(tmp_path / "a")
                assert not (await join(etcd, tmp_path / "b")).owns_node  # it still runs
                await alive.remove()
                taken = await join(etcd, tmp_path / "c")
                assert taken.owns_node and taken.node_home == str((tmp_path / "c").resolve())
                assert MeshCA(tmp_path / "c").root_cert == root
                again = await join(etcd, tmp_path / "b")
                assert again.node_owner == taken.replica  # c's directory is there
            finally:
                await etcd.close()

        asyncio.run(scenario())
