"""Unit tests for the runtime's pure and local parts: names, world, DNS zone, logs, manifest,
process identity. No root, no namespaces."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from dnslib import QTYPE, RCODE, DNSRecord
from pydantic import ValidationError

from meshgate.runtime import launch, names, procs
from meshgate.runtime.dns import ZoneResolver, read_zone, write_zone, zone_dir
from meshgate.runtime.envoy import envoy_argv
from meshgate.runtime.manifest import Manifest, OwnerAliveError, teardown
from meshgate.runtime.pods import (
    ContainerSpec,
    ContainerState,
    PodSpec,
    PodState,
    ProxySpec,
    spec_from_dict,
)
from meshgate.runtime.world import ALIYUN_BODY, World, envoy_bootstrap, load_world


def test_names_are_stable_short_and_prefixed(tmp_path: Path) -> None:
    mid = names.mesh_id(tmp_path)
    assert len(mid) == 6 and mid == names.mesh_id(str(tmp_path) + "/")
    assert names.mesh_id(tmp_path / "other") != mid
    pid = names.pod_id("default", "sleep-1")
    assert names.pod_netns(mid, pid).startswith(f"mg-{mid}-")
    assert names.node_netns(mid) == f"mg-{mid}-node"
    assert len(names.pod_host_ifname(pid)) <= names.IFNAME_MAX
    assert len(os.fsencode(names.xds_socket(mid))) <= names.SOCKET_PATH_MAX


def test_demo_world() -> None:
    w = load_world("demo")
    zone = w.zone()
    assert zone["aliyun.com"] == zone["www.aliyun.com"] == ["198.51.100.10"]
    assert "httpbin.org" in zone
    assert len(ALIYUN_BODY.encode()) == 239


def test_world_file_roundtrip(tmp_path: Path) -> None:
    f = tmp_path / "world.yaml"
    f.write_text(
        """
hosts:
- names: [Example.test.]
  address: 192.0.2.7
  ports:
  - port: 8080
    response: {status: 204, headers: {X-Thing: "50%"}}
    paths:
    - exact: /x
      response: {status: 404, body: nope}
"""
    )
    w = load_world(f)
    assert w.zone() == {"example.test": ["192.0.2.7"]}
    boot = envoy_bootstrap(w, Path("/run/x.sock"))
    (listener,) = boot["static_resources"]["listeners"]
    assert listener["address"]["socket_address"] == {"address": "192.0.2.7", "port_value": 8080}
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    assert hcm["server_header_transformation"] == "PASS_THROUGH"
    routes = hcm["route_config"]["virtual_hosts"][0]["routes"]
    assert routes[0]["match"] == {"path": "/x"}
    assert routes[0]["direct_response"] == {"status": 404, "body": {"inline_string": "nope"}}
    assert routes[1]["response_headers_to_add"][0]["header"] == {"key": "x-thing", "value": "50%%"}


@pytest.mark.parametrize(
    "host",
    [
        {"names": ["a"], "address": "8.8.8.8", "ports": [{"port": 80}]},  # a real address
        {"names": ["a"], "address": "203.0.113.2", "ports": [{"port": 80}]},  # the node link
        {"names": ["a"], "address": "192.0.2.1", "ports": [{"port": 443, "protocol": "ftp"}]},
        {"names": ["a"], "address": "192.0.2.1", "ports": [{"port": 80, "bogus": 1}]},
    ],
)
def test_world_rejects(host: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        World.model_validate({"hosts": [host]})


def test_world_rejects_duplicate_listener() -> None:
    h = {"names": ["a"], "address": "192.0.2.1", "ports": [{"port": 80}]}
    with pytest.raises(ValidationError, match="twice"):
        World.model_validate({"hosts": [h, {**h, "names": ["b"]}]})


def _ask(resolver: ZoneResolver, name: str, qtype: str) -> DNSRecord:
    reply: DNSRecord = resolver.resolve(DNSRecord.question(name, qtype), None)
    return reply


def test_zone_layers_merge_and_answers(tmp_path: Path) -> None:
    write_zone(tmp_path, {"Aliyun.com.": ["198.51.100.10"]}, layer="world")
    write_zone(tmp_path, {"sleep.default.svc.cluster.local": ["10.34.0.2", "fd00::2"]})
    assert read_zone(zone_dir(tmp_path))["aliyun.com"] == ["198.51.100.10"]
    r = ZoneResolver(zone_dir(tmp_path))
    a = _ask(r, "ALIYUN.com", "A")
    assert a.header.rcode == RCODE.NOERROR and [str(x.rdata) for x in a.rr] == ["198.51.100.10"]
    aaaa = _ask(r, "aliyun.com", "AAAA")
    assert aaaa.header.rcode == RCODE.NOERROR and aaaa.rr == []
    v6 = _ask(r, "sleep.default.svc.cluster.local", "AAAA")
    assert [x.rtype for x in v6.rr] == [QTYPE.AAAA]
    nx = _ask(r, "aliyun.com.default.svc.cluster.local", "A")
    assert nx.header.rcode == RCODE.NXDOMAIN
    with pytest.raises(ValueError):
        write_zone(tmp_path, {"x": ["not-an-ip"]})
    with pytest.raises(ValueError):
        write_zone(tmp_path, {"x": ["10.0.0.1"]}, layer="../evil")


def test_zone_reload(tmp_path: Path) -> None:
    r = ZoneResolver(zone_dir(tmp_path))
    assert r.lookup("new.test") is None
    write_zone(tmp_path, {"new.test": ["192.0.2.9"]})
    r._maybe_reload(force=True)
    assert r.lookup("new.test") == ["192.0.2.9"]


def test_trim_log_keeps_the_tail(tmp_path: Path) -> None:
    log = tmp_path / "c.log"
    log.write_bytes(b"".join(b"line %06d\n" % i for i in range(2000)))
    assert not launch.trim_log(log, limit=10**6, keep=100)
    assert launch.trim_log(log, limit=1000, keep=100)
    data = log.read_bytes()
    assert len(data) <= 100 and data.endswith(b"line 001999\n") and data.startswith(b"line ")


def test_resolve_command() -> None:
    assert launch.resolve_command("sh", launch.DEFAULT_PATH) is not None
    assert launch.resolve_command("/bin/sh", "") == "/bin/sh"
    assert launch.resolve_command("no-such-command-mg", launch.DEFAULT_PATH) is None


def test_process_identity_survives_only_its_own_life() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        me = procs.identify(child.pid)
        assert me is not None and procs.is_alive(me)
        assert not procs.is_alive(procs.ProcId(child.pid, me.start_time + 1))  # a reused PID
        procs.terminate([me], grace=5.0, group=False)
        assert not procs.is_alive(me)
    finally:
        child.kill()
        child.wait()


def test_manifest_records_and_refuses_foreign_names(tmp_path: Path) -> None:
    m = Manifest(tmp_path)
    mid = names.mesh_id(tmp_path)
    m.record_netns(names.node_netns(mid))
    with pytest.raises(ValueError):
        m.record_netns("mg-ffffff-node" if mid != "ffffff" else "mg-000000-node")
    with pytest.raises(ValueError):
        m.record_dir(Path("/etc"))
    m.set_section("pods", {"a": 1})
    data = json.loads(m.path.read_text())
    assert data["netns"] == [names.node_netns(mid)]
    assert m.section("pods") == {"a": 1}


def test_teardown_refuses_live_owner_without_force(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        me = procs.identify(child.pid)
        assert me is not None
        with Manifest(tmp_path).edit() as m:
            m["owner"] = {"pid": me.pid, "start_time": me.start_time}
        with pytest.raises(OwnerAliveError):
            teardown(tmp_path)
    finally:
        child.kill()
        child.wait()
    # The owner is gone now: no force needed, and there was nothing to remove.
    assert teardown(tmp_path) is False


def test_pod_spec_roundtrip_and_status() -> None:
    spec = PodSpec(
        name="p",
        namespace="ns",
        containers=[ContainerSpec("c", ["/bin/true"], env={"A": "1"})],
        proxy=ProxySpec({"node": {"id": "x"}}, mode="router"),
    )
    import dataclasses

    assert spec_from_dict(json.loads(json.dumps(dataclasses.asdict(spec)))) == spec
    st = PodState(
        name="p",
        namespace="ns",
        uid="",
        ip="10.34.0.9",
        netns="mg-x-y",
        phase="Running",
        reason="",
        message="",
        containers=[
            ContainerState("c", "waiting", reason="CrashLoopBackOff", exit_code=3, restart_count=2)
        ],
        labels={},
    )
    status = st.to_status()
    assert status["phase"] == "Running" and status["podIP"] == "10.34.0.9"
    (cs,) = status["containerStatuses"]
    assert cs["state"] == {"waiting": {"reason": "CrashLoopBackOff"}}
    last = {"terminated": {"exitCode": 3, "reason": "Error"}}
    assert cs["restartCount"] == 2 and cs["lastState"] == last
    assert "reason" not in status


def test_envoy_argv_flags() -> None:
    argv = envoy_argv(Path("/e"), Path("/b.json"), 2)
    assert "--disable-hot-restart" in argv
    assert argv[argv.index("--concurrency") + 1] == "2"
    assert argv[argv.index("--file-flush-interval-msec") + 1] == "1000"
    # Istio's drain: replaced listeners ask their connections to close at once.
    assert argv[argv.index("--drain-strategy") + 1] == "immediate"
    assert argv[argv.index("--drain-time-s") + 1] == "45"


def test_capabilities_follow_the_security_context() -> None:
    from meshgate.runtime.envoy import DEFAULT_CAPABILITIES, setpriv_argv
    from meshgate.server.reconcile import capabilities

    assert "net_admin" not in DEFAULT_CAPABILITIES
    assert capabilities({}) is None
    assert capabilities({"privileged": True}) == ["all"]
    added = capabilities({"capabilities": {"add": ["NET_ADMIN"], "drop": ["CAP_KILL"]}})
    assert added is not None and "net_admin" in added and "kill" not in added
    assert capabilities({"capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}) == [
        "net_bind_service"
    ]
    argv = setpriv_argv(0, 0, ["chown", "kill"])
    assert argv[argv.index("--bounding-set") + 1] == "-all,+chown,+kill"
    assert "--bounding-set" not in setpriv_argv(0, 0, ["all"])
    assert "--bounding-set" not in setpriv_argv(1337, 1337)


def test_load_world_errors_name_file_line_and_field(tmp_path: Path) -> None:
    from meshgate.runtime.world import WorldError

    bad = tmp_path / "w.yaml"
    bad.write_text(
        "hosts:\n- names: [a.test]\n  address: 8.8.8.8\n  ports:\n  - port: 80\n    bogus: 1\n"
    )
    with pytest.raises(WorldError) as err:
        load_world(bad)
    lines = str(err.value).splitlines()
    assert lines[0].startswith(f"{bad}:3: hosts[0].address: 8.8.8.8 is not in a documentation")
    assert lines[1] == f"{bad}:6: hosts[0].ports[0].bogus: Extra inputs are not permitted"
    with pytest.raises(WorldError, match="unknown world 'nope'"):
        load_world("nope")
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    with pytest.raises(WorldError, match=r"list.yaml:1: a world file is a mapping"):
        load_world(listing)


def test_readiness_probes_map_to_a_port_or_a_command() -> None:
    from meshgate.server.reconcile import readiness_command, readiness_period, readiness_port

    ports = [{"name": "http-web", "containerPort": 8080}]
    assert (
        readiness_port({"ports": ports, "readinessProbe": {"tcpSocket": {"port": "http-web"}}})
        == 8080
    )
    assert readiness_port({"readinessProbe": {"httpGet": {"path": "/", "port": 9000}}}) == 9000
    assert readiness_port({"readinessProbe": {"httpGet": {"port": "9001"}}}) == 9001
    assert readiness_port({}) is None
    probe = {"readinessProbe": {"exec": {"command": ["cat", "/tmp/ready"]}}}
    assert readiness_command(probe) == ["cat", "/tmp/ready"]
    assert readiness_command({}) is None
    # periodSeconds: Kubernetes' default 10, at least 1.
    assert readiness_period(probe) == 10.0
    assert readiness_period({"readinessProbe": {"periodSeconds": 3}}) == 3.0
    assert readiness_period({"readinessProbe": {"periodSeconds": 0}}) == 1.0


def test_not_ready_pods_are_not_endpoints() -> None:
    from meshgate.model.services import pod_info

    def pod(ready: str | None) -> dict[str, object]:
        status: dict[str, object] = {"phase": "Running", "podIP": "10.34.0.9"}
        if ready is not None:
            status["conditions"] = [{"type": "Ready", "status": ready}]
        return {"metadata": {"name": "p", "namespace": "default"}, "spec": {}, "status": status}

    assert pod_info(pod("True")).running
    assert not pod_info(pod("False")).running
    assert pod_info(pod(None)).running


def test_cname_answers_as_kube_dns(tmp_path: Path) -> None:
    """An ExternalName Service: the CNAME, then the target's address when the zone has it;
    the CNAME alone when it does not; a loop is a SERVFAIL, never an endless answer."""
    write_zone(tmp_path, {"aliyun.com": ["198.51.100.10"]}, layer="world")
    write_zone(
        tmp_path,
        {
            "ext.default.svc.cluster.local": ["Aliyun.com."],
            "gone.default.svc.cluster.local": ["nowhere.example."],
            "a.test": ["b.test."],
            "b.test": ["a.test."],
        },
    )
    r = ZoneResolver(zone_dir(tmp_path))
    a = _ask(r, "ext.default.svc.cluster.local", "A")
    assert [(str(x.rname), QTYPE[x.rtype], str(x.rdata)) for x in a.rr] == [
        ("ext.default.svc.cluster.local.", "CNAME", "aliyun.com."),
        ("aliyun.com.", "A", "198.51.100.10"),
    ]
    assert [QTYPE[x.rtype] for x in _ask(r, "ext.default.svc.cluster.local", "AAAA").rr] == [
        "CNAME"
    ]
    gone = _ask(r, "gone.default.svc.cluster.local", "A")
    assert gone.header.rcode == RCODE.NOERROR and [QTYPE[x.rtype] for x in gone.rr] == ["CNAME"]
    assert _ask(r, "a.test", "A").header.rcode == RCODE.SERVFAIL
    with pytest.raises(ValueError):
        write_zone(tmp_path, {"x": ["y.test.", "10.0.0.1"]})
