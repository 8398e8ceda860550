"""The uplink: an opt-in link from the node to the network namespace ``meshgate up`` runs in.

Rules:
- Off unless asked for (``meshgate up --uplink``); the choice is kept in the state
  directory's ``config.json`` (key ``uplink``) so a later ``up`` keeps it.
- This is the one module that changes the namespace ``up`` runs in (``the host``), on
  purpose and only as recorded: a veth pair ``mgu<id>`` (host) / ``mgup0`` (node) on a
  small link network (``--uplink-cidr``, default ``DEFAULT_CIDR``, which must not overlap
  the pod, service, node-link or world ranges), the node's default route through it, and
  iptables rules in chains of meshgate's own, named after the mesh id so that two meshes
  never touch each other's: the node SNATs the pod network to its link address
  (``MESHGATE-UPLINK``, nat POSTROUTING of the node), the host masquerades the link
  network on its way out (``MGUP-<id>-NAT``, nat POSTROUTING) and lets it through its
  ``FORWARD`` (``MGUP-<id>-FWD``). Nothing else in the host's tables is touched.
- Forwarding is enabled only where it must be: per interface, on the host end of the link
  and on the interfaces of the host's default routes (where replies come back in), never
  ``net.ipv4.ip_forward`` as a whole. Each value it changes is recorded, with the value it
  had, before it is changed, and ``remove`` puts it back.
- Record before create: the manifest's ``uplink`` section names the host namespace (device
  and inode of its nsfs file), the link, the chains and the sysctls before any is made, so
  ``remove`` (from ``manifest.teardown``) undoes exactly that, also after ``kill -9``, from
  any process: it finds the host namespace again by its inode (its own, a name under
  /run/netns, or a process in it). A host namespace that is gone has nothing to undo.
- The node's filter rules (NetworkPolicy, ``egressEnforcement``) judge what leaves through
  the uplink exactly as they judge what leaves for the world: the uplink adds a way out,
  never a permission. World hosts keep their /32 routes, which win over the default route.
- Pure helpers (``plan``, ``host_rules``, ``node_rules``, config and upstream parsing) do
  no I/O, so they are unit-tested alone.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meshgate.runtime import names, netns

if TYPE_CHECKING:
    from meshgate.runtime.manifest import Manifest

CONFIG_FILE = "config.json"
# Link-local: the link is one hop between two namespaces of one machine, never routed
# beyond it, and no documentation range (those are the world's) nor a private range a
# site may use.
DEFAULT_CIDR = "169.254.34.0/30"
NODE_IF = "mgup0"
NODE_CHAIN = "MESHGATE-UPLINK"
SECTION = "uplink"
DNS_PORT = 53
# Ranges the link network must stay out of: the mesh's own, and every range a world may
# use (documentation ranges) or sits on (the node link).
RESERVED = {
    "pod network": names.POD_NETWORK,
    "service network": "10.96.0.0/16",
    "world (192.0.2.0/24)": "192.0.2.0/24",
    "world (198.51.100.0/24)": "198.51.100.0/24",
    "world and node link (203.0.113.0/24)": "203.0.113.0/24",
    "loopback": "127.0.0.0/8",
}


class UplinkError(RuntimeError):
    """A bad uplink setting, or a host the uplink cannot attach to."""


# -- configuration (state directory) ------------------------------------------------------


@dataclass(frozen=True)
class UplinkConfig:
    enabled: bool = False
    cidr: str = DEFAULT_CIDR
    # "IP:PORT" each; empty: the nameservers of the resolv.conf that `up` sees.
    dns_upstreams: tuple[str, ...] = ()


def config_path(home: str | os.PathLike[str]) -> Path:
    return Path(home) / CONFIG_FILE


def load_config(home: str | os.PathLike[str]) -> UplinkConfig:
    try:
        data = json.loads(config_path(home).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return UplinkConfig()
    except ValueError as exc:
        raise UplinkError(f"{config_path(home)}: not JSON ({exc})") from None
    raw = data.get(SECTION) or {}
    return UplinkConfig(
        enabled=bool(raw.get("enabled", False)),
        cidr=str(check_cidr(str(raw.get("cidr", DEFAULT_CIDR)))),
        dns_upstreams=parse_upstreams(",".join(raw.get("dnsUpstreams") or [])),
    )


def save_config(home: str | os.PathLike[str], cfg: UplinkConfig) -> None:
    """Keep the other keys of config.json; write atomically (0600: it is root's state)."""
    path = config_path(home)
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        data = {}
    data[SECTION] = {
        "enabled": cfg.enabled,
        "cidr": cfg.cidr,
        "dnsUpstreams": list(cfg.dns_upstreams),
    }
    tmp = path.with_name(f".{CONFIG_FILE}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


def merge_config(
    saved: UplinkConfig, enabled: bool | None, cidr: str | None, upstreams: str | None
) -> UplinkConfig:
    """What `up` runs with: each flag given replaces the saved value, the rest is kept."""
    return UplinkConfig(
        enabled=saved.enabled if enabled is None else enabled,
        cidr=saved.cidr if cidr is None else str(check_cidr(cidr)),
        dns_upstreams=saved.dns_upstreams if upstreams is None else parse_upstreams(upstreams),
    )


def check_cidr(text: str) -> ipaddress.IPv4Network:
    """An IPv4 network with room for two hosts, clear of every range the mesh uses."""
    try:
        net = ipaddress.ip_network(text.strip(), strict=True)
    except ValueError as exc:
        raise UplinkError(f"--uplink-cidr: {exc}") from None
    if not isinstance(net, ipaddress.IPv4Network) or net.prefixlen > 30:
        raise UplinkError(f"--uplink-cidr: {text!r} must be an IPv4 network of /30 or wider")
    for what, reserved in RESERVED.items():
        if net.overlaps(ipaddress.IPv4Network(reserved)):
            raise UplinkError(f"--uplink-cidr: {net} overlaps the {what} ({reserved})")
    return net


def parse_upstreams(text: str) -> tuple[str, ...]:
    """``IP[:PORT],...`` (IPv6 as ``[IP]:PORT`` or bare) -> ``("IP:PORT", ...)``."""
    out: list[str] = []
    for item in (p.strip() for p in text.split(",")):
        if not item:
            continue
        host, port = item, str(DNS_PORT)
        m = re.fullmatch(r"\[(.+)\](?::(\d+))?", item)
        if m:
            host, port = m.group(1), m.group(2) or port
        elif item.count(":") == 1:
            host, port = item.split(":")
        try:
            addr = ipaddress.ip_address(host)
        except ValueError:
            raise UplinkError(f"--dns-upstream: {item!r} is not IP[:PORT]") from None
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise UplinkError(f"--dns-upstream: {item!r} has a bad port")
        out.append(f"[{addr}]:{port}" if addr.version == 6 else f"{addr}:{port}")
    return tuple(dict.fromkeys(out))


def split_upstream(upstream: str) -> tuple[str, int]:
    host, _, port = upstream.rpartition(":")
    return host.strip("[]"), int(port)


def resolv_conf_upstreams(text: str) -> tuple[str, ...]:
    """The nameservers of a resolv.conf, loopback ones left out: the node cannot reach the
    host's loopback (a local stub such as systemd-resolved's 127.0.0.53 must be named by
    the address it forwards to, with --dns-upstream)."""
    found = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            try:
                addr = ipaddress.ip_address(parts[1].split("%")[0])
            except ValueError:
                continue
            if not addr.is_loopback:
                found.append(parts[1])
    return parse_upstreams(",".join(found))


def host_upstreams(
    cfg: UplinkConfig, resolv_conf: Path = Path("/etc/resolv.conf")
) -> tuple[str, ...]:
    """The resolvers the DNS forwards to: the configured ones, else resolv.conf's (and
    systemd-resolved's own list when resolv.conf names only its local stub)."""
    if cfg.dns_upstreams:
        return cfg.dns_upstreams
    for path in (resolv_conf, Path("/run/systemd/resolve/resolv.conf")):
        try:
            found = resolv_conf_upstreams(path.read_text(encoding="utf-8"))
        except OSError:
            continue
        if found:
            return found
    return ()


# -- the plan and its rules (pure) --------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    mesh_id: str
    cidr: str
    host_if: str
    node_if: str
    host_ip: str
    node_ip: str
    nat_chain: str
    fwd_chain: str
    node_chain: str = NODE_CHAIN

    @property
    def prefix_len(self) -> int:
        return ipaddress.IPv4Network(self.cidr).prefixlen


def plan(mesh_id: str, cidr: str = DEFAULT_CIDR) -> Plan:
    net = check_cidr(cidr)
    hosts = list(net.hosts())
    host_if = f"mgu{mesh_id}"
    assert len(host_if) <= names.IFNAME_MAX
    return Plan(
        mesh_id=mesh_id,
        cidr=str(net),
        host_if=host_if,
        node_if=NODE_IF,
        host_ip=str(hosts[0]),
        node_ip=str(hosts[1]),
        nat_chain=f"MGUP-{mesh_id}-NAT",
        fwd_chain=f"MGUP-{mesh_id}-FWD",
    )


def _comment(text: str) -> str:
    return f'-m comment --comment "{text}"'


def host_rules(p: Plan) -> str:
    """iptables-restore input (``--noflush``) for the host: our two chains, replaced whole."""
    why = _comment(f"meshgate {p.mesh_id} uplink")
    return "\n".join(
        [
            "*nat",
            f":{p.nat_chain} - [0:0]",
            f"-A {p.nat_chain} -s {p.cidr} ! -o {p.host_if} {why} -j MASQUERADE",
            "COMMIT",
            "*filter",
            f":{p.fwd_chain} - [0:0]",
            f"-A {p.fwd_chain} -i {p.host_if} ! -o {p.host_if} {why} -j ACCEPT",
            f"-A {p.fwd_chain} -o {p.host_if} -m conntrack --ctstate RELATED,ESTABLISHED "
            f"{why} -j ACCEPT",
            "COMMIT",
            "",
        ]
    )


def node_rules(p: Plan) -> str:
    """iptables-restore input (``--noflush``) for the node: pods leave as the node's link
    address, so the host needs no route to the pod network (two meshes on one host use
    the same pod network)."""
    why = _comment("pods leave through the uplink as the node")
    return "\n".join(
        [
            "*nat",
            f":{p.node_chain} - [0:0]",
            f"-A {p.node_chain} -s {names.POD_NETWORK} -o {p.node_if} {why} "
            f"-j SNAT --to-source {p.node_ip}",
            "COMMIT",
            "",
        ]
    )


def host_hooks(p: Plan) -> list[tuple[str, str, str]]:
    """(table, built-in chain, our chain): each jump is inserted first, removed by down."""
    return [("nat", "POSTROUTING", p.nat_chain), ("filter", "FORWARD", p.fwd_chain)]


# -- the host namespace, found again by its inode -----------------------------------------


@dataclass(frozen=True)
class NsId:
    dev: int
    ino: int


def own_netns() -> NsId:
    st = os.stat("/proc/self/ns/net")
    return NsId(st.st_dev, st.st_ino)


def _same(path: str, ns: NsId) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == (ns.dev, ns.ino)


def find_netns(ns: NsId) -> list[str] | None:
    """A command prefix that runs in namespace ``ns`` ([] for our own), or None when no
    name or process holds it any more (it is gone, and with it all we added there)."""
    if _same("/proc/self/ns/net", ns):
        return []
    candidates = [str(netns.NETNS_RUN / n) for n in netns.list_names("")]
    candidates += [f"/proc/{p}/ns/net" for p in os.listdir("/proc") if p.isdigit()]
    for path in candidates:
        if _same(path, ns):
            return ["nsenter", f"--net={path}"]
    return None


# -- install, describe, remove ------------------------------------------------------------


@dataclass
class Record:
    """The manifest's ``uplink`` section: everything ``remove`` needs."""

    plan: Plan
    netns: NsId
    node_netns: str
    # "net/ipv4/conf/IF/forwarding" -> the value before meshgate set it
    sysctls: dict[str, str] = field(default_factory=dict)
    # iptables (nf_tables) tables that did not exist before: removed again when empty
    new_tables: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "plan": asdict(self.plan),
            "netns": asdict(self.netns),
            "node_netns": self.node_netns,
            "sysctls": dict(self.sysctls),
            "new_tables": list(self.new_tables),
        }

    @staticmethod
    def from_json(data: dict[str, Any]) -> Record:
        return Record(
            plan=Plan(**data["plan"]),
            netns=NsId(**data["netns"]),
            node_netns=str(data["node_netns"]),
            sysctls={str(k): str(v) for k, v in (data.get("sysctls") or {}).items()},
            new_tables=[str(t) for t in data.get("new_tables") or []],
        )


def _run(
    prefix: Sequence[str], argv: Sequence[str], check: bool = True, stdin: str | None = None
) -> str:
    return netns.run([*prefix, *argv], check=check, input_text=stdin)


def default_route_devs(prefix: Sequence[str] = ()) -> list[str]:
    out = _run(prefix, ["ip", "-j", "route", "show", "default"])
    devs = [str(r["dev"]) for r in json.loads(out or "[]") if r.get("dev")]
    return sorted(set(devs))


def _sysctl_key(dev: str) -> str:
    # The slash form: an interface name may hold a dot (eth0.100).
    return f"net/ipv4/conf/{dev}/forwarding"


def _read_sysctl(prefix: Sequence[str], key: str) -> str | None:
    out = _run(prefix, ["sysctl", "-n", key], check=False).strip()
    return out or None


def _check_addresses(p: Plan) -> None:
    """The link network must be free in the host (an address or route inside it means
    another mesh or something else uses it: --uplink-cidr picks another)."""
    net = ipaddress.IPv4Network(p.cidr)
    for r in json.loads(_run([], ["ip", "-j", "-4", "route", "show", "table", "all"]) or "[]"):
        dst = str(r.get("dst", ""))
        if r.get("dev") == p.host_if or dst in ("", "default") or r.get("type") == "broadcast":
            continue
        try:
            other = ipaddress.IPv4Network(dst, strict=False)
        except ValueError:
            continue
        # A wider route (a host's 169.254.0.0/16, say) is fine: ours is more specific.
        if other.subnet_of(net) and r.get("type", "unicast") in ("unicast", "local"):
            raise UplinkError(
                f"uplink network {net} is in use in the host ({dst} dev {r.get('dev')}); "
                "choose another with --uplink-cidr"
            )


def _nft_backend() -> bool:
    """iptables over nf_tables makes a table on first use, and nft can delete it again;
    legacy iptables' tables are built in (nothing to undo)."""
    return "nf_tables" in _run([], ["iptables", "-V"], check=False)


def _tables(prefix: Sequence[str]) -> set[str]:
    out = _run(prefix, ["iptables-save"], check=False)
    return {line[1:].strip() for line in out.splitlines() if line.startswith("*")}


def _empty_table(prefix: Sequence[str], table: str) -> bool:
    """No rule, no chain of anyone's, every built-in policy ACCEPT: as if never made."""
    for line in _run(prefix, ["iptables", "-t", table, "-S"], check=False).splitlines():
        if not (line.startswith("-P ") and line.endswith(" ACCEPT")):
            return False
    return True


def install(man: Manifest, node_netns: str, cfg: UplinkConfig) -> Record:
    """Attach the node to the namespace this process runs in (idempotent: a restarted
    control plane adopts what is there). Recorded in ``man`` before anything is made."""
    p = plan(man.mesh_id, cfg.cidr)
    old = man.section(SECTION)
    rec = Record(p, own_netns(), node_netns)
    if old:
        prev = Record.from_json(old)
        if prev.plan != p or prev.netns != rec.netns:
            raise UplinkError(
                "an uplink with other settings is in place; run `meshgate down` first"
            )
        rec.sysctls = dict(prev.sysctls)
        rec.new_tables = list(prev.new_tables)
    elif _nft_backend():
        have = _tables([])
        rec.new_tables = [t for t, _, _ in host_hooks(p) if t not in have]
    devs = default_route_devs()
    if not devs:
        raise UplinkError("the namespace `meshgate up` runs in has no default route")
    linked = bool(_run([], ["ip", "link", "show", p.host_if], check=False))
    if not linked:
        _check_addresses(p)
    for dev in [p.host_if, *devs]:
        key = _sysctl_key(dev)
        if key not in rec.sysctls and dev != p.host_if:
            rec.sysctls[key] = _read_sysctl([], key) or "0"
    man.set_section(SECTION, rec.to_json())  # before anything is created
    man.record_veth(node_netns, p.node_if)
    if not linked:
        _run([], ["ip", "link", "add", p.host_if, "type", "veth",
                  "peer", "name", p.node_if, "netns", node_netns])  # fmt: skip
        _run([], ["ip", "addr", "add", f"{p.host_ip}/{p.prefix_len}", "dev", p.host_if])
        netns.ip(node_netns, "addr", "add", f"{p.node_ip}/{p.prefix_len}", "dev", p.node_if)
    _run([], ["ip", "link", "set", p.host_if, "up"])
    netns.ip(node_netns, "link", "set", p.node_if, "up")
    netns.ip(node_netns, "route", "replace", "default", "via", p.host_ip, "dev", p.node_if)
    for dev in [p.host_if, *devs]:
        _run([], ["sysctl", "-qw", f"{_sysctl_key(dev)}=1"])
    _run([], ["iptables-restore", "--noflush"], stdin=host_rules(p))
    for table, hook, chain in host_hooks(p):
        has = ["iptables", "-t", table, "-C", hook, "-j", chain]
        if subprocess.run(has, capture_output=True, check=False).returncode != 0:
            _run([], ["iptables", "-t", table, "-I", hook, "1", "-j", chain])
    netns.run([*netns.exec_prefix(node_netns), "iptables-restore", "--noflush"],
              input_text=node_rules(p))  # fmt: skip
    check = [*netns.exec_prefix(node_netns), "iptables", "-t", "nat", "-C", "POSTROUTING",
             "-j", p.node_chain]  # fmt: skip
    if subprocess.run(check, capture_output=True, check=False).returncode != 0:
        netns.run([*netns.exec_prefix(node_netns), "iptables", "-t", "nat", "-I",
                   "POSTROUTING", "1", "-j", p.node_chain])  # fmt: skip
    return rec


def describe(man: Manifest, upstreams: Sequence[str]) -> dict[str, Any] | None:
    """What `meshgate status` shows: None when there is no uplink."""
    data = man.section(SECTION)
    if not data:
        return None
    rec = Record.from_json(data)
    p = rec.plan
    return {
        "link": f"{p.host_if} {p.host_ip}/{p.prefix_len} (host) <-> "
        f"{p.node_if} {p.node_ip}/{p.prefix_len} (node)",
        "nodeRoute": f"default via {p.host_ip} dev {p.node_if}",
        "nat": f"node: {names.POD_NETWORK} -o {p.node_if} SNAT to {p.node_ip} ({p.node_chain});"
        f" host: {p.cidr} MASQUERADE ({p.nat_chain}), FORWARD ({p.fwd_chain})",
        "forwarding": ", ".join(sorted({_sysctl_key(p.host_if), *rec.sysctls})),
        "dnsUpstreams": ", ".join(upstreams) or "<none>",
    }


def remove(man: Manifest) -> list[str]:
    """Undo what the manifest's ``uplink`` section records; returns the problems left
    (empty when all is undone). The section is forgotten only when nothing is left."""
    data = man.section(SECTION)
    if not data:
        return []
    rec = Record.from_json(data)
    p = rec.plan
    prefix = find_netns(rec.netns)
    problems: list[str] = []
    if prefix is not None:
        for table, hook, chain in host_hooks(p):
            while subprocess.run([*prefix, "iptables", "-t", table, "-D", hook, "-j", chain],
                                 capture_output=True, check=False).returncode == 0:  # fmt: skip
                pass
            for op in ("-F", "-X"):
                subprocess.run([*prefix, "iptables", "-t", table, op, chain],
                               capture_output=True, check=False)  # fmt: skip
            listed = _run(prefix, ["iptables", "-t", table, "-S"], check=False)
            if f" {chain} " in f" {listed} ".replace("\n", " "):
                problems.append(f"chain {chain} of table {table} still there")
        for table in rec.new_tables:
            if table in _tables(prefix) and _empty_table(prefix, table):
                _run(prefix, ["nft", "delete", "table", "ip", table], check=False)
        # Deleting one end deletes the pair (the node's end too).
        _run(prefix, ["ip", "link", "del", p.host_if], check=False)
        for key, value in sorted(rec.sysctls.items()):
            if _read_sysctl(prefix, key) is not None:  # its interface may be gone
                _run(prefix, ["sysctl", "-qw", f"{key}={value}"], check=False)
    if problems:
        return problems
    with man.edit() as m:
        m["sections"].pop(SECTION, None)
    return []
