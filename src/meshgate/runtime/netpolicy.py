"""NetworkPolicy and the enforced exit, compiled to the node's filter rules (pure).

The node is the mesh's CNI plugin: pods hang on bridge ``mgbr0`` of the node namespace, so
every packet between two pods, and every packet that leaves the mesh, crosses the node's
netfilter hooks (bridged packets too: ``bridge-nf-call-iptables`` is set in the node's own
namespace). This module turns what the store says into iptables-restore input for the
node's ``filter`` table; ``nodefilter`` installs it.

Rules (Kubernetes' NetworkPolicy semantics, as a CNI plugin implements them):
- A pod selected by some policy of its namespace whose (effective) ``policyTypes`` holds
  ``Egress`` is isolated for egress: it may open only what the union of those policies'
  egress rules allows; the same for ``Ingress``. A pod no policy selects is not isolated.
  A policy with an empty rule list for its type allows nothing; a rule without peers
  allows every peer; a rule without ports every port.
- A peer is pods (``podSelector`` in the policy's namespace, ``namespaceSelector`` for
  every pod of the matching namespaces, both for the matching pods of the matching
  namespaces) or an ``ipBlock`` (its CIDR minus the ``except`` CIDRs). Every namespace
  carries the label ``kubernetes.io/metadata.name: <name>``, as Kubernetes sets it.
- A port is a protocol (TCP when omitted), a number, a range (``endPort``) or a name: a
  named port is the peer pod's container port of that name (for ingress: the isolated
  pod's own); a name matches no ipBlock peer.
- Replies of an allowed connection are allowed (conntrack: the reply direction, and
  related ICMP); every packet its opener sends is judged, so a policy applies at once to
  connections already open, too. A pod may always reach itself; the node may always
  reach its pods (probes).
- The node's DNS (10.34.0.1:53, UDP and TCP) is the pod ``NODE_DNS``: namespace
  ``kube-system``, labels ``k8s-app: kube-dns``, ports ``dns``/``dns-tcp``, so the usual
  "allow DNS to kube-system" rules work verbatim. It is never isolated itself.
- The enforced exit (MeshConfig ``egressEnforcement: GATEWAY_ONLY``) is a baseline under
  NetworkPolicy, as Kubernetes' BaselineAdminNetworkPolicy is: traffic routed out of the
  pod network (to any address but a pod's or the node's) is refused unless its source is a
  gateway pod, or a pod isolated for egress by a NetworkPolicy (that policy decides: an
  egress rule allowing an ipBlock outside the mesh is how a pod is allowed out). An
  unknown source (a pod not yet known, a stopping one) is refused: the exit fails closed,
  and turning it on cuts connections already open (replies to connections opened from
  outside still pass).
- Refusals are ``REJECT`` (a TCP reset, else ICMP admin-prohibited), so a blocked client
  fails at once instead of timing out; each rule carries a comment saying why.
- On a joined node (docs/nodes.md) the same rules are rendered by the control plane for
  that node: its DNS is on its own bridge address (``dns_ip``), its proxies reach xDS on
  the first node (``xds``: allowed to every pod, as the Unix socket is on the first
  node), and the other nodes' pod ranges (``mesh_cidrs``) are inside the mesh, so the
  exit lets traffic to them through (the egress gateway may run on another node).
- Output is deterministic (sorted), so an unchanged mesh renders byte-identical text and
  the caller can skip the install. ``render`` is pure; ``apply`` replaces our five chains
  at once (iptables-restore ``--noflush``) and touches no other chain of the node.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from meshgate.api.kinds import kubernetes as kube
from meshgate.runtime import names, netns

FORWARD_CHAIN = "MESHGATE-FORWARD"
INPUT_CHAIN = "MESHGATE-INPUT"
EGRESS_CHAIN = "MESHGATE-EGRESS"
INGRESS_CHAIN = "MESHGATE-INGRESS"
EXIT_CHAIN = "MESHGATE-EXIT"
CHAINS = (FORWARD_CHAIN, INPUT_CHAIN, EGRESS_CHAIN, INGRESS_CHAIN, EXIT_CHAIN)
# (built-in hook, our chain): jumped to first in the hook.
HOOKS = (("FORWARD", FORWARD_CHAIN), ("INPUT", INPUT_CHAIN))
METADATA_NAME_LABEL = "kubernetes.io/metadata.name"


@dataclass(frozen=True)
class PodPort:
    name: str
    port: int
    protocol: str = "TCP"


@dataclass(frozen=True)
class PodInfo:
    """What the node knows of a running pod: where it is and what selects it."""

    namespace: str
    name: str
    ip: str
    labels: Mapping[str, str] = field(default_factory=dict)
    ports: tuple[PodPort, ...] = ()
    gateway: bool = False  # a gateway proxy and nothing else runs in it

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"


NODE_DNS = PodInfo(
    namespace="kube-system",
    name="kube-dns",
    ip=names.BRIDGE_IP,
    labels={"k8s-app": "kube-dns"},
    ports=(PodPort("dns", 53, "UDP"), PodPort("dns-tcp", 53, "TCP")),
)


@dataclass(frozen=True)
class Policy:
    namespace: str
    name: str
    spec: kube.NetworkPolicySpec


@dataclass(frozen=True)
class _Peer:
    """One destination (egress) or source (ingress) a rule allows: an address and, for
    a pod, the pod (for its named ports)."""

    cidr: str | None  # None: any address
    pod: PodInfo | None = None


def _namespace_labels(
    namespaces: Mapping[str, Mapping[str, str]], pods: Sequence[PodInfo]
) -> dict[str, dict[str, str]]:
    out = {ns: dict(labels) for ns, labels in namespaces.items()}
    for pod in pods:
        out.setdefault(pod.namespace, {})
    for ns, labels in out.items():
        labels[METADATA_NAME_LABEL] = ns
    return out


def _peers(
    policy: Policy,
    peers: list[kube.NetworkPolicyPeer] | None,
    pods: Sequence[PodInfo],
    ns_labels: Mapping[str, Mapping[str, str]],
) -> list[_Peer]:
    if not peers:
        return [_Peer(None)]
    out: list[_Peer] = []
    for peer in peers:
        if peer.ip_block is not None:
            out.extend(_Peer(c) for c in _ip_block(peer.ip_block))
            continue
        for pod in pods:
            if peer.namespace_selector is not None:
                if not peer.namespace_selector.matches(dict(ns_labels.get(pod.namespace, {}))):
                    continue
            elif pod.namespace != policy.namespace:
                continue
            if peer.pod_selector is not None and not peer.pod_selector.matches(dict(pod.labels)):
                continue
            out.append(_Peer(f"{pod.ip}/32", pod))
    return out


def _ip_block(block: kube.IPBlock) -> list[str]:
    """The CIDR minus its exceptions, as CIDRs iptables can match one by one."""
    try:
        nets = [ipaddress.ip_network(block.cidr, strict=False)]
    except ValueError:
        return []  # validation refuses it; never widen a rule on bad input
    for text in block.except_ or []:
        try:
            exc = ipaddress.ip_network(text, strict=False)
        except ValueError:
            continue
        kept: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for net in nets:
            if net.version == exc.version and exc.subnet_of(net):  # type: ignore[arg-type]
                kept.extend(net.address_exclude(exc))  # type: ignore[arg-type]
            elif net.version == exc.version and net.subnet_of(exc):  # type: ignore[arg-type]
                continue
            else:
                kept.append(net)
        nets = kept
    return sorted(str(n) for n in nets if n.version == 4)


def _port_matches(port: kube.NetworkPolicyPort, owner: PodInfo | None) -> list[str]:
    """iptables matches for one policy port; a named port resolves on ``owner``."""
    proto = (port.protocol or "TCP").lower()
    if port.port is None:
        return [f"-p {proto}"]
    if isinstance(port.port, int):
        span = f"{port.port}:{port.end_port}" if port.end_port is not None else f"{port.port}"
        return [f"-p {proto} -m {proto} --dport {span}"]
    if owner is None:
        return []  # a named port means nothing for an address that is not a pod
    return [
        f"-p {proto} -m {proto} --dport {p.port}"
        for p in owner.ports
        if p.name == port.port and p.protocol.lower() == proto
    ]


def _comment(text: str) -> str:
    return '-m comment --comment "' + text.replace('"', "'")[:250] + '"'


def _reject(prefix: str, why: str) -> list[str]:
    note = _comment(why)
    return [
        f"{prefix} -p tcp {note} -j REJECT --reject-with tcp-reset",
        f"{prefix} {note} -j REJECT --reject-with icmp-admin-prohibited",
    ]


def selects(policy: Policy, pod: PodInfo, kind: str) -> bool:
    return (
        pod.namespace == policy.namespace
        and kind in policy.spec.effective_policy_types
        and policy.spec.pod_selector.matches(dict(pod.labels))
    )


def _egress_lines(
    pod: PodInfo,
    policies: Sequence[Policy],
    pods: Sequence[PodInfo],
    ns_labels: Mapping[str, Mapping[str, str]],
    node_dns: PodInfo = NODE_DNS,
) -> list[str]:
    lines: list[str] = []
    src = f"-A {EGRESS_CHAIN} -s {pod.ip}/32"
    for policy in policies:
        for i, egress in enumerate(policy.spec.egress or []):
            why = _comment(f"{pod.ref}: egress[{i}] of {policy.namespace}/{policy.name}")
            for peer in _peers(policy, egress.to, [*pods, node_dns], ns_labels):
                dst = f" -d {peer.cidr}" if peer.cidr else ""
                for match in _port_matches_all(egress.ports, peer.pod):
                    lines.append(f"{src}{dst}{match} {why} -j RETURN")
    return sorted(set(lines)) + _reject(src, f"{pod.ref}: egress not allowed by NetworkPolicy")


def _ingress_lines(
    pod: PodInfo,
    policies: Sequence[Policy],
    pods: Sequence[PodInfo],
    ns_labels: Mapping[str, Mapping[str, str]],
) -> list[str]:
    dst = f"-A {INGRESS_CHAIN} -d {pod.ip}/32"
    lines = [f"{dst} -s {pod.ip}/32 {_comment(f'{pod.ref}: a pod may reach itself')} -j RETURN"]
    for policy in policies:
        for i, ingress in enumerate(policy.spec.ingress or []):
            why = _comment(f"{pod.ref}: ingress[{i}] of {policy.namespace}/{policy.name}")
            for peer in _peers(policy, ingress.from_, pods, ns_labels):
                src = f" -s {peer.cidr}" if peer.cidr else ""
                for match in _port_matches_all(ingress.ports, pod):
                    lines.append(f"{dst}{src}{match} {why} -j RETURN")
    return sorted(set(lines)) + _reject(dst, f"{pod.ref}: ingress not allowed by NetworkPolicy")


def _port_matches_all(
    ports: list[kube.NetworkPolicyPort] | None, owner: PodInfo | None
) -> list[str]:
    if not ports:
        return [""]
    return [f" {m}" for p in ports for m in _port_matches(p, owner)]


def render(
    policies: Iterable[Policy],
    pods: Iterable[PodInfo],
    namespaces: Mapping[str, Mapping[str, str]],
    *,
    gateway_only: bool,
    dns_ip: str = names.BRIDGE_IP,
    mesh_cidrs: Sequence[str] = (),
    xds: str | None = None,
) -> str:
    """iptables-restore input (``--noflush``: only our chains are replaced) for the node's
    filter table. ``namespaces`` maps each namespace to its labels; ``dns_ip``,
    ``mesh_cidrs`` and ``xds`` ("IP:PORT") describe a joined node (see the rules)."""
    policies = sorted(policies, key=lambda p: (p.namespace, p.name))
    pods = sorted((p for p in pods if p.ip), key=lambda p: (p.namespace, p.name))
    node_dns = NODE_DNS if dns_ip == NODE_DNS.ip else dataclasses.replace(NODE_DNS, ip=dns_ip)
    ns_labels = _namespace_labels(namespaces, [*pods, node_dns])
    bridge = names.BRIDGE
    lines = ["*filter", *(f":{chain} - [0:0]" for chain in CHAINS)]
    # Every packet a connection's opener sends is judged, not only its first: a rule added
    # later also ends connections already open (a sidecar's pooled upstream connection
    # would otherwise outlive it). What the other side sends back is a reply, let through.
    replies = "-m conntrack --ctdir REPLY"
    lines += [
        f"-A {FORWARD_CHAIN} -m conntrack --ctstate RELATED -j ACCEPT",
        f"-A {FORWARD_CHAIN} {replies} -j ACCEPT",
        f"-A {FORWARD_CHAIN} -i {bridge} ! -o {bridge} -j {EXIT_CHAIN}",
        f"-A {FORWARD_CHAIN} -i {bridge} -j {EGRESS_CHAIN}",
        f"-A {FORWARD_CHAIN} -o {bridge} -j {INGRESS_CHAIN}",
        f"-A {INPUT_CHAIN} -m conntrack --ctstate RELATED -j ACCEPT",
        f"-A {INPUT_CHAIN} {replies} -j ACCEPT",
        f"-A {INPUT_CHAIN} -i {bridge} -j {EGRESS_CHAIN}",
    ]
    if xds:
        host, _, port = xds.rpartition(":")
        why = _comment("the proxies' xDS on the first node")
        lines.append(f"-A {EGRESS_CHAIN} -d {host}/32 -p tcp -m tcp --dport {port} {why} -j RETURN")
    egress_isolated: list[PodInfo] = []
    for pod in pods:
        mine = [p for p in policies if selects(p, pod, "Egress")]
        if mine:
            egress_isolated.append(pod)
            lines += _egress_lines(pod, mine, pods, ns_labels, node_dns)
    for pod in pods:
        mine = [p for p in policies if selects(p, pod, "Ingress")]
        if mine:
            lines += _ingress_lines(pod, mine, pods, ns_labels)
    if gateway_only:
        for cidr in sorted(mesh_cidrs):
            why = _comment(f"{cidr}: another node's pods, inside the mesh")
            lines.append(f"-A {EXIT_CHAIN} -d {cidr} {why} -j RETURN")
        for pod in pods:
            if pod.gateway:
                why = f"{pod.ref}: a gateway may leave the mesh"
            elif pod in egress_isolated:
                why = f"{pod.ref}: its egress NetworkPolicy decides"
            else:
                continue
            lines.append(f"-A {EXIT_CHAIN} -s {pod.ip}/32 {_comment(why)} -j RETURN")
        lines += _reject(
            f"-A {EXIT_CHAIN}", "egressEnforcement GATEWAY_ONLY: only gateways leave the mesh"
        )
    lines += ["COMMIT", ""]
    return "\n".join(lines)


def apply(node_netns: str, text: str) -> None:
    """Install ``text`` (from ``render``) in the node namespace and hook its chains in.

    Bridged packets (pod to pod) reach iptables only with ``bridge-nf-call-iptables`` on;
    it is a per-namespace setting, set here in the node's namespace alone (the host's is
    never touched). Without br_netfilter in the kernel the exit is still enforced (it is
    routed, not bridged), but policies between pods are not: ``BridgeFilterMissing``.
    """
    prefix = netns.exec_prefix(node_netns)
    missing = False
    try:
        netns.sysctl(node_netns, "net.bridge.bridge-nf-call-iptables", "1")
    except netns.CommandError:
        missing = True
    netns.run([*prefix, "iptables-restore", "--noflush"], input_text=text)
    for hook, chain in HOOKS:
        check = [*prefix, "iptables", "-t", "filter", "-C", hook, "-j", chain]
        if subprocess.run(check, capture_output=True, check=False).returncode != 0:
            netns.run([*prefix, "iptables", "-t", "filter", "-I", hook, "1", "-j", chain])
    if missing:
        raise BridgeFilterMissing(
            "this kernel has no br_netfilter (net.bridge.bridge-nf-call-iptables): "
            "NetworkPolicy between pods is not enforced; the exit to the world is"
        )


class BridgeFilterMissing(RuntimeError):
    """The rules are installed, but bridged pod-to-pod traffic bypasses them."""
