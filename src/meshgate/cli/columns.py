"""The table columns ``get`` prints for each kind, from the canonical wire dict.

Rules: NAME comes first and AGE last, as in kubectl; in between, the kind's own columns:
Kubernetes' built-in printers for core kinds, the CRDs' ``additionalPrinterColumns``
for Istio and ASM kinds (an array cell prints as compact JSON, ``["aliyun.com"]``, as
kubectl prints a JSONPath that yields an array). A value that is absent prints
``<none>``, unless the column shows a setting with a default (MeshConfig's MODE), which
prints the value in force. Kinds without an entry get NAME and AGE. ``-o wide`` adds the
columns marked wide. Columns read dicts only, so they work the same over the store and the HTTP API.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from meshgate.cli.tabular import age

Obj = dict[str, Any]
NONE = "<none>"
NODE_NAME = "meshgate-node"  # the NODE of every placed pod: the mesh has one node


@dataclass(frozen=True)
class Column:
    header: str
    value: Callable[[Obj], str]
    wide: bool = False


def dig(obj: Any, path: str) -> Any:
    """``dig(o, "spec.outboundTrafficPolicy.mode")``: None when any step is missing."""
    for part in path.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def cell(value: Any) -> str:
    if value is None:
        return NONE
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def path(header: str, jsonpath: str, wide: bool = False) -> Column:
    return Column(header, lambda o: cell(dig(o, jsonpath)), wide)


def _join(values: list[str]) -> str:
    return ",".join(values) if values else NONE


def _pod_ready(o: Obj) -> str:
    statuses = dig(o, "status.containerStatuses") or []
    # The runtime reports the injected sidecar too, which the pod's spec does not list.
    total = max(len(dig(o, "spec.containers") or []), len(statuses))
    ready = sum(1 for s in statuses if s.get("ready"))
    return f"{ready}/{total}"


def _pod_status(o: Obj) -> str:
    """kubectl's STATUS: the phase (or the pod's reason), overridden by the first container
    with a waiting or terminated reason; ``Completed`` while a container still runs is
    ``NotReady`` (``Running`` if the pod is Ready). The injected proxy counts after the app
    containers, as an injected sidecar is listed last in Kubernetes."""
    if dig(o, "metadata.deletionTimestamp"):
        return "Terminating"
    reason = str(dig(o, "status.reason") or dig(o, "status.phase") or "Pending")
    statuses = list(dig(o, "status.containerStatuses") or [])
    statuses.sort(key=lambda s: s.get("name") == "istio-proxy")
    running = False
    for s in reversed(statuses):
        terminated = dig(s, "state.terminated")
        if dig(s, "state.waiting.reason"):
            reason = str(dig(s, "state.waiting.reason"))
        elif isinstance(terminated, dict) and terminated.get("reason"):
            reason = str(terminated["reason"])
        elif isinstance(terminated, dict):
            signal = terminated.get("signal")
            code = terminated.get("exitCode", 0)
            reason = f"Signal:{signal}" if signal else f"ExitCode:{code}"
        elif s.get("ready") and dig(s, "state.running") is not None:
            running = True
    if reason == "Completed" and running:
        ready = [c for c in dig(o, "status.conditions") or [] if c.get("type") == "Ready"]
        reason = "Running" if ready and ready[0].get("status") == "True" else "NotReady"
    return reason


def _pod_restarts(o: Obj) -> str:
    return str(sum(int(s.get("restartCount", 0)) for s in dig(o, "status.containerStatuses") or []))


def _svc_ports(o: Obj) -> str:
    ports = dig(o, "spec.ports") or []
    shown = []
    for p in ports:
        text = f"{p.get('port')}"
        if p.get("nodePort"):
            text += f":{p['nodePort']}"
        shown.append(f"{text}/{p.get('protocol', 'TCP')}")
    return _join(shown)


def _svc_external(o: Obj) -> str:
    if dig(o, "spec.type") == "ExternalName":  # kubectl prints the name it aliases
        return str(dig(o, "spec.externalName") or "<none>")
    ips = [i.get("ip") or i.get("hostname") for i in dig(o, "status.loadBalancer.ingress") or []]
    ips += dig(o, "spec.externalIPs") or []
    if not ips and dig(o, "spec.type") == "LoadBalancer":
        return "<pending>"
    return _join([str(i) for i in ips if i])


def _selector(o: Obj, jsonpath: str) -> str:
    labels = dig(o, jsonpath) or {}
    return _join([f"{k}={v}" for k, v in sorted(labels.items())])


def _deploy_ready(o: Obj) -> str:
    return f"{dig(o, 'status.readyReplicas') or 0}/{dig(o, 'spec.replicas') or 0}"


def _containers(o: Obj, attr: str) -> str:
    return _join([str(c.get(attr, "")) for c in dig(o, "spec.template.spec.containers") or []])


def _mesh_mode(o: Obj) -> str:
    # The mode the mesh runs with: an unset mode is ALLOW_ANY, as in Istio's meshConfig
    # (MeshConfig.effective_outbound_mode says the same; the model is not imported here).
    return str(dig(o, "spec.outboundTrafficPolicy.mode") or "ALLOW_ANY")


def _egress_enforcement(o: Obj) -> str:
    # As for MODE: the setting in force, OFF when none is set.
    return str(dig(o, "spec.egressEnforcement") or "OFF")


def _pod_selector(o: Obj) -> str:
    """kubectl's POD-SELECTOR: matchLabels then expressions, ``<none>`` for ``{}``."""
    sel = dig(o, "spec.podSelector") or {}
    parts = [f"{k}={v}" for k, v in sorted((sel.get("matchLabels") or {}).items())]
    for req in sel.get("matchExpressions") or []:
        op, key, values = req.get("operator"), req.get("key"), ",".join(req.get("values") or [])
        shown = {"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})"}
        parts.append(shown.get(op) or (key if op == "Exists" else f"!{key}"))
    return ",".join(parts) or "<none>"


def _pod_node(o: Obj) -> str:
    # Every pod of a mesh runs behind its one node namespace: a pod the runtime has placed
    # (it reports a hostIP) is on that node, as kubectl shows a scheduled pod's node.
    if dig(o, "spec.nodeName"):
        return str(dig(o, "spec.nodeName"))
    return NODE_NAME if dig(o, "status.hostIP") else NONE


def _node_status(o: Obj) -> str:
    """kubectl's: the Ready condition (Ready, NotReady, Unknown), and SchedulingDisabled."""
    ready = [c for c in dig(o, "status.conditions") or [] if c.get("type") == "Ready"]
    state = (
        {"True": "Ready", "False": "NotReady"}.get(ready[0].get("status"), "Unknown")
        if ready
        else "Unknown"
    )
    return state + (",SchedulingDisabled" if dig(o, "spec.unschedulable") else "")


def _node_roles(o: Obj) -> str:
    """kubectl's: the names of the node-role.kubernetes.io/<role> labels."""
    labels = dig(o, "metadata.labels") or {}
    prefix = "node-role.kubernetes.io/"
    roles = sorted(k.removeprefix(prefix) for k in labels if k.startswith(prefix))
    return ",".join(roles) or NONE


def _node_ip(o: Obj) -> str:
    found = [
        a.get("address") for a in dig(o, "status.addresses") or [] if a.get("type") == "InternalIP"
    ]
    return str(found[0]) if found else NONE


def _endpoints(o: Obj) -> str:
    """kubectl's ENDPOINTS: ``ip:port`` per ready address and port, three at most."""
    subsets = o.get("subsets") or []
    if not subsets:
        return NONE
    shown: list[str] = []
    count = 0
    for ss in subsets:
        addresses = [str(a.get("ip")) for a in ss.get("addresses") or []]
        ports = ss.get("ports") or []
        pairs = [a for a in addresses] if not ports else []
        for p in ports:
            pairs += [
                f"[{a}]:{p.get('port')}" if ":" in a else f"{a}:{p.get('port')}" for a in addresses
            ]
        count += len(pairs)
        shown += pairs[: max(0, 3 - len(shown))]
    text = ",".join(shown)
    return f"{text} + {count - 3} more..." if count > 3 else text


def _more(items: list[str]) -> str:
    """kubectl's listWithMoreString: three at most, ``<unset>`` for none."""
    text = ",".join(items[:3])
    if len(items) > 3:
        return f"{text} + {len(items) - 3} more..."
    return text or "<unset>"


def _slice_ports(o: Obj) -> str:
    return _more(
        [
            str(p["port"]) if p.get("port") is not None else str(p.get("name") or "*")
            for p in o.get("ports") or []
        ]
    )


def _slice_endpoints(o: Obj) -> str:
    return _more([str(a) for e in o.get("endpoints") or [] for a in e.get("addresses") or []])


_POD = [
    Column("READY", _pod_ready),
    Column("STATUS", _pod_status),
    Column("RESTARTS", _pod_restarts),
]
_POD_WIDE = [path("IP", "status.podIP", True), Column("NODE", _pod_node, True)]

_COLUMNS: dict[tuple[str, str], tuple[list[Column], list[Column]]] = {
    # (group, kind): (columns before AGE, wide columns after AGE)
    ("", "Pod"): (_POD, _POD_WIDE),
    ("", "Service"): (
        [
            Column("TYPE", lambda o: str(dig(o, "spec.type") or "ClusterIP")),
            path("CLUSTER-IP", "spec.clusterIP"),
            Column("EXTERNAL-IP", _svc_external),
            Column("PORT(S)", _svc_ports),
        ],
        [Column("SELECTOR", lambda o: _selector(o, "spec.selector"), True)],
    ),
    ("apps", "Deployment"): (
        [
            Column("READY", _deploy_ready),
            Column("UP-TO-DATE", lambda o: str(dig(o, "status.updatedReplicas") or 0)),
            Column("AVAILABLE", lambda o: str(dig(o, "status.availableReplicas") or 0)),
        ],
        [
            Column("CONTAINERS", lambda o: _containers(o, "name"), True),
            Column("IMAGES", lambda o: _containers(o, "image"), True),
            Column("SELECTOR", lambda o: _selector(o, "spec.selector.matchLabels"), True),
        ],
    ),
    ("", "Node"): (
        [Column("STATUS", _node_status), Column("ROLES", _node_roles)],
        [
            Column("VERSION", lambda o: str(dig(o, "status.nodeInfo.kubeletVersion") or NONE)),
            Column("INTERNAL-IP", _node_ip, True),
            Column("POD-CIDR", lambda o: str(dig(o, "spec.podCIDR") or NONE), True),
        ],
    ),
    ("", "Namespace"): ([Column("STATUS", lambda o: str(dig(o, "status.phase") or "Active"))], []),
    ("", "ServiceAccount"): (
        [Column("SECRETS", lambda o: str(len(dig(o, "secrets") or [])))],
        [],
    ),
    ("", "ConfigMap"): ([Column("DATA", lambda o: str(len(dig(o, "data") or {})))], []),
    ("", "Secret"): (
        [
            Column("TYPE", lambda o: str(dig(o, "type") or "Opaque")),
            Column("DATA", lambda o: str(len(dig(o, "data") or {}))),
        ],
        [],
    ),
    ("networking.istio.io", "ServiceEntry"): (
        [
            path("HOSTS", "spec.hosts"),
            path("LOCATION", "spec.location"),
            path("RESOLUTION", "spec.resolution"),
        ],
        [],
    ),
    ("networking.istio.io", "VirtualService"): (
        [path("GATEWAYS", "spec.gateways"), path("HOSTS", "spec.hosts")],
        [],
    ),
    ("networking.istio.io", "DestinationRule"): ([path("HOST", "spec.host")], []),
    ("security.istio.io", "AuthorizationPolicy"): ([path("ACTION", "spec.action")], []),
    ("meshgate.io", "MeshConfig"): (
        [Column("MODE", _mesh_mode), Column("EGRESS-ENFORCEMENT", _egress_enforcement)],
        [],
    ),
    ("networking.k8s.io", "NetworkPolicy"): ([Column("POD-SELECTOR", _pod_selector)], []),
    ("", "Endpoints"): ([Column("ENDPOINTS", _endpoints)], []),
    ("discovery.k8s.io", "EndpointSlice"): (
        [
            Column("ADDRESSTYPE", lambda o: str(o.get("addressType") or "")),
            Column("PORTS", _slice_ports),
            Column("ENDPOINTS", _slice_endpoints),
        ],
        [],
    ),
    ("istio.alibabacloud.com", "IstioGateway"): (
        [path("TYPE", "spec.gatewayType"), path("REPLICAS", "spec.replicaCount")],
        [],
    ),
    ("istio.alibabacloud.com", "ASMEgressTrafficPolicy"): (
        [path("BYEGRESSGATEWAY", "spec.byEgressGateway.name"), path("STATUS", "status.message")],
        [],
    ),
}

_BY_KIND = {kind: cols for (_, kind), cols in _COLUMNS.items()}


def columns_for(group: str, kind: str, wide: bool = False) -> list[Column]:
    """NAME, the kind's columns, AGE, then the columns after it not marked wide (a
    node's VERSION), and (with ``wide``) the wide columns."""
    # The kind alone is enough when a kind is registered under another group than ours.
    before, after = _COLUMNS.get((group, kind)) or _BY_KIND.get(kind) or ([], [])
    name = Column("NAME", lambda o: str(dig(o, "metadata.name") or ""))
    return [name, *before, age_column(), *(c for c in after if wide or not c.wide)]


def age_column(now: datetime | None = None) -> Column:
    return Column("AGE", lambda o: age(dig(o, "metadata.creationTimestamp"), now))
