"""``describe pod``'s Egress section: which rule lets the pod out, and whether it can go
around the egress gateway."""

from __future__ import annotations

from tests.unit.cli.conftest import Run

GATEWAY_PODS = """apiVersion: v1
kind: Pod
metadata:
  name: istio-egressgateway-1
  namespace: istio-system
  labels: {app: istio-egressgateway, istio: egressgateway}
  annotations: {meshgate.io/proxy-type: router}
spec: {containers: [{name: istio-proxy, image: envoy}]}
---
apiVersion: v1
kind: Service
metadata: {name: istio-egressgateway, namespace: istio-system}
spec:
  selector: {istio: egressgateway}
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: Pod
metadata: {name: app, labels: {app: sleep}}
spec: {containers: [{name: app, image: curl}]}
"""

GATEWAY_ONLY = """apiVersion: meshgate.io/v1alpha1
kind: MeshConfig
metadata: {name: default}
spec: {outboundTrafficPolicy: {mode: REGISTRY_ONLY}, egressEnforcement: GATEWAY_ONLY}
"""

ISOLATED = """apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: only-dns}
spec:
  podSelector: {matchLabels: {app: sleep}}
  policyTypes: [Egress]
"""


# What the seed's step 4 gives a sidecar: REGISTRY_ONLY, aliyun.com through the gateway.
SEED_HOSTS = [
    "  Mode:         REGISTRY_ONLY (MeshConfig outboundTrafficPolicy): only the hosts below; "
    "any other gets 502 (HTTP) or a reset",
    "  Hosts:        (MESH_EXTERNAL ServiceEntries this pod sees)",
    "    aliyun.com:80 HTTP (ServiceEntry default/external-svc-http)",
    "      via:      egress gateway istio-egressgateway.istio-system.svc.cluster.local:80 "
    "(VirtualService default/egressgateway-vs)",
    "      hop:      plaintext (no DestinationRule sets tls for it)",
    "      gateway:  Gateway default/egress-gw port 80 (HTTP) -> aliyun.com:80 "
    "(VirtualService default/egressgateway-vs)",
]


def section(out: str) -> list[str]:
    lines = out.splitlines()
    start = lines.index("Egress:")
    return lines[start : lines.index("Events:  <none>")]


def test_off_with_a_gateway_route_says_workloads_can_go_around_it(walkthrough: Run) -> None:
    walkthrough("apply", "-f", "-", input=GATEWAY_PODS)
    got = section(walkthrough("describe", "pod", "app").stdout)
    assert got[:3] == [
        "Egress:",
        "  Enforcement:  OFF (MeshConfig egressEnforcement)",
        "  Exit:         direct: this pod can reach external hosts without any gateway",
    ]
    at = next(i for i, line in enumerate(got) if line.startswith("  Warning:"))
    warning = " ".join(" ".join(line.split()) for line in got[at:])
    assert got[3:9] == SEED_HOSTS
    assert warning.startswith(
        "Warning: workloads can go around the egress gateway "
        "istio-egressgateway.istio-system.svc.cluster.local (VirtualService "
        "default/egressgateway-vs routes to it)"
    )
    assert "Set MeshConfig egressEnforcement: GATEWAY_ONLY" in warning
    gw = section(
        walkthrough("describe", "pod", "istio-egressgateway-1", "-n", "istio-system").stdout
    )
    assert gw[2] == "  Exit:         this pod is a gateway: it may reach external hosts"
    assert not any(line.startswith("  Mode:") for line in gw)  # no sidecar routes there


def test_gateway_only_and_network_policies(walkthrough: Run) -> None:
    walkthrough("apply", "-f", "-", input=GATEWAY_PODS)
    walkthrough("apply", "-f", "-", input=GATEWAY_ONLY)
    got = section(walkthrough("describe", "pod", "app").stdout)
    assert got == [
        "Egress:",
        "  Enforcement:  GATEWAY_ONLY (MeshConfig egressEnforcement)",
        "  Exit:         only through an egress gateway: the node refuses this pod's own "
        "connections to external hosts",
        *SEED_HOSTS,
    ]
    walkthrough("apply", "-f", "-", input=ISOLATED)
    got = section(walkthrough("describe", "pod", "app").stdout)
    assert got[2] == "  Exit:         as its egress NetworkPolicies allow: default/only-dns"


def test_other_kinds_have_no_egress_section(walkthrough: Run) -> None:
    assert "Egress:" not in walkthrough("describe", "svc", "sleep").stdout


SCOPED = """apiVersion: networking.istio.io/v1beta1
kind: Sidecar
metadata: {name: open, namespace: default}
spec:
  workloadSelector: {labels: {app: sleep}}
  outboundTrafficPolicy: {mode: ALLOW_ANY}
  egress: [{hosts: ["./*", "shared/*"]}]
---
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: {name: private, namespace: shared}
spec:
  hosts: [private.example.com]
  exportTo: ["."]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: {name: public, namespace: shared}
spec:
  hosts: [httpbin.org]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: {name: unimported, namespace: elsewhere}
spec:
  hosts: [edition.cnn.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
"""


def test_sidecar_mode_and_scoping_decide_what_the_pod_sees(walkthrough: Run) -> None:
    walkthrough("apply", "-f", "-", input=GATEWAY_PODS)
    walkthrough("apply", "-f", "-", input=SCOPED)
    got = section(walkthrough("describe", "pod", "app").stdout)
    assert got[3] == (
        "  Mode:         ALLOW_ANY (Sidecar default/open outboundTrafficPolicy): the hosts "
        "below, and any other directly (PassthroughCluster)"
    )
    listed = [line.split()[0] for line in got if line.startswith("    ") and line[4] != " "]
    # exportTo "." keeps private.example.com in its namespace; the Sidecar imports nothing
    # from "elsewhere"; httpbin.org has no VirtualService: the sidecar goes direct.
    assert listed == ["aliyun.com:80", "httpbin.org:443"]
    # The Sidecar imports nothing from istio-system: the gateway host is out of its scope.
    assert (
        "      note:     istio-egressgateway.istio-system.svc.cluster.local is not in this "
        "pod's scope (Sidecar egress hosts, exportTo): its sidecar has no cluster for it"
    ) in got
    at = got.index("    httpbin.org:443 TLS (ServiceEntry shared/public)")
    assert got[at + 1] == "      direct:   the sidecar sends it to httpbin.org:443"


GATEWAY_POLICIES = """apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: only-sleep, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: egressgateway}}
  action: ALLOW
  rules: [{from: [{source: {principals: [cluster.local/ns/default/sa/sleep]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-default-posts, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: egressgateway}}
  action: DENY
  rules:
  - from: [{source: {namespaces: ["def*"]}}]
    to: [{operation: {methods: [POST]}}]
---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: to-gateway, namespace: default}
spec:
  host: istio-egressgateway.istio-system.svc.cluster.local
  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}
"""


def test_gateway_policies_are_judged_by_this_pods_identity(walkthrough: Run) -> None:
    walkthrough("apply", "-f", "-", input=GATEWAY_PODS)
    walkthrough("apply", "-f", "-", input=GATEWAY_POLICIES)
    got = section(walkthrough("describe", "pod", "app").stdout)
    assert got[7:11] == [
        "      hop:      ISTIO_MUTUAL (DestinationRule default/to-gateway)",
        "      gateway:  Gateway default/egress-gw port 80 (HTTP) -> aliyun.com:80 "
        "(VirtualService default/egressgateway-vs)",
        "      authz:    DENY istio-system/no-default-posts on the gateway denies some of this "
        "pod's requests (rule 0: other conditions too)",
        "      authz:    ALLOW istio-system/only-sleep on the gateway names other sources "
        "only: this pod is denied unless another ALLOW matches it",
    ]


def test_a_host_no_gateway_server_takes_is_refused_there(walkthrough: Run) -> None:
    walkthrough("apply", "-f", "-", input=GATEWAY_PODS)
    other = """apiVersion: networking.istio.io/v1beta1
kind: Gateway
metadata: {name: egress-gw, namespace: default}
spec:
  selector: {istio: egressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: [httpbin.org]}]
"""
    walkthrough("apply", "-f", "-", input=other)
    got = section(walkthrough("describe", "pod", "app").stdout)
    assert got[8] == (
        "      gateway:  no Gateway selecting it takes aliyun.com on port 80: the gateway "
        "refuses the request (404 for HTTP)"
    )


def test_authz_verdicts() -> None:
    from meshgate.cli.describe_hosts import authz_verdict

    def policy(action: str, *rules: dict[str, object]) -> dict[str, object]:
        return {"spec": {"action": action, "rules": list(rules)}}

    me, ns = "cluster.local/ns/default/sa/sleep", "default"
    src = {"from": [{"source": {"principals": ["*/sa/sleep"]}}]}
    assert authz_verdict(policy("ALLOW", src), me, ns) == "allows this pod (rule 0)"
    assert authz_verdict(policy("DENY", {}), me, ns) == "denies this pod (rule 0)"
    nots = {"from": [{"source": {"notNamespaces": ["default"]}}]}
    assert authz_verdict(policy("DENY", nots), me, ns) == "does not match this pod"
    ips = {"from": [{"source": {"ipBlocks": ["10.0.0.0/8"]}}]}
    assert authz_verdict(policy("ALLOW", nots, ips), me, ns) == (
        "allows some of this pod's requests (rule 1: other conditions too)"
    )
    assert authz_verdict(policy("ALLOW"), me, ns) == (
        "names other sources only: this pod is denied unless another ALLOW matches it"
    )
