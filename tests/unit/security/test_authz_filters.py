"""RBAC filters per proxy (security.authz) and their place in the translated listeners."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from tests.golden.envoyconf import by_name, envoy_path, envoy_validate
from tests.unit.security.rbackit import (
    gateway,
    http_rbac,
    names,
    network_rbac,
    policy,
    seed_with,
    sleep,
)

from meshgate.translate import translate

ROOT = Path(__file__).resolve().parents[3]
# A TLS passthrough server on the seed's gateway: its chains end in tcp_proxy.
PASSTHROUGH = """---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: wiki-gw, namespace: istio-system}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: 443, name: tls, protocol: TLS}
    hosts: ["*.wikipedia.org"]
    tls: {mode: PASSTHROUGH}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: wiki, namespace: default}
spec:
  hosts: ["*.wikipedia.org"]
  gateways: [istio-system/wiki-gw]
  tls:
  - match: [{port: 443, sniHosts: [en.wikipedia.org, de.wikipedia.org]}]
    route: [{destination: {host: en.wikipedia.org, port: {number: 443}}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: en-wiki, namespace: default}
spec:
  hosts: [en.wikipedia.org]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
"""
GW = "{selector: {matchLabels: {istio: egressgateway}}"
DENY_ADMIN = GW + ", action: DENY, rules: [{to: [{operation: {paths: ['/admin*']}}]}]}"
ALLOW_SLEEP = GW + ", rules: [{from: [{source: {ipBlocks: [10.34.0.5/32]}}]}]}"
AUDIT_ALL = GW + ", action: AUDIT, rules: [{}]}"


def test_no_policy_no_filters() -> None:
    snap = seed_with()
    assert http_rbac(snap, gateway(snap)) == []
    assert network_rbac(snap, gateway(snap)) == []


def test_one_filter_per_action_in_istio_order() -> None:
    snap = seed_with(
        policy("z-allow", "istio-system", ALLOW_SLEEP),
        policy("deny", "istio-system", DENY_ADMIN),
        policy("audit", "istio-system", AUDIT_ALL),
        policy("a-allow", "istio-system", GW + ", rules: [{to: [{operation: {ports: ['80']}}]}]}"),
    )
    filters = http_rbac(snap, gateway(snap))
    # AUDIT is Envoy's LOG; ALLOW is the enum's zero value, so JSON leaves it out.
    assert [f["rules"].get("action", "ALLOW") for f in filters] == ["LOG", "DENY", "ALLOW"]
    assert names(filters[0]) == ["ns[istio-system]-policy[audit]-rule[0]"]
    assert names(filters[1]) == ["ns[istio-system]-policy[deny]-rule[0]"]
    # Every ALLOW policy in one filter: any of them may allow.
    assert names(filters[2]) == [
        "ns[istio-system]-policy[a-allow]-rule[0]",
        "ns[istio-system]-policy[z-allow]-rule[0]",
    ]


def test_rule_index_names_each_rule() -> None:
    spec = (
        GW + ", rules: [{to: [{operation: {ports: ['1']}}]}, {to: [{operation: {ports: ['2']}}]}]}"
    )
    snap = seed_with(policy("two", "istio-system", spec))
    (allow,) = http_rbac(snap, gateway(snap))
    assert names(allow) == [
        "ns[istio-system]-policy[two]-rule[0]",
        "ns[istio-system]-policy[two]-rule[1]",
    ]


MATCH_NEVER = {
    "permissions": [{"notRule": {"any": True}}],
    "principals": [{"notId": {"any": True}}],
}


def test_empty_spec_is_an_allow_policy_that_denies_everything() -> None:
    snap = seed_with(policy("deny-all", "istio-system", "{}"))
    (allow,) = http_rbac(snap, gateway(snap))
    assert allow == {
        "rules": {"policies": {"ns[istio-system]-policy[deny-all]-rule[0]": MATCH_NEVER}}
    }
    # Mesh-wide from the root namespace; the same filter for TCP chains.
    assert http_rbac(snap, sleep(snap)) == [allow]
    (tcp,) = network_rbac(snap, gateway(snap))
    assert tcp["rules"] == allow["rules"] and tcp["statPrefix"] == "tcp."


def test_deny_without_rules_denies_nothing() -> None:
    snap = seed_with(policy("nothing", "istio-system", "{action: DENY}"))
    (deny,) = http_rbac(snap, gateway(snap))
    assert deny["rules"] == {
        "action": "DENY",
        "policies": {"ns[istio-system]-policy[nothing]-rule[0]": MATCH_NEVER},
    }


def test_deny_comes_before_allow_and_both_apply() -> None:
    snap = seed_with(
        policy("allow", "istio-system", "{rules: [{to: [{operation: {methods: [GET]}}]}]}"),
        policy("deny", "default", "{action: DENY, rules: [{}]}"),
    )
    # The default-namespace DENY is not the gateway's; the sleep pod gets both, DENY first.
    (allow,) = http_rbac(snap, gateway(snap))
    assert names(allow) == ["ns[istio-system]-policy[allow]-rule[0]"]
    deny, allow = http_rbac(snap, sleep(snap))
    assert deny["rules"]["action"] == "DENY"
    assert names(deny) == ["ns[default]-policy[deny]-rule[0]"]
    assert names(allow) == ["ns[istio-system]-policy[allow]-rule[0]"]


def test_dry_run_policies_are_shadow_rules() -> None:
    snap = seed_with(
        policy("try", "istio-system", DENY_ADMIN, annotations='{istio.io/dry-run: "true"}'),
        policy("kept", "istio-system", ALLOW_SLEEP, annotations='{istio.io/dry-run: "false"}'),
        policy("try-allow", "istio-system", "{rules: [{}]}", annotations='{istio.io/dry-run: "1"}'),
    )
    deny, allow = http_rbac(snap, gateway(snap))
    assert "rules" not in deny  # nothing enforced
    assert names(deny, "shadowRules") == ["ns[istio-system]-policy[try]-rule[0]"]
    assert deny["shadowRulesStatPrefix"] == "istio_dry_run_deny_"
    assert names(allow) == ["ns[istio-system]-policy[kept]-rule[0]"]
    assert names(allow, "shadowRules") == ["ns[istio-system]-policy[try-allow]-rule[0]"]
    assert allow["shadowRulesStatPrefix"] == "istio_dry_run_allow_"


def test_custom_without_a_provider_fails_closed() -> None:
    spec = (
        GW + ", action: CUSTOM, provider: {name: opa}, rules: [{to: [{operation: {paths: [/x]}}]}]}"
    )
    snap = seed_with(
        policy("ext", "istio-system", spec), policy("deny", "istio-system", DENY_ADMIN)
    )
    custom, deny = http_rbac(snap, gateway(snap))
    assert custom["rules"]["action"] == "DENY"
    assert names(custom) == [
        "istio-ext-authz-opa-ns[istio-system]-policy[ext]-rule[0]-deny-due-to-bad-CUSTOM-action"
    ]
    assert names(deny) == ["ns[istio-system]-policy[deny]-rule[0]"]


def test_tcp_filters_follow_istios_http_only_rules() -> None:
    allow = GW + ", rules: [{to: [{operation: {methods: [GET]}}]}]}"
    snap = seed_with(
        policy("allow", "istio-system", allow), policy("deny", "istio-system", DENY_ADMIN)
    )
    deny, allow = network_rbac(snap, gateway(snap))
    # The DENY rule keeps no attribute: every connection is denied (validation warns, MG1080).
    (rule,) = deny["rules"]["policies"].values()
    assert rule["permissions"] == [{"andRules": {"rules": [{"any": True}]}}]
    # The ALLOW rule is dropped: an ALLOW filter without policies allows nothing.
    assert allow == {"rules": {}, "statPrefix": "tcp."}


# ---- wiring into the gateway's listeners ---------------------------------------------------


def _hcm_filters(listener: object) -> list[str]:
    hcm = hcm_pb2.HttpConnectionManager()
    listener.filter_chains[0].filters[0].typed_config.Unpack(hcm)  # type: ignore[attr-defined]
    return [f.name for f in hcm.http_filters]


def test_gateway_http_listener_gets_rbac_before_fault_and_router() -> None:
    snap = seed_with(
        policy("deny", "istio-system", DENY_ADMIN), policy("allow", "istio-system", ALLOW_SLEEP)
    )
    config = translate(snap, gateway(snap))
    listener = by_name(config.listeners, "0.0.0.0_80")
    assert _hcm_filters(listener) == [
        "envoy.filters.http.header_to_metadata",  # the refusal's reason into the log
        "envoy.filters.http.rbac",
        "envoy.filters.http.rbac",
        "envoy.filters.http.fault",
        "envoy.filters.http.router",
    ]
    # A sidecar's policy guards its inbound side only: its outbound listeners are unchanged.
    plain = seed_with()
    with_policy = seed_with(policy("all", "istio-system", "{}"))
    guarded, unguarded = translate(with_policy, sleep(with_policy)), translate(plain, sleep(plain))
    assert guarded.clusters == unguarded.clusters and guarded.routes == unguarded.routes
    outbound = [x for x in guarded.listeners if x.name != "virtualInbound"]
    assert outbound == [x for x in unguarded.listeners if x.name != "virtualInbound"]
    inbound = by_name(guarded.listeners, "virtualInbound")
    for chain in inbound.filter_chains:
        first = chain.filters[0]
        if first.name == "envoy.filters.network.http_connection_manager":
            hcm = hcm_pb2.HttpConnectionManager()
            first.typed_config.Unpack(hcm)
            assert hcm.http_filters[1].name == "envoy.filters.http.rbac", chain.name
        else:
            assert first.name == "envoy.filters.network.rbac", chain.name


def test_tls_passthrough_chains_get_network_rbac_before_tcp_proxy() -> None:
    snap = seed_with(PASSTHROUGH, policy("deny", "istio-system", DENY_ADMIN))
    config = translate(snap, gateway(snap))
    listener = by_name(config.listeners, "0.0.0.0_443")
    assert len(listener.filter_chains) == 2
    for chain in listener.filter_chains:
        assert [f.name for f in chain.filters] == [
            "envoy.filters.network.rbac",
            "envoy.filters.network.tcp_proxy",
        ]
    assert _hcm_filters(by_name(config.listeners, "0.0.0.0_80"))[1] == "envoy.filters.http.rbac"


EVERYTHING = "".join(
    [
        policy("deny", "istio-system", DENY_ADMIN),
        policy("allow", "istio-system", ALLOW_SLEEP),
        policy("audit", "istio-system", AUDIT_ALL),
        policy("empty", "istio-system", "{}"),
        policy("dry", "istio-system", DENY_ADMIN, annotations='{istio.io/dry-run: "true"}'),
        policy(
            "custom",
            "istio-system",
            GW + ", action: CUSTOM, provider: {name: opa}, "
            "rules: [{to: [{operation: {ports: ['80']}}]}]}",
        ),
        policy(
            "wide",
            "istio-system",
            GW
            + """, rules: [{
              from: [{source: {principals: ["cluster.local/ns/default/sa/sleep", "*"],
                               notNamespaces: ["kube-*"], serviceAccounts: [x]}},
                     {source: {remoteIpBlocks: [192.0.2.0/24], notIpBlocks: ["2001:db8::/32"]}}],
              to: [{operation: {hosts: ["*.aliyun.com", "aliyun.com:*"], notMethods: [DELETE],
                                paths: ["/a/{*}/b/{**}", "*.php"], notPorts: ["81"]}}],
              when: [{key: "request.headers[x-user]", values: ["*"]},
                     {key: connection.sni, notValues: [evil.example]},
                     {key: destination.ip, values: [10.0.0.0/8]},
                     {key: source.namespace, values: [default]},
                     {key: "request.auth.claims[group]", notValues: [x]},
                     {key: "experimental.envoy.filters.network.mysql_proxy[db.table]",
                      values: ["[update]"]}]}]}""",
        ),
    ]
)


@pytest.mark.skipif(envoy_path() is None, reason="envoy binary not installed")
def test_envoy_accepts_every_shape() -> None:
    snap = seed_with(PASSTHROUGH, EVERYTHING)
    config = translate(snap, gateway(snap))
    assert any(http_rbac(snap, gateway(snap))) and any(network_rbac(snap, gateway(snap)))
    result = envoy_validate(config)
    assert result.returncode == 0, result.stderr[-3000:]


SCRIPT = """
import hashlib
from meshgate.translate import translate
from tests.unit.security.rbackit import gateway, seed_with
from tests.unit.security.test_authz_filters import EVERYTHING, PASSTHROUGH
snap = seed_with(PASSTHROUGH, EVERYTHING)
config = translate(snap, gateway(snap))
digest = hashlib.sha256()
for m in config.listeners:
    digest.update(m.SerializeToString(deterministic=True))
print(digest.hexdigest())
"""


def test_rbac_bytes_are_the_same_in_every_process() -> None:
    # The policies map sits inside packed Any values: it must be packed deterministically,
    # or each control-plane restart would push the same config under a new version.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT)]))
    env.pop("PYTHONHASHSEED", None)
    digests = set()
    for _ in range(2):
        proc = subprocess.run(
            [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stderr
        digests.add(proc.stdout.strip())
    assert len(digests) == 1, digests
