"""The CA directory shared through etcd (server/casync.py), on a real etcd: a publication
reaches another replica's directory whole (files it no longer has removed there), the
leader publishes a step its CA took by itself, a follower does not, and a publication
that failed is made at the next poll."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.etcd_cluster import etcd_cluster

from meshgate.server.casync import CaSync, ca_files, write_ca_files
from meshgate.server.leader import Etcd
from meshgate.store.etcd_conn import EtcdConfig, parse_store_url


@pytest.fixture
def config() -> Iterator[EtcdConfig]:
    with etcd_cluster(members=1) as cluster:
        url = cluster.store_url + f"/mesh-{uuid.uuid4().hex[:6]}"
        yield parse_store_url(url)


def _home(tmp_path: Path, name: str, files: dict[str, bytes]) -> Path:
    home = tmp_path / name
    write_ca_files(home, files)
    return home


def test_a_publication_reaches_the_other_replica_whole(config: EtcdConfig, tmp_path: Path) -> None:
    start = {"root-cert.pem": b"old root", "root-key.pem": b"old key"}
    a_home, b_home = _home(tmp_path, "a", start), _home(tmp_path, "b", start)

    async def scenario() -> None:
        changed: list[str] = []
        a = CaSync(Etcd(config), a_home, lambda: changed.append("a"))
        b = CaSync(Etcd(config), b_home, lambda: changed.append("b"))
        await a.publish()  # as the founder's copy
        await b.poll(leading=False)
        assert changed == [] and ca_files(b_home) == start  # the same: nothing to take

        # A rotation on b (a follower): published at once, taken by a.
        rotated = {**start, "next-root-cert.pem": b"new root", "rotation.json": b"{}"}
        write_ca_files(b_home, rotated)
        await b.publish()
        await a.poll(leading=True)
        assert changed == ["a"] and ca_files(a_home) == rotated
        await a.poll(leading=True)
        assert changed == ["a"] and a.published == 1  # taken once, not published back

        # The leader's CA moves on by itself (the new root signs): it publishes; the
        # follower takes it, and the files gone from it go from the follower too.
        activated = {"root-cert.pem": b"new root", "previous-root-cert.pem": b"old root"}
        write_ca_files(a_home, activated)
        await a.poll(leading=True)
        assert a.published == 2
        await b.poll(leading=False)
        assert changed == ["a", "b"] and ca_files(b_home) == activated

        # A follower's own step is not published (the leader's is the one kept).
        write_ca_files(b_home, {**activated, "rotation.json": b"{}"})
        await b.poll(leading=False)
        assert b.published == 1

        # Unless it is a rotation whose publication failed: then at the next poll.
        b.pending = True
        await b.poll(leading=False)
        assert b.published == 2 and not b.pending
        await a.poll(leading=True)
        assert ca_files(a_home) == ca_files(b_home)
        for sync in (a, b):
            await sync.etcd.close()

    asyncio.run(scenario())
