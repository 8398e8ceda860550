"""ASMEgressTrafficPolicy compiled to Istio resources: policy + mesh state -> resources + status."""

from __future__ import annotations

import copy
from typing import Any

import yaml

from meshgate.api.decode import decode_object
from meshgate.api.problems import Severity
from meshgate.controllers import asmegress as c
from meshgate.validation import validate_resource

Obj = dict[str, Any]

# The reference's example 1 (egress-semantics §1.1), verbatim, plus httpbin.org.
EXAMPLE = yaml.safe_load("""
apiVersion: istio.alibabacloud.com/v1beta1
kind: ASMEgressTrafficPolicy
metadata:
  name: egress-by-egressgateway-a
  namespace: istio-egress
  uid: policy-uid-1
  generation: 1
spec:
  byEgressGateway:
    name: egressgateway-a
  egressRules:
  - from:
    - namespace: mytest
      workloadSelector:
        app: sleep-a
    to:
    - name: httpbin-service-http
      hosts:
      - www.httpbin.org
      - httpbin.org
      port:
        name: http
        number: 80
        protocol: HTTP
      byEgressGateway:
        port: 80
""")
GATEWAY = yaml.safe_load("""
apiVersion: istio.alibabacloud.com/v1beta1
kind: IstioGateway
metadata: {name: egressgateway-a, namespace: istio-system}
spec:
  gatewayType: egress
  ports:
  - {name: http-0, port: 80, protocol: TCP, targetPort: 80}
""")


def deployment(name: str, sa: str) -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "mytest"},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"serviceAccountName": sa, "containers": [{"name": "c", "image": "x"}]},
            },
        },
    }


MESH = [GATEWAY, deployment("sleep-a", "sleep-a"), deployment("sleep-b", "sleep-b")]


def by(objs: list[Obj], kind: str, ns: str, name: str) -> Obj:
    found = [
        o
        for o in objs
        if o["kind"] == kind and o["metadata"]["namespace"] == ns and o["metadata"]["name"] == name
    ]
    assert len(found) == 1, [(o["kind"], o["metadata"]["name"]) for o in objs]
    return found[0]


def test_example_compiles_to_the_istio_egress_gateway_shape() -> None:
    out = c.compile_policy(EXAMPLE, [*MESH, EXAMPLE])
    assert out.status == {
        "observedGeneration": 1,
        "status": "Applied",
        "message": "applied: 5 resources; 1 destination(s) through IstioGateway "
        "istio-system/egressgateway-a port(s) 80, mTLS to the gateway",
    }
    kinds = sorted(
        (o["kind"], o["metadata"]["namespace"], o["metadata"]["name"]) for o in out.objects
    )
    base = "egress-by-egressgateway-a"
    assert kinds == [
        ("AuthorizationPolicy", "istio-system", base),
        ("DestinationRule", "istio-system", base),
        ("Gateway", "istio-egress", base),
        ("ServiceEntry", "istio-egress", f"{base}-httpbin-service-http"),
        ("VirtualService", "istio-egress", f"{base}-httpbin-service-http"),
    ]
    se = by(out.objects, "ServiceEntry", "istio-egress", f"{base}-httpbin-service-http")
    assert se["spec"] == {
        "hosts": ["www.httpbin.org", "httpbin.org"],
        "ports": [{"number": 80, "name": "http", "protocol": "HTTP"}],
        "resolution": "DNS",
        "location": "MESH_EXTERNAL",
        "exportTo": [".", "istio-system", "mytest"],
    }
    gw = by(out.objects, "Gateway", "istio-egress", base)
    assert gw["spec"] == {
        "selector": {"app": "egressgateway-a", "istio": "egressgateway-a"},
        "servers": [
            {
                "port": {"number": 80, "name": "https-80", "protocol": "HTTPS"},
                "hosts": ["httpbin.org", "www.httpbin.org"],
                "tls": {"mode": "ISTIO_MUTUAL"},
            }
        ],
    }
    vs = by(out.objects, "VirtualService", "istio-egress", f"{base}-httpbin-service-http")
    gw_host = "egressgateway-a.istio-system.svc.cluster.local"
    assert vs["spec"]["gateways"] == [base, "mesh"]
    assert vs["spec"]["http"][0]["route"] == [
        {"destination": {"host": gw_host, "subset": base, "port": {"number": 80}}}
    ]
    assert vs["spec"]["http"][1] == {
        "name": "to-external-host",
        "match": [{"gateways": [base], "port": 80}],
        "route": [{"destination": {"host": "www.httpbin.org", "port": {"number": 80}}}],
    }
    dr = by(out.objects, "DestinationRule", "istio-system", base)
    assert dr["spec"]["host"] == gw_host
    assert dr["spec"]["subsets"][0]["trafficPolicy"]["portLevelSettings"] == [
        {"port": {"number": 80}, "tls": {"mode": "ISTIO_MUTUAL", "sni": "www.httpbin.org"}}
    ]
    ap = by(out.objects, "AuthorizationPolicy", "istio-system", base)
    assert ap["spec"]["action"] == "DENY"
    assert ap["spec"]["rules"] == [
        {
            "to": [
                {
                    "operation": {
                        "ports": ["80"],
                        "hosts": [
                            "httpbin.org",
                            "httpbin.org:*",
                            "www.httpbin.org",
                            "www.httpbin.org:*",
                        ],
                    }
                }
            ],
            # sleep-b's account is not here: it is refused at the gateway.
            "from": [{"source": {"notPrincipals": ["cluster.local/ns/mytest/sa/sleep-a"]}}],
        }
    ]


def test_every_generated_object_is_owned_labelled_and_valid() -> None:
    out = c.compile_policy(EXAMPLE, MESH)
    for obj in out.objects:
        meta = obj["metadata"]
        assert meta["labels"] == {
            c.LABEL_POLICY: "egress-by-egressgateway-a",
            c.LABEL_POLICY_NS: "istio-egress",
        }
        if meta["namespace"] == "istio-egress":
            assert meta["ownerReferences"][0]["uid"] == "policy-uid-1"
            assert meta["ownerReferences"][0]["kind"] == "ASMEgressTrafficPolicy"
        else:  # ownerReferences cannot cross namespaces
            assert "ownerReferences" not in meta
            assert meta["annotations"] == {c.OWNER_UID: "policy-uid-1"}
        res, problems = decode_object(copy.deepcopy(obj))
        assert res is not None, problems
        errors = [p for p in validate_resource(res) if p.severity == Severity.ERROR]
        assert not errors, (obj["kind"], errors)


def test_names_are_deterministic() -> None:
    assert c.compile_policy(EXAMPLE, MESH).objects == c.compile_policy(EXAMPLE, MESH).objects


def test_auto_allocated_ports_reported_and_added_to_the_gateway_service() -> None:
    policy = copy.deepcopy(EXAMPLE)
    to = policy["spec"]["egressRules"][0]["to"]
    del to[0]["byEgressGateway"]
    to.append(
        {
            "name": "tls",
            "hosts": ["www.aliyun.com"],
            "port": {"number": 443, "name": "https", "protocol": "HTTPS"},
        }
    )
    to.append(
        {
            "name": "grpc",
            "hosts": ["grpc.example.com"],
            "port": {"number": 9000, "name": "grpc", "protocol": "GRPC"},
        }
    )
    to.append(
        {
            "name": "db",
            "hosts": ["db.example.com"],
            "port": {"number": 5432, "name": "tcp", "protocol": "TCP"},
        }
    )
    out = c.compile_policy(policy, MESH)
    assert out.status["status"] == "Applied", out.status
    assert out.status["autoAllocatedGatewayPorts"] == {
        "db.example.com-5432": 10002,
        "grpc.example.com-9000": 50051,
        "www.aliyun.com-443": 10001,
        "www.httpbin.org-80": 10000,
    }
    assert [p["port"] for p in out.service_ports] == [10000, 10001, 10002, 50051]
    gw = by(out.objects, "Gateway", "istio-egress", "egress-by-egressgateway-a")
    assert [
        (s["port"]["number"], s["port"]["protocol"], s["tls"]["mode"])
        for s in gw["spec"]["servers"]
    ] == [
        (10000, "HTTPS", "ISTIO_MUTUAL"),
        (10001, "TLS", "ISTIO_MUTUAL"),
        (10002, "TLS", "ISTIO_MUTUAL"),
        (50051, "HTTPS", "ISTIO_MUTUAL"),
    ]
    tls_vs = by(out.objects, "VirtualService", "istio-egress", "egress-by-egressgateway-a-tls")
    assert tls_vs["spec"]["tls"][0]["match"] == [
        {"gateways": ["mesh"], "port": 443, "sniHosts": ["www.aliyun.com"]}
    ]
    assert tls_vs["spec"]["tcp"] == [
        {
            "match": [{"gateways": ["egress-by-egressgateway-a"], "port": 10001}],
            "route": [{"destination": {"host": "www.aliyun.com", "port": {"number": 443}}}],
        }
    ]
    ap = by(out.objects, "AuthorizationPolicy", "istio-system", "egress-by-egressgateway-a")
    # TCP/TLS rules carry no hosts (a DENY with HTTP-only fields would refuse everything).
    assert [r["to"][0]["operation"] for r in ap["spec"]["rules"]][1] == {"ports": ["10001"]}


def test_https_upgrade_originates_tls_at_the_gateway_only() -> None:
    policy = copy.deepcopy(EXAMPLE)
    policy["spec"]["egressRules"][0]["to"][0]["httpsUpgrade"] = {"enabled": True, "port": 443}
    out = c.compile_policy(policy, MESH)
    assert out.status["status"] == "Applied", out.status
    name = "egress-by-egressgateway-a-httpbin-service-http-upgrade"
    dr = by(out.objects, "DestinationRule", "istio-system", name)
    assert dr["spec"] == {
        "host": "www.httpbin.org",
        "exportTo": ["."],
        "trafficPolicy": {
            "portLevelSettings": [
                {"port": {"number": 443}, "tls": {"mode": "SIMPLE", "sni": "www.httpbin.org"}}
            ]
        },
    }
    se = by(out.objects, "ServiceEntry", "istio-system", name)
    assert se["spec"]["ports"] == [{"number": 443, "name": "https-443", "protocol": "HTTPS"}]
    assert se["spec"]["exportTo"] == ["."]
    vs = by(
        out.objects,
        "VirtualService",
        "istio-egress",
        "egress-by-egressgateway-a-httpbin-service-http",
    )
    assert vs["spec"]["http"][1]["route"][0]["destination"]["port"] == {"number": 443}
    # The mesh-facing entry is not exported to the gateway: it sees the 443 one alone.
    main = by(
        out.objects,
        "ServiceEntry",
        "istio-egress",
        "egress-by-egressgateway-a-httpbin-service-http",
    )
    assert main["spec"]["exportTo"] == [".", "mytest"]


def test_missing_gateway_fails_with_the_exact_reason() -> None:
    out = c.compile_policy(EXAMPLE, [])
    assert out.objects == []
    assert out.status["status"] == "Failed"
    assert out.status["message"] == (
        'spec.byEgressGateway.name: no IstioGateway "egressgateway-a" '
        "(ASM deploys egress gateways in istio-system)"
    )
    ingress = copy.deepcopy(GATEWAY)
    ingress["spec"]["gatewayType"] = "ingress"
    out = c.compile_policy(EXAMPLE, [ingress])
    assert "has gatewayType 'ingress', not egress" in out.status["message"]


def test_one_gateway_port_for_two_protocol_families_fails() -> None:
    policy = copy.deepcopy(EXAMPLE)
    policy["spec"]["egressRules"][0]["to"].append(
        {
            "name": "tls",
            "hosts": ["www.aliyun.com"],
            "byEgressGateway": {"port": 80},
            "port": {"number": 443, "name": "https", "protocol": "HTTPS"},
        }
    )
    out = c.compile_policy(policy, MESH)
    assert out.status["status"] == "Failed"
    assert "gateway port 80 is used for HTTP and TLS" in out.status["message"]


def test_hand_written_conflicts_are_reported_not_overwritten() -> None:
    same_name = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "Gateway",
        "metadata": {"name": "egress-by-egressgateway-a", "namespace": "istio-egress"},
        "spec": {"selector": {"istio": "other"}, "servers": []},
    }
    out = c.compile_policy(EXAMPLE, [*MESH, same_name])
    assert out.objects == [] and out.status["status"] == "Conflict"
    assert out.status["message"] == (
        "not applied: Gateway istio-egress/egress-by-egressgateway-a already exists and was "
        "not made by this policy"
    )
    mesh_vs = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "mine", "namespace": "default"},
        "spec": {"hosts": ["httpbin.org"], "http": [{"route": []}]},
    }
    out = c.compile_policy(EXAMPLE, [*MESH, mesh_vs])
    assert out.status["status"] == "Conflict"
    assert (
        "VirtualService default/mine also routes host httpbin.org in the mesh"
        in (out.status["message"])
    )
    gw_dr = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": "gw", "namespace": "istio-system"},
        "spec": {"host": "egressgateway-a.istio-system.svc.cluster.local"},
    }
    out = c.compile_policy(EXAMPLE, [*MESH, gw_dr])
    assert "DestinationRule istio-system/gw is a DestinationRule for" in out.status["message"]
    gw_server = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "Gateway",
        "metadata": {"name": "by-hand", "namespace": "default"},
        "spec": {
            "selector": {"istio": "egressgateway-a"},
            "servers": [
                {"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}
            ],
        },
    }
    out = c.compile_policy(EXAMPLE, [*MESH, gw_server])
    assert "Gateway default/by-hand serves host" in out.status["message"]
    # What this policy made itself (its labels) is no conflict: it is updated in place.
    made = c.compile_policy(EXAMPLE, MESH).objects
    assert c.compile_policy(EXAMPLE, MESH + made).status["status"] == "Applied"


def test_namespace_wide_source_and_no_workload_yet() -> None:
    policy = copy.deepcopy(EXAMPLE)
    policy["spec"]["egressRules"][0]["from"] = [
        {"namespace": "mytest", "workloadSelector": {"app": "nobody"}},
        {"namespace": "other"},
    ]
    ap = by(
        c.compile_policy(policy, MESH).objects,
        "AuthorizationPolicy",
        "istio-system",
        "egress-by-egressgateway-a",
    )
    assert ap["spec"]["rules"][0]["from"] == [
        {"source": {"notPrincipals": ["cluster.local/ns/other/sa/*"]}}
    ]
    policy["spec"]["egressRules"][0]["from"] = [
        {"namespace": "mytest", "workloadSelector": {"app": "nobody"}}
    ]
    ap = by(
        c.compile_policy(policy, MESH).objects,
        "AuthorizationPolicy",
        "istio-system",
        "egress-by-egressgateway-a",
    )
    assert "from" not in ap["spec"]["rules"][0]  # nobody matches: everyone is refused


def test_two_policies_making_the_same_object_the_later_conflicts() -> None:
    other = copy.deepcopy(EXAMPLE)
    other["metadata"]["namespace"] = "istio-system-2"
    twin = copy.deepcopy(EXAMPLE)
    twin["metadata"]["name"] = "egress-by-egressgateway-a"
    twin["metadata"]["namespace"] = "zz"
    results = c.compile_all([*MESH, EXAMPLE, twin])
    assert results[("istio-egress", "egress-by-egressgateway-a")].status["status"] == "Applied"
    late = results[("zz", "egress-by-egressgateway-a")]
    assert late.status["status"] == "Conflict"
    assert "is already made by ASMEgressTrafficPolicy istio-egress/" in late.status["message"]
