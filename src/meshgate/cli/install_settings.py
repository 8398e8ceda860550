"""What ``meshgate install`` is asked to change: istioctl's ``--set PATH=VALUE`` and
IstioOperator files, read into meshgate's MeshConfig and egress gateway. No I/O here.

Rules of this module:
- A setting is a path into an IstioOperator ``spec`` and a value. ``--set`` values are
  read as istioctl reads them (an integer, else a float, else ``true``/``false``, else the
  text with ``\\,`` for a comma); an IstioOperator file gives YAML values, flattened to one
  setting per leaf (lists stay whole, except ``components.egressGateways``, one entry per
  index). Precedence is istioctl's: a profile, then the files, then ``--set``.
- Where a path leads:
  ``meshConfig.*`` (and ``values.meshConfig.*``) -> the MeshConfig field of that name,
  nested fields too, list items by ``[N]``;
  ``values.global.proxy.{include,exclude}IPRanges`` and ``{include,exclude}OutboundPorts``
  -> the MeshConfig fields of those names (values as written there, comma-separated);
  ``components.egressGateways[N|name:NAME].enabled`` (with ``.name``, which must be
  istio-egressgateway, the default for entry 0) -> whether the mesh has the
  ``IstioGateway`` istio-system/istio-egressgateway the seed's own walkthrough applies;
  ``profile`` -> default, minimal and empty: no egress gateway, no access log; demo: the
  egress gateway and ``accessLogFile: /dev/stdout`` (Istio's demo profile).
- A path Istio knows but meshgate has nothing for is refused "not supported", naming it;
  a path Istio does not know is refused "unknown path", naming it. Settings that state
  what meshgate always is (``components.pilot.enabled=true``, an ingress gateway or CNI
  ``enabled=false``...) are accepted and said to be so (``notes``). Nothing is accepted
  silently, and every problem is reported, each naming where it came from.
- Without a profile only the named paths change; istioctl would reset everything else to
  its profile, which here would undo MeshConfig fields set by ``apply``.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

from meshgate.api.annotations import (
    EXCLUDE_OUTBOUND_PORTS,
    EXCLUDE_OUTBOUND_RANGES,
    INCLUDE_OUTBOUND_PORTS,
    INCLUDE_OUTBOUND_RANGES,
    check_outbound,
)

Obj = dict[str, Any]

EGRESS_NAME = "istio-egressgateway"
EGRESS_NAMESPACE = "istio-system"
OPERATOR_API = "install.istio.io/v1alpha1"
# profile -> (egress gateway, meshConfig.accessLogFile): what Istio's profiles set among
# what meshgate has (manifests/profiles; demo's access log comes from its Helm values).
PROFILES: dict[str, tuple[bool, str | None]] = {
    "default": (False, None),
    "minimal": (False, None),
    "empty": (False, None),
    "demo": (True, "/dev/stdout"),
}
OTHER_PROFILES = ("ambient", "openshift", "openshift-ambient", "preview", "remote", "stable")


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Istio's MeshConfig fields (istio/api mesh/v1alpha1/config.proto, JSON names).
ISTIO_MESH_FIELDS = _names(
    """proxyListenPort proxyInboundListenPort proxyHttpPort connectTimeout hboneIdleTimeout
    protocolDetectionTimeout tcpKeepalive ingressClass ingressService ingressControllerMode
    ingressSelector enableTracing accessLogFile accessLogFormat accessLogEncoding
    enableEnvoyAccessLogService disableEnvoyListenerLog defaultConfig outboundTrafficPolicy
    inboundTrafficPolicy configSources enableAutoMtls trustDomain trustDomainAliases
    caCertificates defaultServiceExportTo defaultVirtualServiceExportTo
    defaultDestinationRuleExportTo rootNamespace localityLbSetting zoneAwareLbSetting
    dnsRefreshRate h2UpgradePolicy inboundClusterStatName outboundClusterStatName certificates
    serviceSettings serviceScopeConfigs enablePrometheusMerge verifyCertificateAtClient ca
    extensionProviders defaultProviders discoverySelectors pathNormalization
    defaultHttpRetryPolicy meshMTLS tlsDefaults defaultTrafficPolicy
    serviceEntryVisibility"""
)
# The IstioOperator spec's own fields, and those of its values (operator/pkg/apis).
OPERATOR_FIELDS = _names(
    """profile installPackagePath hub tag namespace revision compatibilityVersion meshConfig
    components values unvalidatedValues"""
)
COMPONENTS = _names("base pilot cni ztunnel istiodRemote ingressGateways egressGateways")
COMPONENT_FIELDS = _names("enabled namespace hub tag k8s name label")
VALUES_FIELDS = _names(
    """cni gateways global pilot ztunnel telemetry sidecarInjectorWebhook istio_cni revision
    ownerName meshConfig base istiodRemote revisionTags defaultRevision profile
    compatibilityVersion experimental gatewayClasses"""
)
GLOBAL_FIELDS = _names(
    """arch certSigners configValidation defaultNodeSelector defaultPodDisruptionBudget
    defaultResources defaultTolerations hub imagePullPolicy imagePullSecrets istioNamespace
    logAsJson logging meshID meshNetworks multiCluster network podDNSSearchNamespaces
    omitSidecarInjectorConfigMap operatorManageWebhooks priorityClassName proxy proxy_init
    sds tag variant tracer remotePilotAddress istiod pilotCertProvider jwtPolicy sts revision
    mountMtlsCerts caAddress externalIstiod configCluster caName platform ipFamilies
    ipFamilyPolicy waypoint trustBundleName nativeNftables networkPolicy resourceScope
    agentgateway enableReaderRBAC readerServiceAccount"""
)
PROXY_FIELDS = _names(
    """autoInject clusterDomain componentLogLevel enableCoreDump excludeInboundPorts
    excludeIPRanges image includeIPRanges logLevel outlierLogPath privileged
    readinessInitialDelaySeconds readinessPeriodSeconds readinessFailureThreshold
    seccompProfile startupProbe statusPort resources tracer excludeOutboundPorts lifecycle
    holdApplicationUntilProxyStarts includeInboundPorts includeOutboundPorts"""
)
PROXY_SYNTAX = {  # values.global.proxy field -> the pod annotation with its syntax
    "includeIPRanges": INCLUDE_OUTBOUND_RANGES,
    "excludeIPRanges": EXCLUDE_OUTBOUND_RANGES,
    "includeOutboundPorts": INCLUDE_OUTBOUND_PORTS,
    "excludeOutboundPorts": EXCLUDE_OUTBOUND_PORTS,
}
PROXY_TO_MESH = (
    "includeIPRanges",
    "excludeIPRanges",
    "includeOutboundPorts",
    "excludeOutboundPorts",
)
# Components meshgate always has (True) or never has (False): a setting that agrees is
# accepted with a note, one that does not is not supported.
FIXED_COMPONENTS = {
    "base": True,
    "pilot": True,
    "cni": False,
    "ztunnel": False,
    "istiodRemote": False,
    "ingressGateways": False,
}


@dataclass(frozen=True)
class Setting:
    path: str  # as written, without the IstioOperator's leading "spec."
    value: Any
    source: str  # "--set" or "FILE: spec.PATH"


@dataclass
class Plan:
    """What the settings ask for: MeshConfig fields (wire names, None removes) and whether
    the egress gateway should exist (None: left as it is)."""

    mesh: list[tuple[tuple[str | int, ...], Any, Setting]] = field(default_factory=list)
    egress: bool | None = None
    egress_source: Setting | None = None
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def parse_value(text: str) -> Any:
    """istioctl's reading of a --set value (operator/pkg/values parseValue)."""
    if re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    if re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", text):
        return float(text)
    if text in ("t", "T", "TRUE", "true", "True"):
        return True
    if text in ("f", "F", "FALSE", "false", "False"):
        return False
    return text.replace("\\,", ",")


def parse_set(arg: str) -> Setting:
    """``PATH=VALUE`` from ``--set``; ValueError when there is no ``=`` or no path."""
    path, eq, value = arg.partition("=")
    if not eq or not path.strip():
        raise ValueError(f"--set {arg!r}: expected PATH=VALUE")
    path = path.strip().removeprefix("spec.")
    return Setting(path, parse_value(value.strip()), "--set")


_NAME = re.compile(r"[^.\[\]]+")


def split_path(path: str) -> list[str]:
    """``a.b[0].c`` -> ``["a", "b", "[0]", "c"]``; ValueError for a malformed path."""
    out: list[str] = []
    pos = 0
    while pos < len(path):
        if path[pos] == "[" and out:
            end = path.find("]", pos)
            if end < 0:
                raise ValueError(f"malformed path {path!r}")
            out.append(path[pos : end + 1])
            pos = end + 1
            continue
        if out:
            if path[pos] != ".":
                raise ValueError(f"malformed path {path!r}")
            pos += 1
        m = _NAME.match(path, pos)
        if m is None:
            raise ValueError(f"malformed path {path!r}")
        out.append(m.group())
        pos = m.end()
    if not out:
        raise ValueError(f"malformed path {path!r}")
    return out


def operator_settings(doc: Any, filename: str) -> tuple[list[Setting], list[str]]:
    """The settings of one IstioOperator document, and the problems that stop it, each
    naming ``filename`` and the field."""
    if not isinstance(doc, dict):
        return [], [f"{filename}: expected an IstioOperator object, got {type(doc).__name__}"]
    errors = []
    if doc.get("apiVersion") != OPERATOR_API:
        errors.append(
            f"{filename}: apiVersion: expected {OPERATOR_API}, got {doc.get('apiVersion')!r}"
        )
    if doc.get("kind") != "IstioOperator":
        errors.append(f"{filename}: kind: expected IstioOperator, got {doc.get('kind')!r}")
    for key in doc:
        if key not in ("apiVersion", "kind", "metadata", "spec"):
            errors.append(f"{filename}: {key}: unknown field")
    spec = doc.get("spec") or {}
    if not isinstance(spec, dict):
        errors.append(f"{filename}: spec: expected a mapping")
        return [], errors
    settings: list[Setting] = []

    def walk(value: Any, path: str) -> None:
        gateways = path in ("components.egressGateways", "components.ingressGateways")
        if isinstance(value, dict) and value and not path.startswith("meshConfig.defaultConfig"):
            for k, v in value.items():
                walk(v, f"{path}.{k}" if path else str(k))
        elif gateways and isinstance(value, list):
            for i, item in enumerate(value):
                walk(item, f"{path}[{i}]")
        else:
            settings.append(Setting(path, value, f"{filename}: spec.{path}"))

    walk(spec, "")
    return settings, errors


def _entry(segments: list[str], setting: Setting, entries: dict[str, Obj]) -> str | None:
    """Record one ``components.egressGateways[...]`` field; an error text, or None."""
    if len(segments) < 3 or not segments[2].startswith("["):
        return "not supported: components.egressGateways needs an entry ([0] or [name:NAME])"
    selector = segments[2][1:-1]
    if selector.startswith("name:"):
        key, name = selector, selector[5:]
    elif selector.isdigit():
        key, name = selector, ""
    else:
        return f"malformed path {setting.path!r}"
    entry = entries.setdefault(key, {"name": name, "sources": []})
    entry["sources"].append(setting)
    rest = segments[3:]
    if len(rest) != 1 or rest[0] not in COMPONENT_FIELDS:
        if rest and rest[0] in COMPONENT_FIELDS:
            return f"not supported: {setting.path}"
        return f"unknown path: {setting.path}"
    leaf = rest[0]
    if leaf == "enabled":
        if not isinstance(setting.value, bool):
            return f"{setting.path}: {setting.value!r} is not true or false"
        entry["enabled"] = setting.value
    elif leaf == "name":
        entry["name"] = str(setting.value)
    elif leaf == "namespace" and setting.value == EGRESS_NAMESPACE:
        pass
    else:
        return (
            f"not supported: {setting.path} (meshgate's egress gateway is "
            f"{EGRESS_NAMESPACE}/{EGRESS_NAME}, as the seed has it)"
        )
    return None


def _mesh_path(segments: list[str]) -> tuple[str | int, ...]:
    out: list[str | int] = []
    for s in segments:
        if s.startswith("["):
            index = s[1:-1]
            if not index.isdigit():
                raise ValueError
            out.append(int(index))
        else:
            out.append(s)
    return tuple(out)


def plan(settings: list[Setting], mesh_fields: frozenset[str]) -> Plan:
    """Where each setting leads (``mesh_fields``: meshgate's MeshConfig field names)."""
    result = Plan()
    entries: dict[str, Obj] = {}
    profiles = [s for s in settings if s.path == "profile"]
    if profiles:
        chosen = profiles[-1]
        name = str(chosen.value)
        if name in PROFILES:
            egress, access_log = PROFILES[name]
            result.egress, result.egress_source = egress, chosen
            result.mesh.append((("accessLogFile",), access_log, chosen))
        elif name in OTHER_PROFILES:
            result.errors.append(f"{chosen.source}: not supported: profile {name}")
        else:
            result.errors.append(
                f"{chosen.source}: unknown profile {name!r} (one of {', '.join(PROFILES)})"
            )
    for s in settings:
        if s.path == "profile":
            continue
        try:
            segments = split_path(s.path)
        except ValueError as exc:
            result.errors.append(f"{s.source}: {exc}")
            continue
        problem = _route(s, segments, mesh_fields, result, entries)
        if problem:
            result.errors.append(f"{s.source}: {problem}")
    for key, entry in entries.items():
        name = entry["name"] or (EGRESS_NAME if key == "0" else "")
        where = entry["sources"][0]
        if key.startswith("name:") and entry["name"] != key[5:]:
            result.errors.append(
                f"{where.source}: {where.path}: the entry is {key[5:]!r}, not {entry['name']!r}"
            )
        elif name != EGRESS_NAME:
            result.errors.append(
                f"{where.source}: not supported: egress gateway {name or '(no name)'!r}"
                f" (only {EGRESS_NAME}, in {EGRESS_NAMESPACE})"
            )
        elif "enabled" in entry:
            result.egress = entry["enabled"]
            result.egress_source = next(s for s in entry["sources"] if s.path.endswith("enabled"))
    return result


def _route(
    s: Setting,
    segments: list[str],
    mesh_fields: frozenset[str],
    result: Plan,
    entries: dict[str, Obj],
) -> str | None:
    head = segments[0]
    if head == "values" and len(segments) > 1 and segments[1] == "meshConfig":
        segments, head = segments[1:], "meshConfig"
    if head == "meshConfig":
        if len(segments) == 1:
            if isinstance(s.value, dict):
                return "not supported: meshConfig as a whole; set its fields"
            return f"unknown path: {s.path}"
        name = segments[1]
        if name in mesh_fields:
            try:
                result.mesh.append((_mesh_path(segments[1:]), copy.deepcopy(s.value), s))
            except ValueError:
                return f"malformed path {s.path!r}"
            return None
        if name in ISTIO_MESH_FIELDS:
            return f"not supported: meshConfig.{name}"
        return f"unknown path: {s.path}"
    if head == "values":
        if len(segments) == 1:
            return f"unknown path: {s.path}"
        if segments[1] not in VALUES_FIELDS:
            return f"unknown path: {s.path}"
        if segments[1] != "global" or len(segments) == 2:
            return f"not supported: values.{segments[1]}"
        if segments[2] not in GLOBAL_FIELDS:
            return f"unknown path: {s.path}"
        if segments[2] != "proxy" or len(segments) == 3:
            return f"not supported: values.global.{segments[2]}"
        leaf = segments[3]
        if leaf not in PROXY_FIELDS:
            return f"unknown path: {s.path}"
        if leaf not in PROXY_TO_MESH or len(segments) > 4:
            return f"not supported: values.global.proxy.{leaf}"
        value = "" if s.value is None else str(s.value)
        try:
            check_outbound(PROXY_SYNTAX[leaf], value, s.path)
        except ValueError as exc:
            return str(exc)
        result.mesh.append(((leaf,), value, s))
        return None
    if head == "components":
        if len(segments) == 1 or segments[1] not in COMPONENTS:
            return f"unknown path: {s.path}"
        component = segments[1]
        if component == "egressGateways":
            return _entry(segments, s, entries)
        if (
            component in FIXED_COMPONENTS
            and segments[-1] == "enabled"
            and (len(segments) == 3 or (component == "ingressGateways" and len(segments) == 4))
        ):
            fixed = FIXED_COMPONENTS[component]
            if s.value is fixed:
                what = "always runs" if fixed else "does not exist"
                result.notes.append(
                    f"{s.source}: {s.path}={str(fixed).lower()}: in meshgate it {what}"
                )
                return None
        return f"not supported: components.{component}"
    if head in OPERATOR_FIELDS:
        return f"not supported: {head}"
    return f"unknown path: {s.path}"


def apply_mesh(spec: Obj, changes: list[tuple[tuple[str | int, ...], Any, Setting]]) -> Obj:
    """A copy of the MeshConfig ``spec`` (wire dict) with the changes made in order (None
    removes a field); IndexError/TypeError for a list index or a step that cannot be."""
    out = copy.deepcopy(spec)
    for path, value, _ in changes:
        node: Any = out
        for i, step in enumerate(path):
            last = i == len(path) - 1
            nxt = path[i + 1] if not last else None
            if isinstance(step, int):
                if not isinstance(node, list):
                    raise TypeError("not a list")
                while len(node) <= step:  # istioctl appends past the end
                    node.append({} if not last and isinstance(nxt, str) else None)
                if last:
                    node[step] = value
                else:
                    if node[step] is None:
                        node[step] = [] if isinstance(nxt, int) else {}
                    node = node[step]
                continue
            if not isinstance(node, dict):
                raise TypeError("not a mapping")
            if last:
                if value is None:
                    node.pop(step, None)
                else:
                    node[step] = value
            else:
                if node.get(step) is None:
                    node[step] = [] if isinstance(nxt, int) else {}
                elif not isinstance(node[step], (dict, list)):
                    raise TypeError(f"{step} holds a value, not fields or items")
                node = node[step]
    return out


def describe(value: Any) -> str:
    """A value as a change line shows it."""
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return repr(value) if value == "" or value != value.strip() else value
    return str(value)
