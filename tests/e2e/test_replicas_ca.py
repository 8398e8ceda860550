"""A root rotation with two control-plane replicas on one etcd (server/casync.py): started
on the replica that serves no proxy, it reaches the one that serves them all. That
replica's proxies trust the new root at once and, once it signs, hold certificates it
issued; both replicas show the same CA; requests through the egress gateway go on; and
a replica started afresh afterwards copies where the rotation stands."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import _skip_reason
from tests.e2e.meshctl import Mesh, proxy_certificates, retry
from tests.e2e.test_replicas_failover import _proxies, walkthrough
from tests.etcd_cluster import etcd_cluster

pytestmark = pytest.mark.e2e


def _secrets(m: Mesh, gateway: str) -> dict[str, list[str]]:
    """The gateway's secrets as its Envoy holds them: name -> serials (leaf or first root)."""
    out = m.meshgate("-n", "istio-system", "proxy-config", "secret", gateway, "-o", "json")
    return {name: [s for s, _ in certs] for name, certs in proxy_certificates(out.stdout).items()}


def _ca(m: Mesh) -> str:
    """``ca status``: the roots, which signs, where a rotation stands (its times too)."""
    return m.meshgate("ca", "status").stdout


def test_rotation_started_on_one_replica_reaches_the_other(tmp_path: Path) -> None:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    with etcd_cluster(members=1) as cluster:
        a, b, c = Mesh(tmp_path / "a"), Mesh(tmp_path / "b"), Mesh(tmp_path / "c")
        try:
            a.meshgate("up", "--world", "demo", "--store", cluster.store_url)
            sleep, gateway = walkthrough(a)
            b.meshgate("up", "--store", cluster.store_url)
            assert len(_proxies(a)) == 2, a.meshgate("proxy-status").stdout
            before = _secrets(a, gateway)
            old_root = before["ROOTCA"]
            assert _ca(a) == _ca(b)

            out = b.meshgate("ca", "rotate", "--activate-after", "4s", "--overlap", "60s")
            new_root = out.stdout.split("new root ", 1)[1].split()[0]
            assert [new_root] != old_root
            # A takes it from etcd: its status names the new root...
            ok, shown = retry(lambda: _ca(a), lambda s: new_root in s, 10)
            assert ok, f"{shown}\n{a.log_tail()}"
            # ... and, once the new root signs, A's proxies hold certificates it issued.
            ok, now = retry(
                lambda: _secrets(a, gateway),
                lambda s: s.get("ROOTCA") == [new_root] and s["default"] != before["default"],
                30,
            )
            assert ok, f"gateway secrets {now}, new root {new_root}\n{a.log_tail()}"
            ok, both = retry(lambda: (_ca(a), _ca(b)), lambda x: x[0] == x[1], 10)
            assert ok, both
            ok, last = retry(
                lambda: a.curl(sleep, "-I", "aliyun.com").stdout,
                lambda out: out.startswith("HTTP/1.1 301"),
                15,
            )
            assert ok, last

            # A replica started now copies the rotation as it stands: the same CA.
            c.meshgate("up", "--store", cluster.store_url)
            ok, three = retry(lambda: (_ca(a), _ca(c)), lambda x: x[0] == x[1], 10)
            assert ok, three
        finally:
            c.meshgate("down", check=False)
            b.meshgate("down", check=False)
            a.meshgate("down", "--force", check=False)
