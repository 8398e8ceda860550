"""A control plane on an etcd store: it serves apply and get from etcd, and a control plane
started afresh (a new MESHGATE_HOME) with the same --store sees everything the first stored."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from meshgate.store import open_store
from tests.e2e.conftest import _skip_reason
from tests.e2e.meshctl import Mesh
from tests.etcd_cluster import etcd_cluster

pytestmark = pytest.mark.e2e

SE = """\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: aliyun, namespace: default}
spec: {hosts: [aliyun.com], location: MESH_EXTERNAL, resolution: DNS,
       ports: [{number: 443, name: tls, protocol: TLS}]}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: default}
data: {mode: etcd}
"""


def _down(mesh: Mesh) -> None:
    mesh.meshgate("down", "--force", check=False)
    from meshgate.home import mesh_id

    left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"mg-{mesh_id(mesh.home)}" not in left, f"namespaces left behind: {left}"


def _uids(home: Path, url: str) -> dict[tuple[str, ...], str]:
    store = open_store(home, url)
    try:
        return {tuple(s.key): s.object["metadata"]["uid"] for s in store.list()}
    finally:
        store.close()


def test_a_fresh_control_plane_on_the_same_etcd_sees_every_object(tmp_path: Path) -> None:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    with etcd_cluster(1) as cluster:
        url = f"{cluster.store_url}/meshgate-e2e/{time.time_ns()}"
        first = Mesh(tmp_path / "first")
        try:
            up = first.meshgate("up", "--store", url)
            assert "control plane started" in up.stdout
            applied = first.meshgate("apply", "-f", "-", input=SE)
            assert "serviceentry.networking.istio.io/aliyun created" in applied.stdout
            assert "configmap/settings created" in applied.stdout
            got = first.meshgate("get", "serviceentry", "aliyun", "-o", "yaml").stdout
            assert "aliyun.com" in got
            assert not (first.home / "store.db").exists()
        finally:
            _down(first)

        before = _uids(tmp_path / "probe", url)
        assert len(before) > 2  # ours and the control plane's own (namespaces, mesh config)
        second = Mesh(tmp_path / "second")
        try:
            second.meshgate("up", "--store", url)
            got = second.meshgate("get", "serviceentries", "-n", "default").stdout
            assert "aliyun" in got, got
            cm = second.meshgate("get", "configmap", "settings", "-o", "yaml").stdout
            assert "mode: etcd" in cm
            # Every object the first stored is there, the same object (same uid), none
            # made again by the second control plane's start.
            after = _uids(tmp_path / "probe", url)
            assert before.items() <= after.items()
            uid = before[("networking.istio.io", "ServiceEntry", "default", "aliyun")]
            assert (
                f"uid: {uid}"
                in second.meshgate("get", "serviceentry", "aliyun", "-o", "yaml").stdout
            )
            # A restart of the second (no --store) keeps using etcd.
            second.meshgate("down")
            second.meshgate("up")
            assert "aliyun" in second.meshgate("get", "serviceentries").stdout
        finally:
            _down(second)
