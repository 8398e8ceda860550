"""Nodes that join, without a network: bootstrap tokens, the join service on a real store
and a real mesh CA, placement (nodeName, nodeSelector, spread), and `get nodes` columns."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from meshgate.api.meta import ResourceKey
from meshgate.cli.columns import columns_for
from meshgate.security import bootstraptoken as bt
from meshgate.security.ca import MeshCA
from meshgate.server import nodes
from meshgate.server.joinapi import JoinError, NodeService, _node_of
from meshgate.server.placement import Placer
from meshgate.store import ConfigStore, open_store

Obj = dict[str, Any]
NOW = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)


# -- tokens -----------------------------------------------------------------------------


def test_token_shape_and_secret_as_kubeadm_stores_it() -> None:
    token = bt.generate()
    assert bt.TOKEN_RE.match(token)
    secret = bt.secret_object(token, bt.DEFAULT_TTL, NOW, "for node-2")
    assert secret["metadata"] == {
        "name": f"bootstrap-token-{token[:6]}",
        "namespace": "kube-system",
    }
    assert secret["type"] == "bootstrap.kubernetes.io/token"
    info = bt.describe(secret)
    assert info["id"] == token[:6] and info["description"] == "for node-2"
    assert info["expires"] == NOW + datetime.timedelta(hours=24)
    assert info["usages"] == ["authentication", "signing"]
    assert bt.check(token, secret, NOW) == token[:6]


@pytest.mark.parametrize(
    ("presented", "why"),
    [
        ("abcdef.0123456789abcdex", "wrong secret"),
        ("zzzzzz.0123456789abcdef", "is not known"),
        ("ABCDEF.0123456789abcdef", "not a bootstrap token"),
        ("abcdef0123456789abcdef", "not a bootstrap token"),
    ],
)
def test_bad_tokens_are_refused_with_the_reason(presented: str, why: str) -> None:
    secret = bt.secret_object("abcdef.0123456789abcdef", None, NOW)
    stored = secret if presented.startswith("abcdef.") else None
    with pytest.raises(bt.TokenRefused, match=why) as info:
        bt.check(presented, stored, NOW)
    assert "0123456789abcde" not in str(info.value)  # the secret is never echoed


def test_expired_token_is_refused() -> None:
    secret = bt.secret_object("abcdef.0123456789abcdef", datetime.timedelta(seconds=1), NOW)
    bt.check("abcdef.0123456789abcdef", secret, NOW)
    with pytest.raises(bt.TokenRefused, match="expired at 2026-01-02T03:04:06Z"):
        bt.check("abcdef.0123456789abcdef", secret, NOW + datetime.timedelta(seconds=1))


def test_ca_hash_is_sha256_of_the_public_key_info(tmp_path: Path) -> None:
    ca = MeshCA(tmp_path)
    pin = bt.ca_cert_hash(ca.root_pem)
    assert pin.startswith("sha256:") and len(pin) == 7 + 64
    assert pin == bt.ca_cert_hash(MeshCA(tmp_path).root_pem)  # the kept root: the same pin
    assert pin != bt.ca_cert_hash(MeshCA(tmp_path / "other").root_pem)


# -- the join service -------------------------------------------------------------------


class _Reconciler:
    remote_specs: dict[str, dict[tuple[str, str], Obj]] = {}
    remote_specs_ready = True


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ConfigStore]:
    s = open_store(tmp_path / "home")
    yield s
    s.close()


def _csr(cn: str) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(Encoding.PEM).decode()


def _service(store: ConfigStore, tmp_path: Path) -> NodeService:
    kicks: list[int] = []
    return NodeService(
        store,
        MeshCA(tmp_path),
        _Reconciler(),  # type: ignore[arg-type]
        lambda: kicks.append(1),
        "mg-abc123-node",
    )


def test_join_signs_the_csrs_and_writes_a_ready_node(store: ConfigStore, tmp_path: Path) -> None:
    svc = _service(store, tmp_path)
    token = svc.create_token(3600, "test")["token"]
    body = {"token": token, "name": "node-2", "nodeCSR": _csr("x"), "proxyCSR": _csr("y")}
    got = svc.join({**body, "labels": {"zone": "b"}})
    assert got["podCIDR"] == "10.35.0.0/16"
    assert got["link"] == {"first": "10.33.35.1", "node": "10.33.35.2", "prefixLen": 30}
    assert got["xds"] == {"address": "10.34.0.1:15012", "serverName": "meshgate-xds"}
    cert = x509.load_pem_x509_certificate(got["nodeCert"].encode())
    subject = {a.oid: a.value for a in cert.subject}
    assert subject[NameOID.COMMON_NAME] == "system:node:node-2"
    assert subject[NameOID.ORGANIZATION_NAME] == "system:nodes"
    proxy = x509.load_pem_x509_certificate(got["proxyCert"].encode())
    assert list(proxy.subject) == []  # no subject: it cannot pass as a node
    node = store.get(ResourceKey("", "Node", "", "node-2"))
    assert node is not None and nodes.is_ready(node.object)
    assert node.object["metadata"]["labels"] == {"kubernetes.io/hostname": "node-2", "zone": "b"}
    # A second node gets the next range; joining again under a name keeps its range.
    body3 = {**body, "name": "node-3"}
    assert svc.join(body3)["podCIDR"] == "10.36.0.0/16"
    assert svc.join(body)["podCIDR"] == "10.35.0.0/16"


def test_join_refusals_write_nothing(store: ConfigStore, tmp_path: Path) -> None:
    svc = _service(store, tmp_path)
    token = svc.create_token(3600, "")["token"]
    base = {"name": "node-2", "nodeCSR": _csr("x"), "proxyCSR": _csr("y")}
    before = store.revision()
    with pytest.raises(JoinError, match="wrong secret") as wrong:
        svc.join({**base, "token": token[:7] + "0" * 16})
    assert wrong.value.status == 403
    with pytest.raises(JoinError, match="control plane's own node"):
        svc.join({**base, "token": token, "name": "meshgate-node"})
    with pytest.raises(JoinError, match="signing request"):
        svc.join({**base, "token": token, "nodeCSR": "garbage"})
    assert store.revision() == before
    svc.delete_token(token)
    with pytest.raises(JoinError, match="is not known"):
        svc.join({**base, "token": token})
    assert svc.list_tokens() == {"tokens": []}


def test_node_api_identity_comes_from_the_node_certificate_subject() -> None:
    node = ((("organizationName", "system:nodes"),), (("commonName", "system:node:n2"),))
    assert _node_of({"subject": node}) == "n2"
    assert _node_of({"subject": ((("commonName", "system:node:n2"),),)}) is None
    assert _node_of({"subject": ()}) is None  # a workload certificate: SAN only
    assert _node_of(None) is None


def test_status_is_written_only_for_the_nodes_own_pods(store: ConfigStore, tmp_path: Path) -> None:
    svc = _service(store, tmp_path)
    token = svc.create_token(0, "")["token"]
    svc.join({"token": token, "name": "n2", "nodeCSR": _csr("x"), "proxyCSR": _csr("y")})
    store.apply([_pod("mine", node="n2"), _pod("theirs")])
    running = {"phase": "Running", "podIP": "10.35.0.10"}
    svc.status("n2", {"pods": {"default/mine": running, "default/theirs": running}})
    mine = store.get(ResourceKey("", "Pod", "default", "mine"))
    theirs = store.get(ResourceKey("", "Pod", "default", "theirs"))
    assert mine is not None and mine.object["status"] == running
    assert theirs is not None and "status" not in theirs.object
    with pytest.raises(JoinError, match='node "gone" not found'):
        svc.pods("gone")
    assert svc.pods("n2") == {"pods": []}
    svc.reconciler.remote_specs_ready = False  # a restarted control plane, before its pass
    with pytest.raises(JoinError, match="starting") as starting:
        svc.pods("n2")
    assert starting.value.status == 503
    svc.leave("n2")
    assert store.get(ResourceKey("", "Node", "", "n2")) is None


def test_a_joined_node_gets_its_dns_zone_filter_and_nat_rendered_for_it(
    store: ConfigStore, tmp_path: Path
) -> None:
    from meshgate.model.snapshot import Snapshot
    from meshgate.runtime.dns import write_zone

    home = tmp_path / "home"
    write_zone(home, {"httpbin.default.svc.cluster.local": ["10.96.0.20"]})
    write_zone(home, {"aliyun.com": ["198.51.100.7"]}, layer="world")
    svc = _service(store, tmp_path)
    svc.reconciler.home = home  # type: ignore[attr-defined]
    svc.reconciler.snapshot = Snapshot.build([])  # type: ignore[attr-defined]
    token = svc.create_token(0, "")["token"]
    svc.join({"token": token, "name": "n2", "nodeCSR": _csr("x"), "proxyCSR": _csr("y")})
    first = svc.config("n2", "")
    assert first["zone"] == {
        "aliyun.com": ["198.51.100.7"],
        "httpbin.default.svc.cluster.local": ["10.96.0.20"],
    }
    assert first["dnsUpstream"] == "10.34.0.1:53"
    assert "-A MESHGATE-EXIT" not in first["filter"]  # enforcement off: no exit rules
    assert "-d 10.34.0.1/32 -p tcp -m tcp --dport 15012" in first["filter"]
    assert first["nat"].startswith("*nat\n:MESHGATE-SERVICES")
    assert svc.config("n2", first["version"]) == {"version": first["version"], "unchanged": True}
    assert first["gateways"] == {}
    store.apply(
        [
            {
                "apiVersion": "meshgate.io/v1alpha1",
                "kind": "MeshConfig",
                "metadata": {"name": "default"},
                "spec": {"egressEnforcement": "GATEWAY_ONLY"},
            }
        ]
    )
    changed = svc.config("n2", first["version"])
    assert changed["version"] != first["version"]
    exit_rules = [ln for ln in changed["filter"].splitlines() if ln.startswith("-A MESHGATE-EXIT")]
    # The first node's pods are inside the mesh; the rest is refused.
    assert "-d 10.34.0.0/16" in exit_rules[0]
    assert exit_rules[-1].endswith("-j REJECT --reject-with icmp-admin-prohibited")
    # A gateway pod bound to n2: its guard's inputs, the xDS on node 1 allowed.
    gateway = _pod("gw", node="n2")
    gateway["metadata"]["annotations"] = {"meshgate.io/proxy-type": "router"}
    store.apply([gateway])
    store.update_status(ResourceKey("", "Pod", "default", "gw"), {"podIP": "10.35.0.10"})
    guards = svc.config("n2", "")["gateways"]
    assert guards == {
        "default/gw": {"enabled": True, "allowed": [["10.34.0.1", 15012, "the proxies' xDS"]]}
    }
    with pytest.raises(JoinError, match='node "gone" not found'):
        svc.config("gone", "")


# -- placement --------------------------------------------------------------------------


def _pod(name: str, *, node: str | None = None, selector: dict[str, str] | None = None) -> Obj:
    spec: Obj = {"containers": [{"name": "c", "image": "curl"}]}
    if node:
        spec["nodeName"] = node
    if selector:
        spec["nodeSelector"] = selector
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec,
    }


def _joined(name: str, cidr: str, *, ready: bool = True, **labels: str) -> Obj:
    return nodes.node_object(name, cidr, nodes.gateway_ip(cidr), ready=ready, labels=labels)


def test_place_by_name_selector_and_spread() -> None:
    own, n2 = nodes.own_node(), _joined("n2", "10.35.0.0/16", zone="b")
    all_nodes = [own, n2]
    assert nodes.place(_pod("a", node="n2"), all_nodes, {}).node == "n2"
    missing = nodes.place(_pod("a", node="n9"), all_nodes, {})
    assert missing.node is None and missing.reason == 'node "n9" not found'
    assert nodes.place(_pod("a", selector={"zone": "b"}), all_nodes, {}).node == "n2"
    none = nodes.place(_pod("a", selector={"zone": "z"}), all_nodes, {})
    assert none.node is None
    assert (
        none.reason
        == "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector."
    )
    # Spread: the fewest pods; a tie goes to the control plane's own node.
    assert nodes.place(_pod("a"), all_nodes, {}).node == "meshgate-node"
    assert nodes.place(_pod("a"), all_nodes, {"meshgate-node": 1}).node == "n2"
    down = _joined("n2", "10.35.0.0/16", ready=False)
    assert nodes.place(_pod("a"), [own, down], {"meshgate-node": 5}).node == "meshgate-node"
    why = nodes.place(_pod("a", selector={"zone": "b"}), [own, down], {}).reason
    assert why.startswith("0/2 nodes are available: 1 node(s) were not ready")


def test_placer_binds_joined_nodes_only_and_reports_unschedulable(store: ConfigStore) -> None:
    store.apply([_joined("n2", "10.35.0.0/16")])
    store.update_status(ResourceKey("", "Node", "", "n2"), _joined("n2", "10.35.0.0/16")["status"])
    store.apply([_pod("p1"), _pod("p2"), _pod("p3", node="gone")])
    objs = [s.object for s in store.list()]
    placed = Placer(store).place([o for o in objs if o["kind"] == "Pod"], objs)
    assert placed == {("default", "p1"): "meshgate-node", ("default", "p2"): "n2"}
    p1 = store.get(ResourceKey("", "Pod", "default", "p1"))
    p2 = store.get(ResourceKey("", "Pod", "default", "p2"))
    p3 = store.get(ResourceKey("", "Pod", "default", "p3"))
    assert p1 is not None and "nodeName" not in p1.object["spec"]  # as before nodes
    assert p2 is not None and p2.object["spec"]["nodeName"] == "n2"  # bound
    assert p3 is not None and p3.object["status"]["phase"] == "Pending"
    (cond,) = p3.object["status"]["conditions"]
    assert cond["type"] == "PodScheduled" and cond["reason"] == "Unschedulable"


def test_one_node_mesh_places_everything_on_its_own_node_without_writes(store: ConfigStore) -> None:
    store.apply([_pod("p1"), _pod("p2")])
    before = store.revision()
    objs = [s.object for s in store.list()]
    placed = Placer(store).place([o for o in objs if o["kind"] == "Pod"], objs)
    assert set(placed.values()) == {"meshgate-node"}
    assert store.revision() == before


def test_get_nodes_columns() -> None:
    n2 = _joined("n2", "10.35.0.0/16")
    n2["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z"
    cols = columns_for("", "Node")
    assert [c.header for c in cols] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    cells = [c.value(n2) for c in cols]
    assert cells[:3] == ["n2", "Ready", "<none>"] and cells[4].startswith("v")
    wide = [c.header for c in columns_for("", "Node", wide=True)]
    assert wide == ["NAME", "STATUS", "ROLES", "AGE", "VERSION", "INTERNAL-IP", "POD-CIDR"]
    assert [c.value(nodes.own_node()) for c in cols][1:3] == ["Ready", "control-plane"]
    assert (
        columns_for("", "Node")[1].value(_joined("n3", "10.36.0.0/16", ready=False)) == "NotReady"
    )


def test_joined_node_proxies_reach_xds_over_mutual_tls() -> None:
    from meshgate.xds.bootstrap import XDS_CLUSTER, bootstrap_config, with_xds_tls

    local = bootstrap_config(
        "sidecar~10.35.0.10~a.b~b.svc.cluster.local", "10.34.0.1:15012", cluster="a.b"
    )
    boot = with_xds_tls(local, "/x/proxy.crt", "/x/proxy.key", "/x/ca.crt", "meshgate-xds")
    (xds,) = [c for c in boot["static_resources"]["clusters"] if c["name"] == XDS_CLUSTER]
    addr = xds["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
    assert addr == {"socket_address": {"address": "10.34.0.1", "port_value": 15012}}
    tls = xds["transport_socket"]["typed_config"]
    assert tls["sni"] == "meshgate-xds"
    ctx = tls["common_tls_context"]
    assert ctx["alpn_protocols"] == ["h2"]
    assert ctx["tls_certificates"] == [
        {
            "certificate_chain": {"filename": "/x/proxy.crt"},
            "private_key": {"filename": "/x/proxy.key"},
        }
    ]
    assert ctx["validation_context"] == {"trusted_ca": {"filename": "/x/ca.crt"}}
    assert "transport_socket" not in local["static_resources"]["clusters"][0]  # not changed


def test_joined_node_pod_addresses_come_from_its_range() -> None:
    from meshgate.runtime import podnet
    from meshgate.runtime.podspec import PodError

    net = podnet.PodNetwork("10.35.0.0/16", "10.35.0.1")
    assert podnet.allocate_ip(None, [], net) == "10.35.0.2"
    assert podnet.allocate_ip("10.35.0.10", [], net) == "10.35.0.10"
    with pytest.raises(PodError, match=r"not in 10\.35\.0\.0/16"):
        podnet.allocate_ip("10.34.0.10", [], net)
    assert podnet.allocate_ip(None, []) == "10.34.0.2"  # the first node's, as before


def test_silent_node_turns_not_ready(
    store: ConfigStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc = _service(store, tmp_path)
    token = svc.create_token(0, "")["token"]
    svc.join({"token": token, "name": "n2", "nodeCSR": _csr("x"), "proxyCSR": _csr("y")})
    key = ResourceKey("", "Node", "", "n2")
    svc.check_heartbeats()  # reported just now (the join)
    node = store.get(key)
    assert node is not None and nodes.is_ready(node.object)
    svc.grace = -1.0  # `up --node-monitor-grace-period`
    svc.check_heartbeats()
    node = store.get(key)
    assert node is not None and not nodes.is_ready(node.object)
    assert columns_for("", "Node")[1].value(node.object) == "NotReady"
    svc.status("n2", {"pods": {}})  # the agent is back: Ready again
    node = store.get(key)
    assert node is not None and nodes.is_ready(node.object)
