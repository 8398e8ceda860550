"""The node's filter rules (runtime.netpolicy.render), judged by what they let through.

``verdict`` walks the rendered chains for one new connection the way netfilter does (the
subset of iptables the renderer writes), so each test states Kubernetes semantics:
who may open what, not which lines appear.
"""

from __future__ import annotations

import ipaddress
import shlex

import pytest

from meshgate.api.kinds import kubernetes as kube
from meshgate.runtime.netpolicy import NODE_DNS, PodInfo, PodPort, Policy, render

BRIDGE, WORLD_LINK = "mgbr0", "mginet0"
WORLD = "198.51.100.10"

SLEEP = PodInfo("default", "sleep", "10.34.0.10", {"app": "sleep"})
BARE = PodInfo("default", "bare", "10.34.0.11", {"app": "bare"})
GATEWAY = PodInfo(
    "istio-system",
    "istio-egressgateway-1",
    "10.34.0.12",
    {"app": "istio-egressgateway", "istio": "egressgateway"},
    (PodPort("http-0", 80),),
    gateway=True,
)
WEB = PodInfo(
    "shop", "web", "10.34.0.13", {"app": "web", "tier": "front"}, (PodPort("http", 8080),)
)
DB = PodInfo("shop", "db", "10.34.0.14", {"app": "db"}, (PodPort("pg", 5432),))
T_SLEEP = PodInfo("test-egress", "sleep", "10.34.0.15", {"app": "sleep"})
PODS = [SLEEP, BARE, GATEWAY, WEB, DB, T_SLEEP]
NAMESPACES: dict[str, dict[str, str]] = {"default": {}, "istio-system": {}, "shop": {"team": "a"}}


def policy(namespace: str, spec: dict[str, object], name: str = "p") -> Policy:
    return Policy(namespace, name, kube.NetworkPolicySpec.model_validate(spec))


def _matches(args: list[str], pkt: dict[str, object]) -> bool:
    i = 0
    while i < len(args):
        neg = args[i] == "!"
        if neg:
            i += 1
        opt, val = args[i], args[i + 1] if i + 1 < len(args) else ""
        if opt in ("-s", "-d"):
            addr = ipaddress.ip_address(str(pkt["src" if opt == "-s" else "dst"]))
            ok = addr in ipaddress.ip_network(val)
        elif opt in ("-i", "-o"):
            ok = pkt["in" if opt == "-i" else "out"] == val
        elif opt == "-p":
            ok = pkt["proto"] == val
        elif opt == "--dport":
            lo, _, hi = val.partition(":")
            ok = int(lo) <= int(str(pkt["dport"])) <= int(hi or lo)
        elif opt == "--ctstate":  # NEW or ESTABLISHED (a packet of either direction)
            ok = str(pkt.get("state", "NEW")) in val.split(",")
        elif opt == "--ctdir":
            ok = val == pkt.get("dir", "ORIGINAL")
        elif opt in ("-m", "--comment", "--reject-with"):
            ok = True
        else:
            raise AssertionError(f"the test's evaluator does not know {opt}")
        if ok == neg:
            return False
        i += 2
    return True


def verdict(text: str, hook: str, **pkt: object) -> str:
    """ACCEPT or REJECT for the first packet of a connection entering ``hook``."""
    chains: dict[str, list[tuple[list[str], str]]] = {}
    for line in text.splitlines():
        if line.startswith("-A "):
            words = shlex.split(line)
            j = words.index("-j")
            chains.setdefault(words[1], []).append((words[2:j], words[j + 1]))

    def walk(chain: str) -> str | None:
        for args, target in chains.get(chain, []):
            if not _matches(args, pkt):
                continue
            if target in ("ACCEPT", "REJECT"):
                return target
            if target == "RETURN":
                return None
            decided = walk(target)
            if decided is not None:
                return decided
        return None

    entry = {"FORWARD": "MESHGATE-FORWARD", "INPUT": "MESHGATE-INPUT"}[hook]
    return walk(entry) or "ACCEPT"  # the node's built-in policy


def between(text: str, src: PodInfo, dst: PodInfo, port: int, proto: str = "tcp") -> str:
    hook = "INPUT" if dst is NODE_DNS else "FORWARD"
    out = "" if dst is NODE_DNS else BRIDGE
    return verdict(
        text, hook, src=src.ip, dst=dst.ip, proto=proto, dport=port, out=out, **{"in": BRIDGE}
    )


def to_world(
    text: str, src: PodInfo, port: int = 80, proto: str = "tcp", dst: str = WORLD, **ct: str
) -> str:
    return verdict(
        text, "FORWARD", src=src.ip, dst=dst, proto=proto, dport=port, out=WORLD_LINK,
        **{"in": BRIDGE}, **ct,
    )  # fmt: skip


def from_world(text: str, dst: PodInfo, port: int, src: str = WORLD) -> str:
    return verdict(
        text, "FORWARD", src=src, dst=dst.ip, proto="tcp", dport=port, out=BRIDGE,
        **{"in": WORLD_LINK},
    )  # fmt: skip


def rules(*policies: Policy, gateway_only: bool = False, pods: list[PodInfo] = PODS) -> str:
    return render(policies, pods, NAMESPACES, gateway_only=gateway_only)


# --- no policy, enforcement OFF: everything open, as a cluster without policies -------


def test_nothing_selected_nothing_isolated() -> None:
    text = rules()
    assert to_world(text, BARE) == "ACCEPT"
    assert to_world(text, SLEEP, 53, "udp") == "ACCEPT"
    assert between(text, SLEEP, WEB, 8080) == "ACCEPT"
    assert between(text, SLEEP, NODE_DNS, 53, "udp") == "ACCEPT"
    assert from_world(text, WEB, 8080) == "ACCEPT"


# --- the enforced exit ------------------------------------------------------------------


def test_gateway_only_lets_only_gateways_out() -> None:
    text = rules(gateway_only=True)
    assert to_world(text, GATEWAY) == "ACCEPT"
    for pod in (SLEEP, BARE, WEB):
        assert to_world(text, pod) == "REJECT"
        assert to_world(text, pod, 53, "udp", dst="8.8.8.8") == "REJECT"
        assert to_world(text, pod, 443, dst="10.96.0.99") == "REJECT"  # a VIP nobody serves
    # Inside the mesh nothing changes: pods, the gateway, the node's DNS.
    assert between(text, SLEEP, GATEWAY, 80) == "ACCEPT"
    assert between(text, BARE, WEB, 8080) == "ACCEPT"
    assert between(text, BARE, NODE_DNS, 53, "udp") == "ACCEPT"
    assert between(text, BARE, NODE_DNS, 53, "tcp") == "ACCEPT"


def test_gateway_only_cuts_connections_already_open_but_answers_the_outside() -> None:
    text = rules(gateway_only=True)
    assert to_world(text, SLEEP, state="ESTABLISHED") == "REJECT"
    assert to_world(text, SLEEP, state="ESTABLISHED", dir="REPLY") == "ACCEPT"
    assert to_world(text, GATEWAY, state="ESTABLISHED") == "ACCEPT"
    assert to_world(rules(), SLEEP, state="ESTABLISHED") == "ACCEPT"


def test_a_new_policy_ends_connections_already_open() -> None:
    text = rules(policy("shop", {"podSelector": {}, "policyTypes": ["Egress"]}))
    assert to_world(text, WEB, state="ESTABLISHED") == "REJECT"
    assert to_world(text, WEB, state="ESTABLISHED", dir="REPLY") == "ACCEPT"
    assert between(text, WEB, DB, 5432) == "REJECT"
    # Replies to a connection another pod opened to it still flow.
    reply = verdict(
        text, "FORWARD", src=WEB.ip, dst=SLEEP.ip, proto="tcp", dport=40000, out=BRIDGE,
        state="ESTABLISHED", dir="REPLY", **{"in": BRIDGE},
    )  # fmt: skip
    assert reply == "ACCEPT"


def test_gateway_only_fails_closed_for_an_unknown_source() -> None:
    text = rules(gateway_only=True)
    stranger = PodInfo("default", "new", "10.34.0.99")
    assert to_world(text, stranger) == "REJECT"


def test_gateway_only_rejects_tcp_with_a_reset_and_says_why() -> None:
    text = rules(gateway_only=True)
    assert '--comment "istio-system/istio-egressgateway-1: a gateway may leave the mesh"' in text
    assert "-A MESHGATE-EXIT -p tcp" in text and "--reject-with tcp-reset" in text


def test_a_pod_whose_egress_policy_allows_the_world_leaves_under_gateway_only() -> None:
    out = policy(
        "default",
        {
            "podSelector": {"matchLabels": {"app": "bare"}},
            "policyTypes": ["Egress"],
            "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}],
        },
    )
    text = rules(out, gateway_only=True)
    assert to_world(text, BARE) == "ACCEPT"
    assert to_world(text, SLEEP) == "REJECT"
    # ... and only where its policy says.
    narrow = policy(
        "default",
        {
            "podSelector": {"matchLabels": {"app": "bare"}},
            "policyTypes": ["Egress"],
            "egress": [
                {"to": [{"ipBlock": {"cidr": "198.51.100.0/24"}}], "ports": [{"port": 443}]}
            ],
        },
    )
    text = rules(narrow, gateway_only=True)
    assert to_world(text, BARE, 443) == "ACCEPT"
    assert to_world(text, BARE, 80) == "REJECT"
    assert to_world(text, BARE, 443, dst="203.0.113.9") == "REJECT"


def test_an_egress_policy_on_the_gateway_decides_for_it() -> None:
    only_dns = policy(
        "istio-system",
        {"podSelector": {}, "policyTypes": ["Egress"], "egress": []},
    )
    assert to_world(rules(only_dns, gateway_only=True), GATEWAY) == "REJECT"


# --- Istio's recipe (egress-gateway task), verbatim --------------------------------------

RECIPE = {
    "podSelector": {},
    "policyTypes": ["Egress"],
    "egress": [
        {
            "to": [{"namespaceSelector": {"matchLabels": {"kube-system": "true"}}}],
            "ports": [{"protocol": "UDP", "port": 53}],
        },
        {"to": [{"namespaceSelector": {"matchLabels": {"istio": "system"}}}]},
    ],
}


def test_istios_recipe_with_labelled_namespaces() -> None:
    namespaces = {
        **NAMESPACES,
        "istio-system": {"istio": "system"},
        "kube-system": {"kube-system": "true"},
    }
    text = render([policy("test-egress", RECIPE)], PODS, namespaces, gateway_only=False)
    assert between(text, T_SLEEP, NODE_DNS, 53, "udp") == "ACCEPT"
    assert between(text, T_SLEEP, NODE_DNS, 53, "tcp") == "REJECT"  # the recipe allows UDP only
    assert between(text, T_SLEEP, GATEWAY, 80) == "ACCEPT"
    assert to_world(text, T_SLEEP) == "REJECT"
    assert to_world(text, T_SLEEP, 53, "udp") == "REJECT"
    assert between(text, T_SLEEP, WEB, 8080) == "REJECT"
    # Other namespaces are untouched.
    assert to_world(text, SLEEP) == "ACCEPT"
    assert between(text, SLEEP, WEB, 8080) == "ACCEPT"


def test_istios_recipe_without_the_labels_allows_nothing() -> None:
    text = render([policy("test-egress", RECIPE)], PODS, NAMESPACES, gateway_only=False)
    assert between(text, T_SLEEP, NODE_DNS, 53, "udp") == "REJECT"
    assert between(text, T_SLEEP, GATEWAY, 80) == "REJECT"


def test_every_namespace_has_its_metadata_name_label() -> None:
    spec = {
        "podSelector": {},
        "policyTypes": ["Egress"],
        "egress": [
            {
                "to": [
                    {
                        "namespaceSelector": {
                            "matchLabels": {"kubernetes.io/metadata.name": "kube-system"}
                        },
                        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                    }
                ],
                "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": "dns-tcp"}],
            }
        ],
    }
    text = rules(policy("test-egress", spec))
    assert between(text, T_SLEEP, NODE_DNS, 53, "udp") == "ACCEPT"
    assert between(text, T_SLEEP, NODE_DNS, 53, "tcp") == "ACCEPT"  # by its port name
    assert between(text, T_SLEEP, GATEWAY, 80) == "REJECT"


# --- Kubernetes semantics ---------------------------------------------------------------


def test_ingress_isolation_allows_the_union_of_rules_and_named_ports() -> None:
    from_front = policy(
        "shop",
        {
            "podSelector": {"matchLabels": {"app": "db"}},
            "ingress": [
                {
                    "from": [{"podSelector": {"matchLabels": {"tier": "front"}}}],
                    "ports": [{"port": "pg"}],
                }
            ],
        },
        "a",
    )
    from_sleep = policy(
        "shop",
        {
            "podSelector": {"matchLabels": {"app": "db"}},
            "ingress": [
                {
                    "from": [
                        {
                            "namespaceSelector": {
                                "matchLabels": {"kubernetes.io/metadata.name": "default"}
                            },
                            "podSelector": {"matchLabels": {"app": "sleep"}},
                        }
                    ]
                }
            ],
        },
        "b",
    )
    text = rules(from_front, from_sleep)
    assert between(text, WEB, DB, 5432) == "ACCEPT"
    assert between(text, WEB, DB, 22) == "REJECT"
    assert between(text, SLEEP, DB, 22) == "ACCEPT"
    assert between(text, BARE, DB, 5432) == "REJECT"
    assert between(text, T_SLEEP, DB, 5432) == "REJECT"  # sleep, but not in default
    assert between(text, DB, DB, 9) == "ACCEPT"  # a pod reaches itself
    assert between(text, SLEEP, WEB, 80) == "ACCEPT"  # web is not selected
    assert from_world(text, DB, 5432) == "REJECT"


def test_an_empty_ingress_list_denies_all_and_policy_types_default() -> None:
    deny = policy("shop", {"podSelector": {}})  # policyTypes defaults to [Ingress]
    text = rules(deny)
    assert between(text, SLEEP, WEB, 8080) == "REJECT"
    assert from_world(text, WEB, 8080) == "REJECT"
    assert to_world(text, WEB) == "ACCEPT"  # egress is not isolated by it
    both = policy(
        "shop", {"podSelector": {}, "egress": [{"ports": [{"port": 53, "protocol": "UDP"}]}]}
    )
    text = rules(both)  # egress rules present: policyTypes defaults to [Ingress, Egress]
    assert to_world(text, WEB, 53, "udp") == "ACCEPT"
    assert to_world(text, WEB, 80) == "REJECT"


def test_ip_block_except_and_port_ranges() -> None:
    spec = {
        "podSelector": {"matchLabels": {"app": "web"}},
        "policyTypes": ["Egress"],
        "egress": [
            {
                "to": [{"ipBlock": {"cidr": "198.51.100.0/24", "except": ["198.51.100.10/32"]}}],
                "ports": [{"port": 8000, "endPort": 8100}],
            }
        ],
    }
    text = rules(policy("shop", spec))
    assert to_world(text, WEB, 8050, dst="198.51.100.11") == "ACCEPT"
    assert to_world(text, WEB, 8050, dst="198.51.100.10") == "REJECT"
    assert to_world(text, WEB, 8101, dst="198.51.100.11") == "REJECT"
    assert to_world(text, WEB, 8000, "udp", dst="198.51.100.11") == "REJECT"


def test_ip_block_covers_pods_and_ingress_from_the_world() -> None:
    spec = {
        "podSelector": {"matchLabels": {"app": "web"}},
        "ingress": [
            {"from": [{"ipBlock": {"cidr": "198.51.100.0/24"}}], "ports": [{"port": "http"}]}
        ],
    }
    text = rules(policy("shop", spec))
    assert from_world(text, WEB, 8080) == "ACCEPT"
    assert from_world(text, WEB, 9090) == "REJECT"
    assert from_world(text, WEB, 8080, src="203.0.113.2") == "REJECT"


def test_a_policy_selects_only_pods_of_its_namespace() -> None:
    text = rules(policy("default", {"podSelector": {"matchLabels": {"app": "web"}}}))
    assert between(text, SLEEP, WEB, 8080) == "ACCEPT"


@pytest.mark.parametrize("gateway_only", [False, True])
def test_rendering_is_deterministic(gateway_only: bool) -> None:
    pols = [policy("shop", {"podSelector": {}}, "a"), policy("test-egress", RECIPE, "b")]
    one = render(pols, PODS, NAMESPACES, gateway_only=gateway_only)
    two = render(list(reversed(pols)), list(reversed(PODS)), NAMESPACES, gateway_only=gateway_only)
    assert one == two
    assert one.startswith("*filter\n:MESHGATE-FORWARD - [0:0]\n")
    assert one.endswith("COMMIT\n")


# --- a joined node's rules (docs/nodes.md) ----------------------------------------------

N2_SLEEP = PodInfo("default", "sleep-2", "10.35.0.10", {"app": "sleep"})


def joined(*policies: Policy, gateway_only: bool = False) -> str:
    return render(
        policies, [*PODS, N2_SLEEP], NAMESPACES, gateway_only=gateway_only,
        dns_ip="10.35.0.1", mesh_cidrs=["10.34.0.0/16"], xds="10.34.0.1:15012",
    )  # fmt: skip


def test_joined_node_exit_lets_pods_reach_the_other_nodes_but_not_the_world() -> None:
    text = joined(gateway_only=True)
    # Leaving through the link to the first node: to a pod there (the egress gateway) it
    # stays inside the mesh; to the world it is the exit, refused.
    to_gateway = verdict(
        text, "FORWARD", src=N2_SLEEP.ip, dst=GATEWAY.ip, proto="tcp", dport=80, out="mgup0",
        **{"in": BRIDGE},
    )  # fmt: skip
    assert to_gateway == "ACCEPT"
    assert to_world(text, N2_SLEEP) == "REJECT"
    assert to_world(joined(), N2_SLEEP) == "ACCEPT"  # enforcement off: open
    # The first node's own rules (no mesh_cidrs) refuse the same trip to node 2's range.
    assert "10.34.0.0/16" not in rules(gateway_only=True)


def test_joined_node_dns_is_its_own_and_xds_stays_open_to_isolated_pods() -> None:
    deny_all = policy("default", {"podSelector": {}, "policyTypes": ["Egress"]})
    kube_dns = {"namespaceSelector": {}, "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}
    allow_dns = policy(
        "default",
        {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [{"to": [kube_dns], "ports": [{"port": 53, "protocol": "UDP"}]}],
        },
        "dns",
    )
    text = joined(deny_all, allow_dns)

    def to_node(port: int, proto: str, dst: str) -> str:
        return verdict(
            text, "INPUT", src=N2_SLEEP.ip, dst=dst, proto=proto, dport=port, out="",
            **{"in": BRIDGE},
        )  # fmt: skip

    assert to_node(53, "udp", "10.35.0.1") == "ACCEPT"  # its node's DNS is kube-dns
    assert between(text, N2_SLEEP, WEB, 8080) == "REJECT"
    xds = verdict(
        text, "FORWARD", src=N2_SLEEP.ip, dst="10.34.0.1", proto="tcp", dport=15012, out="mgup0",
        **{"in": BRIDGE},
    )  # fmt: skip
    assert xds == "ACCEPT"  # its sidecar keeps its configuration
    first_dns = verdict(
        text, "FORWARD", src=N2_SLEEP.ip, dst="10.34.0.1", proto="udp", dport=53, out="mgup0",
        **{"in": BRIDGE},
    )  # fmt: skip
    assert first_dns == "REJECT"  # the first node's DNS is not this node's kube-dns
