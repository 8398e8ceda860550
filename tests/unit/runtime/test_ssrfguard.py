"""The SSRF guard's rule compiler: what a gateway proxy may not connect to (pure)."""

from __future__ import annotations

import pytest

from meshgate.model import ssrf
from meshgate.runtime.ssrfguard import CHAIN, PROXY_CHAIN, Allowed, render

PROXY = "-m cgroup --path /mg-abc123-proxies"


def _rules(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("-A")]


def test_only_new_connections_of_the_proxy_are_judged() -> None:
    v4, v6 = render(PROXY, [])
    for text in (v4, v6):
        assert text.startswith("*filter\n")
        assert f":{CHAIN} - [0:0]" in text and f":{PROXY_CHAIN} - [0:0]" in text
        assert _rules(text)[:2] == [
            f"-A {CHAIN} -m conntrack ! --ctstate NEW -j RETURN",
            f"-A {CHAIN} {PROXY} -j {PROXY_CHAIN}",
        ]
        assert text.endswith("COMMIT\n")


def test_dns_passes_then_every_guarded_range_is_refused_with_its_own_reject_type() -> None:
    v4, v6 = render(PROXY, [])
    rules = _rules(v4)[2:]
    assert rules[0].startswith(f"-A {PROXY_CHAIN} -d 10.34.0.1/32 -p udp -m udp --dport 53")
    assert rules[1].startswith(f"-A {PROXY_CHAIN} -d 10.34.0.1/32 -p tcp -m tcp --dport 53")
    refused = [r for r in rules if "-j REJECT" in r]
    for cidr in ("127.0.0.0/8", "169.254.0.0/16", "10.34.0.0/16", "10.96.0.0/16", "0.0.0.0/8"):
        (rule,) = [r for r in refused if f" -d {cidr} " in r]
        assert rule.endswith("-j REJECT --reject-with icmp-proto-unreachable")
        assert '--comment "SSRF guard: ' in rule
    assert any(" -d 203.0.113.0/30 " in r for r in refused)  # the node's own link
    assert [r.split(" -d ")[1].split()[0] for r in _rules(v6)[2:]] == ["::1/128", "fe80::/10"]
    assert all(r.endswith("icmp6-adm-prohibited") for r in _rules(v6)[2:])


def test_allowed_destinations_come_before_the_refusals_address_and_port_exactly() -> None:
    v4, _ = render(
        PROXY,
        [
            Allowed("10.34.0.12", 8080, "outbound|8000||httpbin.default.svc.cluster.local"),
            Allowed("169.254.10.1", 80, "outbound|80||meta.internal"),
            Allowed("203.0.113.10", 443, "a world host: needs no exception"),
        ],
    )
    rules = _rules(v4)
    first_reject = next(i for i, r in enumerate(rules) if "-j REJECT" in r)
    allowed = [r for r in rules if '"allowed: ' in r]
    assert len(allowed) == 2
    assert all(rules.index(r) < first_reject for r in allowed)
    assert any(
        r.startswith(f"-A {PROXY_CHAIN} -d 10.34.0.12/32 -p tcp -m tcp --dport 8080 ")
        for r in allowed
    )
    assert "203.0.113.10" not in v4


def test_render_is_deterministic() -> None:
    a = [Allowed("10.34.0.12", 80), Allowed("10.34.0.11", 80), Allowed("10.34.0.12", 80)]
    assert render(PROXY, a) == render(PROXY, list(reversed(a)))


@pytest.mark.parametrize(
    ("ip", "what"),
    [
        ("127.0.0.1", "loopback"),
        ("169.254.169.254", "link-local"),
        ("10.34.0.1", "the node"),
        ("10.34.0.17", "in the mesh's pod network"),
        ("10.35.0.10", "in the mesh's pod network"),  # a joined node's pod
        ("10.33.2.1", "in the mesh's pod network"),  # a link between nodes
        ("10.96.3.4", "in the mesh's service network"),
        ("203.0.113.1", "the node"),
        ("::1", "loopback"),
        ("fe80::1", "link-local"),
    ],
)
def test_classify(ip: str, what: str) -> None:
    found = ssrf.classify(ip)
    assert found is not None and found.what == what


def test_world_addresses_are_not_guarded() -> None:
    assert ssrf.classify("203.0.113.10") is None
    assert ssrf.classify("198.51.100.7") is None
    assert ssrf.classify("not an ip") is None


def test_host_prefixes_match_exactly_their_range() -> None:
    assert ssrf.host_prefixes("127.0.0.0/8") == ["127."]
    assert ssrf.host_prefixes("10.34.0.1/32") == ["10.34.0.1:"]
    assert ssrf.host_prefixes("203.0.113.0/30") == [f"203.0.113.{i}:" for i in range(4)]
    assert ssrf.host_prefixes("10.32.0.0/11") == [f"10.{i}." for i in range(32, 64)]
    assert ssrf.host_prefixes("::1/128") == ["[::1]:"]
    assert ssrf.host_prefixes("fe80::/10") == ["[fe8", "[fe9", "[fea", "[feb"]


def test_disabled_guard_leaves_our_chains_empty() -> None:
    for text in render(PROXY, [Allowed("10.34.0.12", 80)], enabled=False):
        assert _rules(text) == []
        assert f":{CHAIN} - [0:0]" in text and f":{PROXY_CHAIN} - [0:0]" in text


def test_a_joined_nodes_gateway_passes_its_own_nodes_dns() -> None:
    v4, _ = render(PROXY, [Allowed("10.34.0.1", 15012, "the proxies' xDS")], dns_ip="10.35.0.1")
    rules = _rules(v4)[2:]
    assert rules[0].startswith(f"-A {PROXY_CHAIN} -d 10.35.0.1/32 -p udp -m udp --dport 53")
    assert rules[2].startswith(f"-A {PROXY_CHAIN} -d 10.34.0.1/32 -p tcp -m tcp --dport 15012")
    assert not any("-d 10.34.0.1/32 -p udp" in r for r in rules)  # node 1's DNS: refused
