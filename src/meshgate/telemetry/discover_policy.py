"""Egress discovery's policies: an ASMEgressTrafficPolicy, or AuthorizationPolicies on the
egress gateway, allowing exactly the workload -> destination pairs that were discovered.

Rules of this module:
- Sans-I/O: ``discover.Row`` in, Kubernetes objects out (with warnings for what a policy
  cannot say).
- ``asm_policy``: one ASMEgressTrafficPolicy (reference §1.1) in ``istio-egress``, named
  ``egress-by-<gateway>`` as ASM's convention; one egress rule per workload (``from``: its
  namespace and its pods' selector labels), one ``to`` per host and port (hosts in one
  ``to`` must resolve to one address, so a host is never grouped with another). No
  ``byEgressGateway`` on ``to``: the controller allocates the gateway ports (HTTP 10000,
  TLS/TCP from 10001) and reports them in ``status.autoAllocatedGatewayPorts``. A
  destination that is an IP address has no host to name and is left out, with a warning.
- ``authorization_policies``: one ALLOW AuthorizationPolicy per workload, in the gateway's
  namespace, selecting the gateway's pods (``istio: <name without istio->``, the chart's
  label); the workload is its SPIFFE principal (its namespace when its service account is
  unknown); HTTP destinations by ``hosts``, TLS ones by ``connection.sni``. They decide
  only what reaches the gateway: routing there (Gateway, VirtualService, DestinationRule)
  is not written. IP destinations are left out, with a warning.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from meshgate.telemetry.discover import (
    DISCOVERED_LABEL,
    DISCOVERED_VALUE,
    ROOT_NAMESPACE,
    Emitted,
    Obj,
    Row,
    Workload,
    iso,
)

ASM_NAMESPACE = "istio-egress"
ASM_API = "istio.alibabacloud.com/v1beta1"


def _name(text: str, limit: int = 63) -> str:
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return name[:limit].rstrip("-")


def _by_workload(rows: Iterable[Row]) -> dict[Workload, list[Row]]:
    out: dict[Workload, list[Row]] = {}
    for r in rows:
        out.setdefault(r.workload, []).append(r)
    return dict(sorted(out.items()))


def _skipped(rows: list[Row], what: str) -> list[str]:
    return [
        f"{r.workload.namespace}/{r.workload.ref} -> {r.destination.protocol} "
        f"{r.destination.host}:{r.destination.port}: an IP address, not a host: {what}"
        for r in rows
        if r.destination.is_ip
    ]


def asm_policy(rows: Iterable[Row], gateway: str) -> tuple[list[Emitted], list[str]]:
    rules: list[Obj] = []
    warnings: list[str] = []
    comment: list[str] = []
    for w, wrows in _by_workload(rows).items():
        warnings += _skipped(wrows, "not in the ASMEgressTrafficPolicy (use the ServiceEntry)")
        seen: dict[tuple[str, int], str] = {}
        for r in wrows:
            d = r.destination
            if not d.is_ip:
                seen.setdefault((d.host, d.port), d.protocol)
        if not seen:
            continue
        source: Obj = {"namespace": w.namespace}
        if w.labels:
            source["workloadSelector"] = dict(w.labels)
        to = [
            {
                "name": _name(f"{host}-{port}"),
                "hosts": [host],
                "port": {"number": port, "protocol": proto, "name": f"{proto.lower()}-{port}"},
            }
            for (host, port), proto in sorted(seen.items())
        ]
        rules.append({"name": _name(f"{w.namespace}-{w.name}"), "from": [source], "to": to})
        comment.append(f"{w.namespace}/{w.ref}: {', '.join(f'{h}:{p}' for h, p in sorted(seen))}")
    if not rules:
        return [], warnings
    obj: Obj = {
        "apiVersion": ASM_API,
        "kind": "ASMEgressTrafficPolicy",
        "metadata": {
            "name": _name(f"egress-by-{gateway}"),
            "namespace": ASM_NAMESPACE,
            "labels": {DISCOVERED_LABEL: DISCOVERED_VALUE},
        },
        "spec": {"byEgressGateway": {"name": gateway}, "egressRules": rules},
    }
    return [Emitted(obj, comment)], warnings


def authorization_policies(
    rows: Iterable[Row], gateway: str, trust_domain: str, gateway_namespace: str = ROOT_NAMESPACE
) -> tuple[list[Emitted], list[str]]:
    out: list[Emitted] = []
    warnings: list[str] = []
    for w, wrows in _by_workload(rows).items():
        warnings += _skipped(wrows, "no AuthorizationPolicy rule (hosts and SNI are names)")
        http = sorted({r.destination.host for r in wrows if r.destination.protocol == "HTTP"
                       and not r.destination.is_ip})  # fmt: skip
        tls = sorted({r.destination.host for r in wrows if r.destination.protocol == "TLS"})
        if not http and not tls:
            continue
        source: Obj = (
            {"principals": [f"{trust_domain}/ns/{w.namespace}/sa/{w.service_account}"]}
            if w.service_account
            else {"namespaces": [w.namespace]}
        )
        rules: list[Obj] = []
        if http:
            rules.append({"from": [{"source": source}], "to": [{"operation": {"hosts": http}}]})
        if tls:
            rules.append(
                {"from": [{"source": source}], "when": [{"key": "connection.sni", "values": tls}]}
            )
        obj: Obj = {
            "apiVersion": "security.istio.io/v1",
            "kind": "AuthorizationPolicy",
            "metadata": {
                "name": _name(f"egress-{w.namespace}-{w.name}"),
                "namespace": gateway_namespace,
                "labels": {DISCOVERED_LABEL: DISCOVERED_VALUE},
            },
            "spec": {
                "selector": {"matchLabels": {"istio": gateway.removeprefix("istio-")}},
                "action": "ALLOW",
                "rules": rules,
            },
        }
        last = iso(max(r.last_ms for r in wrows)) or "-"
        out.append(
            Emitted(obj, [f"{w.namespace}/{w.ref} (last seen {last}): {', '.join(http + tls)}"])
        )
    return out, warnings
