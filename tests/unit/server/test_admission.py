"""Admission defaults: Services get the cluster IP DNS answers with, and keep it."""

from __future__ import annotations

from typing import Any

from meshgate.model.snapshot import allocate_cluster_ips
from meshgate.server.admission import default_cluster_ips


def svc(name: str, ns: str = "default", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"ports": [{"port": 80}], **spec},
    }


def test_new_service_gets_the_snapshot_address() -> None:
    (out,) = default_cluster_ips([svc("sleep")], [])
    # The same address the snapshot (and so DNS) would give it.
    assert out["spec"]["clusterIP"] == allocate_cluster_ips([svc("sleep")])[("default", "sleep")]
    assert out["spec"]["clusterIP"].startswith("10.96.")


def test_reapply_without_cluster_ip_keeps_the_stored_one() -> None:
    stored = [svc("sleep", clusterIP="10.96.7.7")]
    (out,) = default_cluster_ips([svc("sleep")], stored)
    assert out["spec"]["clusterIP"] == "10.96.7.7"


def test_explicit_headless_and_external_name_untouched() -> None:
    objs = [
        svc("a", clusterIP="10.96.1.1"),
        svc("b", clusterIP="None"),
        svc("c", type="ExternalName", externalName="example.com"),
    ]
    assert default_cluster_ips(objs, []) == objs


def test_addresses_in_use_are_skipped() -> None:
    want = allocate_cluster_ips([svc("x")])[("default", "x")]
    stored = [svc("other", clusterIP=want)]
    (out,) = default_cluster_ips([svc("x")], stored)
    assert out["spec"]["clusterIP"] not in (want, "")
    # ... and so are explicit addresses in the same apply.
    a, _ = default_cluster_ips([svc("x"), svc("q", clusterIP=want)], [])
    assert a["spec"]["clusterIP"] not in (want, "")


def test_other_kinds_pass_through_unchanged() -> None:
    objs = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}]
    assert default_cluster_ips(objs, []) is objs
