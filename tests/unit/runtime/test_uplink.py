"""Uplink: configuration, its persistence, and the rules it renders (pure parts)."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshgate.runtime import uplink
from meshgate.runtime.uplink import UplinkConfig, UplinkError


def test_config_round_trips_and_keeps_other_keys(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"other": 1}')
    cfg = UplinkConfig(True, "169.254.77.0/29", ("192.0.2.53:53",))
    uplink.save_config(tmp_path, cfg)
    assert uplink.load_config(tmp_path) == cfg
    assert '"other": 1' in (tmp_path / "config.json").read_text()
    assert (tmp_path / "config.json").stat().st_mode & 0o777 == 0o600


def test_no_config_means_no_uplink(tmp_path: Path) -> None:
    assert uplink.load_config(tmp_path) == UplinkConfig()
    assert not UplinkConfig().enabled


def test_merge_keeps_what_no_flag_changes() -> None:
    saved = UplinkConfig(True, "169.254.77.0/29", ("192.0.2.53:53",))
    assert uplink.merge_config(saved, None, None, None) == saved
    off = uplink.merge_config(saved, False, None, None)
    assert not off.enabled and off.cidr == saved.cidr
    assert uplink.merge_config(saved, None, None, "").dns_upstreams == ()


@pytest.mark.parametrize(
    "cidr",
    ["10.34.5.0/30", "10.96.0.0/30", "198.51.100.0/30", "203.0.113.0/30", "192.0.2.8/30",
     "127.0.0.0/30", "169.254.34.0/31", "10.0.0.0/8x", "fd00::/64"],
)  # fmt: skip
def test_bad_cidrs_are_refused(cidr: str) -> None:
    with pytest.raises(UplinkError):
        uplink.check_cidr(cidr)


def test_upstreams_parse() -> None:
    got = uplink.parse_upstreams("192.0.2.53, 192.0.2.54:5353,[2001:db8::1]:53,2001:db8::2")
    assert got == ("192.0.2.53:53", "192.0.2.54:5353", "[2001:db8::1]:53", "[2001:db8::2]:53")
    assert uplink.split_upstream("[2001:db8::1]:53") == ("2001:db8::1", 53)
    for bad in ("example.com", "192.0.2.1:0", "192.0.2.1:x"):
        with pytest.raises(UplinkError):
            uplink.parse_upstreams(bad)


def test_resolv_conf_leaves_loopback_out() -> None:
    text = "search example\nnameserver 127.0.0.53\nnameserver 192.0.2.9\noptions edns0\n"
    assert uplink.resolv_conf_upstreams(text) == ("192.0.2.9:53",)


def test_explicit_upstreams_win(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("nameserver 192.0.2.9\n")
    assert uplink.host_upstreams(UplinkConfig(True), conf) == ("192.0.2.9:53",)
    cfg = UplinkConfig(True, dns_upstreams=("192.0.2.53:53",))
    assert uplink.host_upstreams(cfg, conf) == ("192.0.2.53:53",)


def test_plan_and_rules() -> None:
    p = uplink.plan("abc123", "169.254.34.0/30")
    assert (p.host_if, p.node_if, p.host_ip, p.node_ip) == (
        "mgu-abc123"[:3] + "abc123",
        "mgup0",
        "169.254.34.1",
        "169.254.34.2",
    )
    host = uplink.host_rules(p)
    assert host.splitlines() == [
        "*nat",
        ":MGUP-abc123-NAT - [0:0]",
        "-A MGUP-abc123-NAT -s 169.254.34.0/30 ! -o mguabc123 -m comment --comment "
        '"meshgate abc123 uplink" -j MASQUERADE',
        "COMMIT",
        "*filter",
        ":MGUP-abc123-FWD - [0:0]",
        "-A MGUP-abc123-FWD -i mguabc123 ! -o mguabc123 -m comment --comment "
        '"meshgate abc123 uplink" -j ACCEPT',
        "-A MGUP-abc123-FWD -o mguabc123 -m conntrack --ctstate RELATED,ESTABLISHED -m comment "
        '--comment "meshgate abc123 uplink" -j ACCEPT',
        "COMMIT",
    ]
    # Only chains of our own: no built-in chain's policy or rules are in the text.
    assert not any(
        line.startswith((":POSTROUTING", ":FORWARD", "-A FORWARD")) for line in host.splitlines()
    )
    node = uplink.node_rules(p)
    assert "-A MESHGATE-UPLINK -s 10.34.0.0/16 -o mgup0" in node
    assert "-j SNAT --to-source 169.254.34.2" in node
    assert uplink.host_hooks(p) == [
        ("nat", "POSTROUTING", "MGUP-abc123-NAT"),
        ("filter", "FORWARD", "MGUP-abc123-FWD"),
    ]


def test_record_round_trips() -> None:
    rec = uplink.Record(
        uplink.plan("abc123"), uplink.NsId(4, 4026531840), "mg-abc123-node",
        {"net/ipv4/conf/eth0/forwarding": "0"}, ["nat"],
    )  # fmt: skip
    assert uplink.Record.from_json(rec.to_json()) == rec


def test_own_namespace_is_found_without_a_prefix() -> None:
    assert uplink.find_netns(uplink.own_netns()) == []
    assert uplink.find_netns(uplink.NsId(0, 1)) is None
