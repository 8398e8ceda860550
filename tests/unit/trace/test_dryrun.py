"""``egress dry-run`` on the seed's step 1 (ALLOW_ANY, the sleep pod) with access-log records
in a real access-log store: which recent requests REGISTRY_ONLY, or a changed set of
resources (``-f``), would refuse, and why; gateway and inbound records, records of pods
that are gone, the time window, bad resources."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from tests.golden.seedworld import SLEEP_IP, SLEEP_POD, decode, pod, step_resources
from typer.testing import CliRunner

from meshgate.api.meta import to_wire_all
from meshgate.cli.main import app
from meshgate.model.snapshot import Snapshot
from meshgate.telemetry import entries
from meshgate.telemetry.store import AccessLogStore, Query, connect, query
from meshgate.trace.render import render_dry_run
from meshgate.trace.service import TraceError, TraceService
from meshgate.translate.accesslog import ACCESS_LOG_FIELDS

ALIYUN = "198.51.100.10"
TCP_IP = "198.51.100.50"
# A second sleep replica, of a Deployment (its name and pod-template-hash say so).
REPLICA = "sleep-5d8f7c9b6-fghij"
GONE = "sleep-5d8f7c9b6-abcde"  # its sibling, no longer in the mesh

DISCOVERED = f"""\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: aliyun, namespace: default}}
spec:
  hosts: [aliyun.com]
  location: MESH_EXTERNAL
  resolution: DNS
  ports:
  - {{number: 80, name: http-80, protocol: HTTP}}
  - {{number: 443, name: tls-443, protocol: TLS}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: ip-198-51-100-50, namespace: default}}
spec:
  hosts: [ip-198-51-100-50.discovered.external]
  addresses: [{TCP_IP}]
  location: MESH_EXTERNAL
  resolution: STATIC
  endpoints: [{{address: {TCP_IP}}}]
  ports:
  - {{number: 9000, name: tcp-9000, protocol: TCP}}
"""


def _stamp(ago: float = 1.0) -> str:
    when = datetime.fromtimestamp(time.time() - ago, UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def record(
    *,
    pod_name: str = SLEEP_POD,
    ns: str = "default",
    kind: str = "sidecar",
    dialed: str = f"{ALIYUN}:80",
    authority: str | None = None,
    method: str | None = None,
    path: str | None = None,
    sni: str | None = None,
    cluster: str = "PassthroughCluster",
    code: int | None = 200,
    ago: float = 1.0,
    remote_port: int = 40000,
) -> entries.Entry:
    fields: dict[str, Any] = {k: None for k in ACCESS_LOG_FIELDS}
    fields.update(
        start_time=_stamp(ago),
        downstream_local_address=dialed,
        downstream_remote_address=f"{SLEEP_IP}:{remote_port}",
        upstream_cluster=cluster,
        authority=authority,
        method=method,
        path=path,
        requested_server_name=sni,
        response_code=code,
        request_id=f"rid-{remote_port}" if method else None,
    )
    workload = pod_name.rsplit("-", 2)[0]
    return entries.Entry(entries.Reporter(pod_name, ns, kind, workload), fields, "file")


def http(path: str = "/get", **kw: Any) -> entries.Entry:
    return record(authority="aliyun.com", method="GET", path=path, **kw)


def tls(**kw: Any) -> entries.Entry:
    return record(dialed=f"{ALIYUN}:443", sni="aliyun.com", code=0, **kw)


def tcp(**kw: Any) -> entries.Entry:
    return record(dialed=f"{TCP_IP}:9000", code=0, **kw)


class World:
    """The step-1 store's resources, its snapshot, and a real access-log store."""

    def __init__(self, tmp: Path, extra_pods: list[Any], step: int = 1) -> None:
        self.resources = step_resources(step) + extra_pods
        self.store = AccessLogStore(tmp / "log.db", max_bytes=10**8, max_age=3600)
        self._reader = connect(tmp / "log.db")
        snap = Snapshot.build(self.resources)
        self.service = TraceService(
            snapshot=lambda: snap,
            acked=lambda node: None,  # the dry run translates: no ACKed config is read
            zone=snap.dns_zone,
            objects=lambda kind: [],
            access_log=lambda q: query(self._reader, q),
            resources=lambda: list(self.resources),
        )

    def log(self, *items: entries.Entry) -> None:
        self.store.add(items)

    def dry_run(self, mode: str | None = "REGISTRY_ONLY", **kw: Any) -> dict[str, Any]:
        return self.service.dry_run(mode, kw.pop("since", 3600.0), kw.pop("namespace", None), **kw)

    def close(self) -> None:
        self._reader.close()
        self.store.close()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    replica = pod(
        REPLICA,
        "default",
        "10.34.0.7",
        {"app": "sleep", "pod-template-hash": "5d8f7c9b6"},
        service_account="sleep",
    )
    w = World(tmp_path, [replica])
    try:
        yield w
    finally:
        w.close()


def _by_target(groups: list[dict[str, Any]]) -> dict[tuple[str, str, int], dict[str, Any]]:
    return {(g["protocol"], g["host"], g["port"]): g for g in groups}


def test_no_records_nothing_refused(world: World) -> None:
    result = world.dry_run()
    assert (result["requests"], result["refused"], result["unchanged"]) == (0, [], [])
    assert result["skipped"] == []
    text = render_dry_run(result)
    assert text.splitlines() == [
        "Dry run: outboundTrafficPolicy.mode REGISTRY_ONLY, 0 recent request(s) looked at.",
        "No recent request would be refused.",
    ]


def test_registry_only_refuses_http_tls_and_tcp_with_the_trace_s_reason(world: World) -> None:
    world.log(http(remote_port=1), http(remote_port=2), tls(remote_port=3), tcp(remote_port=4))
    result = world.dry_run()
    assert result["mode"] == "REGISTRY_ONLY" and result["requests"] == 4
    refused = _by_target(result["refused"])
    assert set(refused) == {("http", "aliyun.com", 80), ("tls", "aliyun.com", 443),
                            ("tcp", TCP_IP, 9000)}  # fmt: skip
    h = refused[("http", "aliyun.com", 80)]
    assert (h["count"], h["method"], h["path"], h["workload"]) == (2, "GET", "/get", SLEEP_POD)
    assert h["now"] == {"verdict": "allowed", "status": None}
    assert (h["after"]["verdict"], h["after"]["status"]) == ("blocked", 502)
    assert "no ServiceEntry registers aliyun.com" in h["after"]["reason"]
    for key in (("tls", "aliyun.com", 443), ("tcp", TCP_IP, 9000)):
        g = refused[key]
        assert (g["after"]["verdict"], g["after"]["status"]) == ("reset", "reset"), g
        assert "BlackHoleCluster" in g["after"]["reason"], g
        assert g["method"] is None and g["path"] is None
    assert refused[("tls", "aliyun.com", 443)]["after"]["fix"].startswith(
        "add a ServiceEntry for aliyun.com port 443 protocol TLS"
    )
    # An address is no host name: the fix says how its entry registers it.
    assert refused[("tcp", TCP_IP, 9000)]["after"]["fix"].startswith(
        f"add a ServiceEntry with addresses: [{TCP_IP}] for port 9000 protocol TCP (resolution "
        "STATIC, as `meshgate egress discover --emit yaml` writes"
    )
    text = render_dry_run(result)
    assert "3 kind(s) of recent request would now be refused:" in text
    assert f"  default/{SLEEP_POD}: GET http://aliyun.com:80/get x2 -> blocked, HTTP 502" in text
    assert f"  default/{SLEEP_POD}: TCP {TCP_IP}:9000 x1 -> reset, the connection is reset" in text
    assert text.splitlines()[-1] == (
        "To keep them: `meshgate egress discover --emit yaml > egress.yaml`, then the same dry "
        "run with `-f egress.yaml`."
    )


def test_changed_resources_keep_what_they_register(world: World) -> None:
    world.log(http(remote_port=1), tls(remote_port=2), tcp(remote_port=3))
    objects = to_wire_all(decode(DISCOVERED))
    result = world.dry_run(objects=objects)
    assert result["refused"] == [], result["refused"]
    kept = _by_target(result["unchanged"])
    assert len(kept) == 3
    assert {g["after"]["verdict"] for g in kept.values()} == {"allowed"}
    assert result["resources"] == [
        "ServiceEntry default/aliyun", "ServiceEntry default/ip-198-51-100-50"
    ]  # fmt: skip
    assert render_dry_run(result).splitlines()[:2] == [
        "Dry run: outboundTrafficPolicy.mode REGISTRY_ONLY with the 2 given resource(s), "
        "3 recent request(s) looked at.",
        "No recent request would be refused.",
    ]
    # One entry fewer: only the request it registered no more is refused.
    result = world.dry_run(objects=objects[:1])
    assert list(_by_target(result["refused"])) == [("tcp", TCP_IP, 9000)]


def test_mode_from_the_files_when_not_given(world: World) -> None:
    world.log(http())
    mesh = decode("apiVersion: meshgate.io/v1alpha1\nkind: MeshConfig\nmetadata: {name: default}\n"
                  "spec: {outboundTrafficPolicy: {mode: REGISTRY_ONLY}}\n")  # fmt: skip
    result = world.dry_run(None, objects=to_wire_all(mesh))
    assert result["mode"] == "REGISTRY_ONLY"
    assert [g["after"]["status"] for g in result["refused"]] == [502]
    # The files alone, without a MeshConfig: the mesh stays ALLOW_ANY, nothing changes.
    result = world.dry_run(None, objects=to_wire_all(decode(DISCOVERED)))
    assert (result["mode"], result["refused"]) == ("ALLOW_ANY", [])
    with pytest.raises(TraceError, match="nothing to try"):
        world.dry_run(None)
    with pytest.raises(TraceError, match="--mode STRICT: must be one of"):
        world.dry_run("STRICT")


def test_gateway_inbound_and_registered_records(world: World) -> None:
    gw = "istio-egressgateway-7c9d5f6b8-q4wzt"
    world.log(
        record(pod_name=gw, ns="istio-system", kind="gateway", authority="aliyun.com",
               method="GET", path="/", remote_port=1),
        record(cluster="inbound|80||", authority="sleep", method="GET", path="/",
               dialed=f"{SLEEP_IP}:80", remote_port=2),
        record(cluster="InboundPassthroughCluster", dialed=f"{SLEEP_IP}:9999", remote_port=3),
    )  # fmt: skip
    result = world.dry_run()
    assert (result["requests"], result["refused"], result["unchanged"]) == (0, [], [])
    # A request to a host a ServiceEntry registers keeps working: listed as unchanged.
    world.log(http(cluster="outbound|80||aliyun.com", remote_port=4))
    objects = to_wire_all(decode(DISCOVERED))[:1]
    result = world.dry_run(objects=objects)
    assert result["requests"] == 1 and result["refused"] == []
    assert result["unchanged"][0]["now"]["verdict"] == "allowed"


def test_record_of_a_gone_pod_uses_a_replica_or_is_skipped(world: World) -> None:
    world.log(http(pod_name=GONE, remote_port=1), http(pod_name="bare-pod", remote_port=2))
    result = world.dry_run()
    assert result["requests"] == 1
    (g,) = result["refused"]
    assert (g["pod"], g["workload"]) == (REPLICA, "sleep")
    assert result["skipped"] == [{"namespace": "default", "pod": "bare-pod", "count": 1}]
    assert render_dry_run(result).splitlines()[-1] == (
        "Not traced (the pod is gone and no pod of its Deployment runs now): default/bare-pod x1"
    )


def test_window_and_namespace_bound_the_records(world: World) -> None:
    world.log(http(ago=7200, remote_port=1), http(ns="other", pod_name="x-5d8f7c9b6-aaaaa",
                                                  remote_port=2))  # fmt: skip
    assert world.dry_run()["requests"] == 0  # too old; x's pod never existed
    assert world.dry_run(since=3 * 3600)["requests"] == 1
    assert world.dry_run(since=3 * 3600, namespace="other")["skipped"] == [
        {"namespace": "other", "pod": "x-5d8f7c9b6-aaaaa", "count": 1}
    ]
    assert world.service._access_log(Query(reporter="sidecar"))  # both are stored


def test_bad_resources_are_refused_with_kind_name_and_reason(world: World) -> None:
    bad = {"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
           "metadata": {"name": "broken", "namespace": "default"},
           "spec": {"hosts": ["a.example"], "ports": [{"number": "eighty"}]}}  # fmt: skip
    with pytest.raises(TraceError, match=r"ServiceEntry default/broken: .*number"):
        world.dry_run(objects=[bad])
    asm = {"apiVersion": "istio.alibabacloud.com/v1beta1", "kind": "ASMEgressTrafficPolicy",
           "metadata": {"name": "p", "namespace": "istio-egress"},
           "spec": {"byEgressGateway": {"name": "egressgateway-a"}}}  # fmt: skip
    with pytest.raises(TraceError, match="compiled by a controller, which a dry run"):
        world.dry_run(objects=[asm])
    with pytest.raises(TraceError, match=r"'se\.yaml': not an object"):
        world.dry_run(objects=["se.yaml"])  # type: ignore[list-item]


def test_only_the_newest_records_when_there_are_too_many(world: World) -> None:
    world.log(*(http(path=f"/{i}", remote_port=i, ago=10 - i) for i in range(5)))
    result = world.dry_run(limit=3)
    assert result["limited"] and result["requests"] == 3
    assert sorted(g["path"] for g in result["refused"]) == ["/2", "/3", "/4"]
    assert "Only the newest records were looked at" in render_dry_run(result)
    assert not world.dry_run()["limited"]


def test_cli_checks_the_files_before_asking_the_control_plane(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
        "metadata: {name: x}\nspec:\n  hosts: [a.example]\n  resolution: SOMETIMES\n"
    )
    home = tmp_path / "home"  # no mesh runs there: only the local check can answer
    result = CliRunner().invoke(
        app, ["egress", "dry-run", "-f", str(bad)], env={"MESHGATE_HOME": str(home)}
    )
    assert result.exit_code == 1
    assert f"{bad}:6" in result.stderr and "resolution" in result.stderr, result.stderr
    assert "nothing was tried" in result.stderr
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    result = CliRunner().invoke(
        app, ["egress", "dry-run", "-f", str(empty)], env={"MESHGATE_HOME": str(home)}
    )
    assert result.exit_code == 1 and f"no objects in {empty}" in result.stderr


SIDECAR = """\
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: default}
spec:
  outboundTrafficPolicy: {mode: MODE}
"""


def test_a_sidecar_s_own_mode_wins_over_the_mesh_s(world: World) -> None:
    world.log(http())
    # The namespace's Sidecar keeps ALLOW_ANY: switching the mesh refuses nothing there.
    allow = to_wire_all(decode(SIDECAR.replace("MODE", "ALLOW_ANY")))
    assert world.dry_run(objects=allow)["refused"] == []
    # A Sidecar alone, the mesh left ALLOW_ANY, refuses it; the reason names the Sidecar.
    result = world.dry_run(
        None, objects=to_wire_all(decode(SIDECAR.replace("MODE", "REGISTRY_ONLY")))
    )
    assert result["mode"] == "ALLOW_ANY"
    (g,) = result["refused"]
    assert (g["after"]["verdict"], g["after"]["status"]) == ("blocked", 502)
    assert (
        "(Sidecar default/default outboundTrafficPolicy) is REGISTRY_ONLY" in g["after"]["reason"]
    )


DENY_ADMIN = """\
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: egressgateway}}
  action: DENY
  rules:
  - to: [{operation: {paths: ["/admin*"]}}]
"""


def test_requests_through_the_egress_gateway_and_a_changed_policy(tmp_path: Path) -> None:
    # The seed's step 4: REGISTRY_ONLY, aliyun.com routed through the egress gateway.
    w = World(tmp_path, [], step=4)
    try:
        gw_cluster = "outbound|80||istio-egressgateway.istio-system.svc.cluster.local"
        w.log(
            http(path="/admin/x", cluster=gw_cluster, remote_port=1),
            http(path="/public", cluster=gw_cluster, remote_port=2),
            # the gateway's own entries of the same requests: not traced twice
            record(pod_name="istio-egressgateway-7c9d5f6b8-q4wzt", ns="istio-system",
                   kind="gateway", authority="aliyun.com", method="GET", path="/admin/x",
                   cluster="outbound|80||aliyun.com", remote_port=3),
        )  # fmt: skip
        result = w.dry_run(objects=to_wire_all(decode(DENY_ADMIN)))
        assert result["requests"] == 2
        (g,) = result["refused"]
        assert (g["path"], g["after"]["verdict"], g["after"]["status"]) == (
            "/admin/x",
            "denied",
            403,
        )
        assert "AuthorizationPolicy istio-system/deny-admin rule 0" in g["after"]["reason"]
        hops = {h["proxy"] for h in g["after"]["hops"]}
        assert any(p.startswith("istio-system/istio-egressgateway") for p in hops), hops
        (kept,) = result["unchanged"]
        assert (kept["path"], kept["now"]["verdict"]) == ("/public", "allowed")
        assert kept["after"]["verdict"] == "allowed"
    finally:
        w.close()
