"""Rules for Kubernetes' NetworkPolicy (``networking.k8s.io/v1``), single resource.

Rules of this module: the same contract as every rule module (report, never raise). The
checks are kube-apiserver's ``ValidateNetworkPolicy``, in its words where it has some, all
under code MG1089: label selectors well formed, ports in range or IANA names, ``endPort``
only after a numeric port and not below it, each peer exactly one of ipBlock or
pod/namespace selectors, ipBlock CIDRs valid with ``except`` strictly inside ``cidr``, at
most two policyTypes.
"""

from __future__ import annotations

import ipaddress

from meshgate.api.kinds import kubernetes as kube
from meshgate.validation.common import labels_problems
from meshgate.validation.findings import Findings, rule
from meshgate.validation.names import port_name_problem, port_problem

CODE = "MG1089"


def _selector(out: Findings, sel: kube.LabelSelector | None) -> None:
    if sel is None:
        return
    for problem in labels_problems(sel.match_labels):
        out.error(CODE, problem, "matchLabels")
    for i, req in enumerate(sel.match_expressions or []):
        at = out.at("matchExpressions", i)
        for problem in labels_problems({req.key: ""}):
            at.error(CODE, problem, "key")
        if req.operator in ("In", "NotIn") and not req.values:
            at.error(
                CODE,
                "Required value: must be specified when `operator` is 'In' or 'NotIn'",
                "values",
            )
        if req.operator in ("Exists", "DoesNotExist") and req.values:
            at.error(
                CODE,
                "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                "values",
            )
        for j, value in enumerate(req.values or []):
            for problem in labels_problems({"k": value}):
                at.error(CODE, problem, "values", j)


def _ports(out: Findings, ports: list[kube.NetworkPolicyPort] | None) -> None:
    for i, p in enumerate(ports or []):
        at = out.at(i)
        if isinstance(p.port, int):
            at.check(CODE, port_problem(p.port), "port")
        elif isinstance(p.port, str):
            at.check(CODE, port_name_problem(p.port), "port")
        if p.end_port is None:
            continue
        if not isinstance(p.port, int):
            at.error(CODE, "Forbidden: may not be specified when `port` is non-numeric", "endPort")
        elif p.end_port < p.port:
            at.error(
                CODE,
                f"Invalid value: {p.end_port}: must be greater than or equal to `port`",
                "endPort",
            )
        at.check(CODE, port_problem(p.end_port), "endPort")


def _network(value: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(value, strict=True)
    except ValueError:
        return None


def _ip_block(out: Findings, block: kube.IPBlock) -> None:
    cidr = _network(block.cidr)
    if not block.cidr:
        out.error(CODE, "Required value", "cidr")
    elif cidr is None:
        out.error(CODE, f"Invalid value: {block.cidr!r}: must be a valid CIDR (a.b.c.d/n)", "cidr")
    for i, text in enumerate(block.except_ or []):
        exc = _network(text)
        if exc is None:
            out.error(
                CODE, f"Invalid value: {text!r}: must be a valid CIDR (a.b.c.d/n)", "except", i
            )
        elif cidr is not None and (
            exc.version != cidr.version
            or not exc.subnet_of(cidr)  # type: ignore[arg-type]
            or exc.prefixlen <= cidr.prefixlen
        ):
            out.error(
                CODE, f"Invalid value: {text!r}: must be a strict subset of `cidr`", "except", i
            )


def _peers(out: Findings, peers: list[kube.NetworkPolicyPeer] | None) -> None:
    for i, peer in enumerate(peers or []):
        at = out.at(i)
        selectors = [s for s in (peer.pod_selector, peer.namespace_selector) if s is not None]
        if peer.ip_block is not None and selectors:
            at.error(CODE, "Forbidden: may not specify both ipBlock and another peer")
        elif peer.ip_block is None and not selectors:
            at.error(CODE, "Required value: must specify a peer")
        _selector(at.at("podSelector"), peer.pod_selector)
        _selector(at.at("namespaceSelector"), peer.namespace_selector)
        if peer.ip_block is not None:
            _ip_block(at.at("ipBlock"), peer.ip_block)


@rule(kube.NetworkPolicy)
def _network_policy(policy: kube.NetworkPolicy, findings: Findings) -> None:
    out = findings.at("spec")
    spec = policy.spec
    _selector(out.at("podSelector"), spec.pod_selector)
    for i, ing in enumerate(spec.ingress or []):
        _ports(out.at("ingress", i, "ports"), ing.ports)
        _peers(out.at("ingress", i, "from"), ing.from_)
    for i, eg in enumerate(spec.egress or []):
        _ports(out.at("egress", i, "ports"), eg.ports)
        _peers(out.at("egress", i, "to"), eg.to)
    if spec.policy_types is not None and len(spec.policy_types) > 2:
        out.error(CODE, "may not specify more than two policyTypes", "policyTypes")
