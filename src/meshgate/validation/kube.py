"""Rules for the Kubernetes, meshgate and Alibaba Cloud kinds (single resource).

Rules of this module: the same contract as every rule module (report, never raise);
these kinds are not Istio's, so the checks follow Kubernetes and the kinds' own docs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from meshgate.api.kinds import alibabacloud as ali
from meshgate.api.kinds import kubernetes as kube
from meshgate.api.kinds import meshgate_kinds as mg
from meshgate.validation.findings import Findings, rule
from meshgate.validation.names import (
    hostname_problem,
    label_name_problem,
    port_name_problem,
    port_problem,
)

GATEWAY_PROTOCOLS = frozenset({"HTTP", "HTTPS", "GRPC", "GRPC-WEB", "HTTP2", "MONGO", "TCP", "TLS"})


def _ports_unique(
    out: Findings, items: Sequence[Any], attr: str, code: str, what: str, *field: str
) -> None:
    counts = Counter(getattr(p, attr) for p in items if getattr(p, attr) is not None)
    for i, item in enumerate(items):
        value = getattr(item, attr)
        if value is not None and counts[value] > 1:
            out.error(code, f"duplicate {what} {value!r}", i, *field)


def _protocol(out: Findings, protocol: str | None, known: frozenset[str], *path: str | int) -> None:
    if protocol is not None and protocol.upper() not in known:
        names = ", ".join(sorted(known))
        out.error("MG1015", f"unknown protocol {protocol!r}; use one of {names}", *path)


# --- Kubernetes ------------------------------------------------------------------------


@rule(kube.Namespace)
def _namespace(ns: kube.Namespace, out: Findings) -> None:
    if ns.metadata.name:
        out.check("MG1030", label_name_problem(ns.metadata.name), "metadata", "name")


@rule(kube.Service)
def _service(svc: kube.Service, findings: Findings) -> None:
    out = findings.at("spec", "ports")
    ports = svc.spec.ports or []
    for i, p in enumerate(ports):
        out.check("MG1003", port_problem(p.port), i, "port")
        if isinstance(p.target_port, int):
            out.check("MG1003", port_problem(p.target_port), i, "targetPort")
        elif isinstance(p.target_port, str):
            out.check("MG1040", port_name_problem(p.target_port), i, "targetPort")
        if p.node_port is not None:
            out.check("MG1003", port_problem(p.node_port), i, "nodePort")
        if len(ports) > 1 and not p.name:
            out.error("MG1040", "each port needs a name when a Service has several", i, "name")
    _ports_unique(out, ports, "name", "MG1016", "port name", "name")


def _pod_spec(out: Findings, spec: kube.PodSpec) -> None:
    if not spec.containers:
        out.error("MG1039", "a pod needs at least one container", "containers")
    counts = Counter(c.name for c in spec.containers)
    for i, c in enumerate(spec.containers):
        if counts[c.name] > 1:
            out.error("MG1039", f"duplicate container name {c.name!r}", "containers", i, "name")
        for j, port in enumerate(c.ports or []):
            out.check(
                "MG1003",
                port_problem(port.container_port),
                "containers",
                i,
                "ports",
                j,
                "containerPort",
            )


@rule(kube.Pod)
def _pod(pod: kube.Pod, out: Findings) -> None:
    _pod_spec(out.at("spec"), pod.spec)


@rule(kube.Deployment)
def _deployment(dep: kube.Deployment, findings: Findings) -> None:
    out = findings.at("spec")
    selector = dep.spec.selector
    if not selector.match_labels and not selector.match_expressions:
        out.error("MG1011", "selector must not be empty", "selector")
    elif not selector.matches(dep.spec.template.labels):
        out.error(
            "MG1011", "selector does not match template labels", "template", "metadata", "labels"
        )
    _pod_spec(out.at("template", "spec"), dep.spec.template.spec)


# --- meshgate and Alibaba Cloud --------------------------------------------------------


@rule(mg.MeshConfig)
def _mesh_config(mc: mg.MeshConfig, out: Findings) -> None:
    if mc.metadata.name != mg.MESH_CONFIG_NAME:
        out.error(
            "MG1012", f"the MeshConfig must be named {mg.MESH_CONFIG_NAME!r}", "metadata", "name"
        )
    if mc.spec.root_namespace is not None:
        out.check("MG1030", label_name_problem(mc.spec.root_namespace), "spec", "rootNamespace")
    if mc.spec.trust_domain is not None:
        out.check(
            "MG1001", hostname_problem(mc.spec.trust_domain, allow_ip=False), "spec", "trustDomain"
        )


@rule(ali.IstioGateway)
def _istio_gateway(gw: ali.IstioGateway, out: Findings) -> None:
    if gw.namespace != "istio-system":
        out.warn(
            "MG1028",
            "an IstioGateway is expected in namespace istio-system",
            "metadata",
            "namespace",
        )
    ports = gw.spec.ports or []
    at = out.at("spec", "ports")
    for i, p in enumerate(ports):
        at.check("MG1003", port_problem(p.port), i, "port")
        if isinstance(p.target_port, int):
            at.check("MG1003", port_problem(p.target_port), i, "targetPort")
    _ports_unique(at, ports, "name", "MG1016", "port name", "name")
    _ports_unique(at, ports, "port", "MG1016", "port", "port")


@rule(ali.ASMEgressTrafficPolicy)
def _egress_policy(policy: ali.ASMEgressTrafficPolicy, findings: Findings) -> None:
    if policy.namespace != "istio-egress":
        findings.warn(
            "MG1027",
            "an ASMEgressTrafficPolicy is expected in namespace istio-egress",
            "metadata",
            "namespace",
        )
    out = findings.at("spec")
    if policy.spec.by_egress_gateway.port is not None:
        out.check(
            "MG1003", port_problem(policy.spec.by_egress_gateway.port), "byEgressGateway", "port"
        )
    for i, egress_rule in enumerate(policy.spec.egress_rules):
        for j, src in enumerate(egress_rule.from_):
            out.check(
                "MG1030",
                label_name_problem(src.namespace),
                "egressRules",
                i,
                "from",
                j,
                "namespace",
            )
        for j, to in enumerate(egress_rule.to):
            at = out.at("egressRules", i, "to", j)
            for k, host in enumerate(to.hosts):
                if host == "*":
                    at.error("MG1002", '"*" alone is not a valid host', "hosts", k)
                else:
                    at.check("MG1001", hostname_problem(host), "hosts", k)
            at.check("MG1003", port_problem(to.port.number), "port", "number")
            _protocol(at, to.port.protocol, GATEWAY_PROTOCOLS, "port", "protocol")
            if to.by_egress_gateway is not None and to.by_egress_gateway.port is not None:
                at.check(
                    "MG1003", port_problem(to.by_egress_gateway.port), "byEgressGateway", "port"
                )
            if to.https_upgrade is not None and to.https_upgrade.port is not None:
                at.check("MG1003", port_problem(to.https_upgrade.port), "httpsUpgrade", "port")
