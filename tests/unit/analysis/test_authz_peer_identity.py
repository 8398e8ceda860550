"""MG2002: AuthorizationPolicies on a gateway that match peer identities mTLS never gives it."""

from __future__ import annotations

from pathlib import Path

from tests.unit.analysis.conftest import Run, codes
from tests.unit.cli.conftest import WALKTHROUGH
from tests.unit.cli.conftest import Run as CliRun

from meshgate.analysis import authz

GATEWAY = """
apiVersion: v1
kind: Pod
metadata:
  name: istio-egressgateway-1
  namespace: istio-system
  labels: {app: istio-egressgateway, istio: egressgateway}
  annotations: {meshgate.io/proxy-type: router}
spec: {containers: [{name: istio-proxy, image: envoy}]}
---
apiVersion: v1
kind: Pod
metadata:
  name: istio-egressgateway-2
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
  ports: [{name: http, port: 80}, {name: tls, port: 443}]
---
apiVersion: v1
kind: Pod
metadata: {name: sleep-1, namespace: default, labels: {app: sleep}}
spec: {containers: [{name: sleep}]}
"""


def gateway(mode: str = "") -> str:
    tls = f"\n    tls: {{mode: {mode}}}" if mode else ""
    protocol = "HTTPS" if mode else "HTTP"
    number = 443 if mode else 80
    return f"""
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: egress-gw-{number}, namespace: default}}
spec:
  selector: {{istio: egressgateway}}
  servers:
  - port: {{number: {number}, name: p{number}, protocol: {protocol}}}
    hosts: [aliyun.com]{tls}
"""


def policy(name: str, spec: str, namespace: str = "istio-system") -> str:
    return f"""
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: {name}, namespace: {namespace}}}
spec: {spec}
"""


GW = "selector: {matchLabels: {istio: egressgateway}}"
BY_PRINCIPAL = "rules: [{from: [{source: {principals: [cluster.local/ns/default/sa/sleep]}}]}]"
PRINCIPALS = "{" + GW + ", " + BY_PRINCIPAL + "}"
IDLE_GATEWAY = """
---
apiVersion: v1
kind: Pod
metadata:
  name: idle-gw-1
  namespace: istio-system
  labels: {istio: idle}
  annotations: {meshgate.io/proxy-type: router}
spec: {containers: [{name: istio-proxy, image: envoy}]}
"""


def test_identity_on_a_plaintext_gateway_is_warned_once(run: Run) -> None:
    found = run(GATEWAY + gateway() + policy("by-principal", PRINCIPALS), authz.peer_identity)
    # Two replicas, one workload: one message.
    assert codes(found) == [("MG2002", "AuthorizationPolicy istio-system/by-principal")]
    (m,) = found
    assert m.level.value == "Warning"
    assert m.text == (
        "from.source.principals need an mTLS peer identity, but this gateway is reached in "
        "plaintext (no server of Gateway default/egress-gw-80 has tls.mode ISTIO_MUTUAL): on "
        "this hop they never match, and their not- forms always do. Match on ipBlocks, or "
        "serve the gateway with ISTIO_MUTUAL."
    )


def test_every_identity_key_is_named(run: Run) -> None:
    spec = (
        "{" + GW + ", action: DENY, rules: [{from: [{source: {notNamespaces: [default], "
        "serviceAccounts: [sleep]}}]}, {when: [{key: source.principal, values: ['*']}, "
        "{key: source.namespace, values: [default]}, {key: source.ip, values: [10.0.0.1]}]}]}"
    )
    (m,) = run(GATEWAY + gateway() + policy("many", spec), authz.peer_identity)
    assert m.text.startswith(
        "from.source.notNamespaces, from.source.serviceAccounts, when source.principal, "
        "when source.namespace need an mTLS peer identity"
    )


def test_an_istio_mutual_server_gives_the_identity(run: Run) -> None:
    text = GATEWAY + gateway() + gateway("ISTIO_MUTUAL") + policy("by-principal", PRINCIPALS)
    assert run(text, authz.peer_identity) == []


def test_simple_tls_is_not_mutual(run: Run) -> None:
    text = GATEWAY + gateway("SIMPLE") + policy("by-principal", PRINCIPALS)
    (m,) = run(text, authz.peer_identity)
    assert "no server of Gateway default/egress-gw-443 has" in m.text


def test_addresses_sidecars_and_idle_gateways_are_fine(run: Run) -> None:
    by_ip = "{" + GW + ", rules: [{from: [{source: {ipBlocks: [10.34.0.5]}}]}]}"
    sleep_only = (
        "{selector: {matchLabels: {app: sleep}}, "
        "rules: [{when: [{key: source.namespace, values: [x]}]}]}"
    )
    text = (
        GATEWAY
        + IDLE_GATEWAY
        + gateway()
        + policy("by-ip", by_ip)
        + policy("sleep-only", sleep_only, "default")
        # A gateway pod no Gateway selects has no listener: nothing to say about it.
        + policy("idle", "{selector: {matchLabels: {istio: idle}}, " + BY_PRINCIPAL + "}")
    )
    assert run(text, authz.peer_identity) == []


def test_mesh_wide_and_target_ref_policies_reach_the_gateway(run: Run) -> None:
    rules = "rules: [{from: [{source: {namespaces: [default]}}]}]"
    text = (
        GATEWAY
        + gateway()
        + policy("mesh-wide", "{" + rules + "}")
        + policy(
            "by-ref", "{targetRefs: [{kind: Service, name: istio-egressgateway}], " + rules + "}"
        )
        + policy("other-ns", "{" + rules + "}", "default")
    )
    assert codes(run(text, authz.peer_identity)) == [
        ("MG2002", "AuthorizationPolicy istio-system/by-ref"),
        ("MG2002", "AuthorizationPolicy istio-system/mesh-wide"),
    ]


def test_the_seed_gateway_through_meshgate_analyze(mg: CliRun, tmp_path: Path) -> None:
    # The gateway pod is the one the IstioGateway's controller would run (implied).
    path = tmp_path / "ap.yaml"
    path.write_text(policy("by-principal", PRINCIPALS))
    result = mg(
        "analyze", "--offline", "-f", str(WALKTHROUGH), "-f", str(path),
        "--output-threshold", "Warning",
    )  # fmt: skip
    assert result.exit_code == 0, result.output  # a warning does not fail the run
    assert result.stdout.splitlines() == [
        f"Warning [MG2002] (AuthorizationPolicy istio-system/by-principal {path}:6) "
        "from.source.principals need an mTLS peer identity, but this gateway is reached in "
        "plaintext (no server of Gateway default/egress-gw has tls.mode ISTIO_MUTUAL): on "
        "this hop they never match, and their not- forms always do. Match on ipBlocks, or "
        "serve the gateway with ISTIO_MUTUAL."
    ]


def _peer_auth(name: str, namespace: str, mode: str, selector: str = "") -> str:
    sel = f"selector: {{matchLabels: {{{selector}}}}}, " if selector else ""
    return f"""
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {{name: {name}, namespace: {namespace}}}
spec: {{{sel}mtls: {{mode: {mode}}}}}
"""


SLEEP_BY_PRINCIPAL = "{selector: {matchLabels: {app: sleep}}, " + BY_PRINCIPAL + "}"


def test_identity_on_a_sidecar_with_mtls_disabled_is_warned(run: Run) -> None:
    text = GATEWAY + policy("sleep-by-principal", SLEEP_BY_PRINCIPAL, "default")
    # Auto mTLS (PERMISSIVE by default): callers with a sidecar bring their identity.
    assert run(text, authz.peer_identity_sidecars) == []
    assert run(text + _peer_auth("strict", "default", "STRICT"), authz.peer_identity_sidecars) == []
    found = run(
        text + _peer_auth("no-mtls", "default", "DISABLE", "app: sleep"),
        authz.peer_identity_sidecars,
    )
    assert codes(found) == [("MG2004", "AuthorizationPolicy default/sleep-by-principal")]
    assert found[0].text.startswith(
        "from.source.principals need an mTLS peer identity, but PeerAuthentication "
        "default/no-mtls sets mode DISABLE for pod default/sleep-1"
    )
