"""Leader election on a real etcd (tests/etcd_cluster.py): one leader at a time, a
resigned leader is replaced within the poll, a dead one within the lease's TTL."""

from __future__ import annotations

import asyncio
import time

from tests.etcd_cluster import etcd_cluster

from meshgate.server.leader import Etcd, LeaderElection
from meshgate.store.etcd_conn import parse_store_url


async def _until(check, timeout: float) -> float:  # type: ignore[no-untyped-def]
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)
    return time.monotonic() - start


def test_one_leader_and_takeover() -> None:
    with etcd_cluster(members=1) as cluster:
        endpoints = parse_store_url(cluster.store_url)

        async def scenario() -> None:
            changes: list[tuple[str, bool]] = []
            a = LeaderElection(
                Etcd(endpoints), {"replica": "a"}, on_change=lambda v: changes.append(("a", v))
            )
            b = LeaderElection(
                Etcd(endpoints), {"replica": "b"}, on_change=lambda v: changes.append(("b", v))
            )
            tasks = [asyncio.create_task(a.run()), asyncio.create_task(b.run())]
            await _until(lambda: a.leading or b.leading, 5)
            await asyncio.sleep(1.5)  # a few refreshes and polls: still exactly one
            assert a.leading != b.leading
            first, second = (a, b) if a.leading else (b, a)
            assert second.leader == first.identity
            # A clean stop revokes the lease: the other leads within about a poll.
            await first.stop()
            took = await _until(lambda: second.leading, 3)
            assert took < 1.5
            # A leader that dies without a word (its task cancelled, no revoke) is
            # replaced once its lease expires: within ttl + poll.
            third = LeaderElection(Etcd(endpoints), {"replica": "c"})
            tasks.append(asyncio.create_task(third.run()))
            await asyncio.sleep(1)
            assert not third.leading and third.leader == second.identity
            for t in tasks[:2]:
                t.cancel()
            await asyncio.gather(*tasks[:2], return_exceptions=True)
            took = await _until(lambda: third.leading, second.ttl + 3)
            assert took <= second.ttl + second.poll + 1
            await third.stop()
            tasks[2].cancel()
            await asyncio.gather(tasks[2], return_exceptions=True)
            assert changes[0][1] is True

        asyncio.run(scenario())


def test_leader_stops_leading_when_etcd_is_gone() -> None:
    """No refresh can succeed: the leader steps down before its lease could expire."""
    with etcd_cluster(members=1) as cluster:
        endpoints = parse_store_url(cluster.store_url)

        async def scenario() -> None:
            a = LeaderElection(Etcd(endpoints), {"replica": "a"})
            task = asyncio.create_task(a.run())
            await _until(lambda: a.leading, 5)
            cluster.stop(0, kill=True)
            took = await _until(lambda: not a.leading, a.ttl)
            assert took < a.ttl
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await a.etcd.close()

        asyncio.run(scenario())
