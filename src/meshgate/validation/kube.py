"""Rules for the Kubernetes, meshgate and Alibaba Cloud kinds (single resource).

Rules of this module: the same contract as every rule module (report, never raise);
these kinds are not Istio's, so the checks follow Kubernetes and the kinds' own docs.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

from meshgate.api.annotations import (
    EXCLUDE_INBOUND,
    EXCLUDE_OUTBOUND_PORTS,
    EXCLUDE_OUTBOUND_RANGES,
    INCLUDE_INBOUND,
    INCLUDE_OUTBOUND_PORTS,
    INCLUDE_OUTBOUND_RANGES,
    OUTBOUND_ANNOTATIONS,
    XDS_MODE,
    check_outbound,
    inbound_ports,
    xds_mode,
)
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
# Kubernetes' IsConfigMapKey: the key becomes a file name in a volume.
_CONFIG_KEY = re.compile(r"[-._a-zA-Z0-9]+")
_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


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


def _not_negative(out: Findings, value: int | None, *path: str) -> None:
    if value is not None and value < 0:
        out.error("MG1083", f"Invalid value: {value}: must be greater than or equal to 0", *path)


def base64_problem(value: str) -> str | None:
    """Why ``value`` is not standard padded base64, in the API server's words: Go's
    decoder, which skips CR and LF and names the offset of the first bad byte."""
    n, si = len(value), 0
    while si < n:
        for j in range(4):
            while si < n and value[si] in "\r\n":
                si += 1
            if si == n:
                return None if j == 0 else f"illegal base64 data at input byte {si - j}"
            char = value[si]
            si += 1
            if char in _ALPHABET:
                continue
            if char != "=" or j < 2:
                return f"illegal base64 data at input byte {si - 1}"
            if j == 2:  # "xx=" needs a second "="
                while si < n and value[si] in "\r\n":
                    si += 1
                if si == n:
                    return f"illegal base64 data at input byte {n}"
                if value[si] != "=":
                    return f"illegal base64 data at input byte {si - 1}"
                si += 1
            while si < n and value[si] in "\r\n":
                si += 1
            return None if si == n else f"illegal base64 data at input byte {si}"
    return None


def _config_data(out: Findings, data: dict[str, str] | None, field: str, encoded: bool) -> None:
    for key, value in (data or {}).items():
        if len(key) > 253 or not _CONFIG_KEY.fullmatch(key) or key in (".", ".."):
            out.error(
                "MG1084",
                f"Invalid value: {key!r}: a valid config key must consist of alphanumeric "
                "characters, '-', '_' or '.' (at most 253, not '.' or '..')",
                field,
                key,
            )
        if encoded:
            out.check("MG1084", base64_problem(value), field, key)


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
    # The API server refuses two ports with the same number and protocol (the protocol
    # defaults to TCP), whatever their names: "spec.ports[1]: Duplicate value".
    seen: set[tuple[int, str]] = set()
    for i, p in enumerate(ports):
        port = (p.port, p.protocol or "TCP")
        if port in seen:
            out.error("MG1085", f"Duplicate value: port {port[0]}/{port[1]}", i)
        seen.add(port)


@rule(kube.Secret)
def _secret(secret: kube.Secret, out: Findings) -> None:
    _config_data(out, secret.data, "data", encoded=True)
    _config_data(out, secret.string_data, "stringData", encoded=False)


@rule(kube.ConfigMap)
def _config_map(cm: kube.ConfigMap, out: Findings) -> None:
    _config_data(out, cm.data, "data", encoded=False)
    _config_data(out, cm.binary_data, "binaryData", encoded=True)
    for key in sorted(set(cm.data or {}) & set(cm.binary_data or {})):
        out.error("MG1084", f"Invalid value: {key!r}: duplicate of key in data", "binaryData", key)


def _pod_spec(out: Findings, spec: kube.PodSpec) -> None:
    _not_negative(out, spec.termination_grace_period_seconds, "terminationGracePeriodSeconds")
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
    _volumes(out, spec)


def _volumes(out: Findings, spec: kube.PodSpec) -> None:
    """kube-apiserver's volume rules: unique names; each mount names a volume of the pod, at
    an absolute path used once per container; a subPath stays inside its volume."""
    names: set[str] = set()
    for i, v in enumerate(spec.volumes or []):
        if v.name in names:
            out.error("MG1086", f"Duplicate value: {v.name!r}", "volumes", i, "name")
        names.add(v.name)
    for i, c in enumerate(spec.containers):
        paths: set[str] = set()
        for j, m in enumerate(c.volume_mounts or []):
            at = out.at("containers", i, "volumeMounts", j)
            if m.name not in names:
                at.error("MG1086", f"Not found: {m.name!r} (no volume of the pod has it)", "name")
            if not m.mount_path.startswith("/"):
                at.error(
                    "MG1086", f"Invalid value: {m.mount_path!r}: must be absolute", "mountPath"
                )
            elif m.mount_path.rstrip("/") in paths:
                at.error("MG1086", f"Invalid value: {m.mount_path!r}: must be unique", "mountPath")
            paths.add(m.mount_path.rstrip("/"))
            sub = m.sub_path or ""
            if sub.startswith("/") or ".." in sub.split("/"):
                at.error("MG1086", f"Invalid value: {sub!r}: must not leave the volume", "subPath")


def _capture_annotations(out: Findings, annotations: dict[str, str] | None) -> None:
    """Istio's capture annotations: inbound ``*`` or ports; outbound CIDRs (include: or
    ``*``) and ports."""
    for key in (INCLUDE_INBOUND, EXCLUDE_INBOUND):
        value = (annotations or {}).get(key)
        if value is None or (key == INCLUDE_INBOUND and value.strip() == "*"):
            continue
        try:
            inbound_ports({key: value})
        except ValueError as exc:
            out.error("MG1088", str(exc), "annotations", key)
    try:
        xds_mode(annotations or {})
    except ValueError as exc:
        out.error("MG1088", str(exc), "annotations", XDS_MODE)
    for key in OUTBOUND_ANNOTATIONS:
        value = (annotations or {}).get(key)
        if value is not None:
            try:
                check_outbound(key, value, f"annotation {key}")
            except ValueError as exc:
                out.error("MG1088", str(exc), "annotations", key)


@rule(kube.Pod)
def _pod(pod: kube.Pod, out: Findings) -> None:
    _capture_annotations(out.at("metadata"), pod.metadata.annotations)
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
    _not_negative(out, dep.spec.replicas, "replicas")
    _not_negative(out, dep.spec.min_ready_seconds, "minReadySeconds")
    _not_negative(out, dep.spec.revision_history_limit, "revisionHistoryLimit")
    _not_negative(out, dep.spec.progress_deadline_seconds, "progressDeadlineSeconds")
    deadline, ready = dep.spec.progress_deadline_seconds, dep.spec.min_ready_seconds or 0
    if deadline is not None and deadline >= 0 and deadline <= ready:
        out.error(
            "MG1083",
            f"Invalid value: {deadline}: must be greater than minReadySeconds",
            "progressDeadlineSeconds",
        )
    template = dep.spec.template
    _capture_annotations(
        out.at("template", "metadata"), template.metadata.annotations if template.metadata else None
    )
    _pod_spec(out.at("template", "spec"), template.spec)


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
    log_format = mc.spec.access_log_format
    if log_format and mc.spec.effective_access_log_encoding == "JSON":
        out.check("MG1095", _json_log_format_problem(log_format), "spec", "accessLogFormat")
    outbound = (
        ("includeIPRanges", INCLUDE_OUTBOUND_RANGES, mc.spec.include_ip_ranges),
        ("excludeIPRanges", EXCLUDE_OUTBOUND_RANGES, mc.spec.exclude_ip_ranges),
        ("includeOutboundPorts", INCLUDE_OUTBOUND_PORTS, mc.spec.include_outbound_ports),
        ("excludeOutboundPorts", EXCLUDE_OUTBOUND_PORTS, mc.spec.exclude_outbound_ports),
    )
    for field, syntax, value in outbound:
        if value is not None:
            try:
                check_outbound(syntax, value, field)
            except ValueError as exc:
                out.error("MG1088", str(exc), "spec", field)


_JSON_TYPES = {list: "an array", str: "a string", int: "a number", float: "a number"}


def _json_log_format_problem(text: str) -> str | None:
    """A JSON ``accessLogFormat`` is Envoy's format dictionary (key -> operators): Istio
    reads it into a Struct, and silently logs the default line when it is not one."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        return f"with accessLogEncoding JSON it must be a JSON object: {exc}"
    if not isinstance(data, dict):
        kind = _JSON_TYPES.get(type(data), "true, false or null")
        return f"with accessLogEncoding JSON it must be a JSON object, not {kind}"
    return None


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
    _gateway_volumes(gw.spec, out)


def _gateway_volumes(spec: ali.IstioGatewaySpec, out: Findings) -> None:
    """secretVolumes/configVolumes become the gateway pod's volumes and mounts (MG1086)."""
    names: set[str] = set()
    lists: list[tuple[str, str, ali.SecretVolume | ali.ConfigVolume, str | None]] = [
        ("secretVolumes", "secretName", v, v.secret_name) for v in spec.secret_volumes or []
    ]
    lists += [
        ("configVolumes", "configMapName", v, v.config_map_name) for v in spec.config_volumes or []
    ]
    counts: dict[str, int] = {}
    for field, source_field, vol, source in lists:
        i = counts[field] = counts.get(field, -1) + 1
        at = out.at("spec", field, i)
        if not vol.name:
            at.error("MG1086", "Required value", "name")
        elif vol.name in names:
            at.error("MG1086", f"Duplicate value: {vol.name!r}", "name")
        names.add(vol.name or "")
        if not source:
            at.error("MG1086", "Required value", source_field)
        path = vol.mount_path
        if field == "secretVolumes" and not path:
            at.error("MG1086", "Required value", "mountPath")
        elif path and (not path.startswith("/") or ".." in path.split("/")):
            at.error("MG1086", f"Invalid value: {path!r}: must be absolute", "mountPath")


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
