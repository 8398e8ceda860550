"""`meshgate up --store`: the store is checked before anything starts, and remembered so
that later commands (here: apply and get without a control plane) use the same store."""

from __future__ import annotations

import time
from pathlib import Path

from tests.etcd_cluster import etcd_cluster
from tests.unit.cli.conftest import Run

from meshgate.store import open_store

SE = """\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: aliyun, namespace: default}
spec: {hosts: [aliyun.com], location: MESH_EXTERNAL, resolution: DNS,
       ports: [{number: 443, name: tls, protocol: TLS}]}
"""


def test_unreachable_etcd_is_one_clear_line(mg: Run, tmp_path: Path) -> None:
    result = mg("up", "--store", "etcd://127.0.0.1:1")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: etcd at etcd://127.0.0.1:1 is unreachable")
    assert "Traceback" not in result.output + result.stderr
    assert not (tmp_path / "home" / "store.json").exists()


def test_bad_store_options_are_refused(mg: Run) -> None:
    result = mg("up", "--store", "mysql://db:3306")
    assert result.exit_code == 1
    assert "expected sqlite or etcd://HOST:PORT" in result.stderr
    result = mg("up", "--etcd-user", "root:pw")
    assert result.exit_code == 1
    assert "--etcd-* options go with --store etcd://" in result.stderr
    result = mg("up", "--store", "etcd://127.0.0.1:2379", "--etcd-cacert", "/nonexistent/ca")
    assert result.exit_code == 1 and "--etcd-cacert /nonexistent/ca: no such file" in result.stderr


def test_help_names_the_store_options(mg: Run) -> None:
    text = mg("up", "--help").output
    for flag in ("--store", "--etcd-cacert", "--etcd-cert", "--etcd-key", "--etcd-user"):
        assert flag in text


def test_commands_use_the_remembered_etcd_store(mg: Run, tmp_path: Path) -> None:
    with etcd_cluster(1) as cluster:
        url = f"{cluster.store_url}/meshgate-test/cli-{time.time_ns()}"
        open_store(tmp_path / "home", url).close()  # what `up --store` leaves behind
        manifest = tmp_path / "se.yaml"
        manifest.write_text(SE)
        result = mg("apply", "-f", str(manifest))
        assert result.exit_code == 0, result.stderr
        assert "serviceentry.networking.istio.io/aliyun created" in result.output
        assert "aliyun" in mg("get", "serviceentries").output
        assert not (tmp_path / "home" / "store.db").exists()
        # The object is in etcd: a fresh state directory on the same store sees it.
        other = open_store(tmp_path / "elsewhere", url)
        try:
            assert [s.key.name for s in other.list()] == ["aliyun"]
        finally:
            other.close()
