"""YAML typed in the console: decoded and checked as ``meshgate apply`` does, and shown back
with each problem under its line.

Rules of this module:
- ``check`` runs the CLI's own path: ``api.decode.decode_text`` (syntax, kinds, fields),
  the rules on what the decoder refused (``validation.partial``) and every decoded
  document's structural rules (``validation.validate_all``). Problems are collected, never
  raised; any error means nothing may be sent.
- A page for one kind takes only that kind: another kind is an error at its document's
  line, so a ServiceEntry page never creates a Gateway by mistake.
- ``annotate`` pairs every line of the text with the problems reported at it; problems
  without a line go first (``LineView.unplaced``). Sans-I/O: no client, no store.
- ``editable`` is how a stored object is shown for editing: what the user wrote (metadata
  the server sets, and status, are left out), so applying it back changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from meshgate.api.problems import Problem, Severity

SOURCE = "console.yaml"  # the file name problems carry (the console has no file)

# metadata the server sets: shown nowhere in the editor (the object applies back unchanged)
_SERVER_METADATA = (
    "resourceVersion",
    "uid",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
)


@dataclass
class Checked:
    objects: list[dict[str, Any]]  # the wire form of every decoded document, in order
    problems: list[Problem]

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.is_error]


def check(text: str, namespace: str | None, kind: str | None = None) -> Checked:
    from meshgate.api.decode import decode_text
    from meshgate.validation import validate_all
    from meshgate.validation.partial import refused_problems

    result = decode_text(text, SOURCE, namespace or None)
    problems = result.problems + refused_problems(result.refused) + validate_all(result.documents)
    if kind is not None:
        for doc in result.documents:
            if doc.resource.kind != kind:
                problems.append(
                    Problem(
                        Severity.ERROR,
                        f"this page creates {kind} objects, not {doc.resource.kind} "
                        f"(apply it on its own page, or with `meshgate apply`)",
                        field="kind",
                        resource=f"{doc.resource.kind} {doc.resource.metadata.name}",
                        file=SOURCE,
                        line=doc.line or None,
                    )
                )
    if not result.documents and not problems:
        problems.append(Problem(Severity.ERROR, "no objects in the text", file=SOURCE, line=1))
    objects = [doc.resource.to_wire() for doc in result.documents]
    return Checked(objects, problems)


@dataclass
class Line:
    number: int
    text: str
    problems: list[Problem] = field(default_factory=list)


@dataclass
class LineView:
    lines: list[Line]
    unplaced: list[Problem]


def annotate(text: str, problems: list[Problem]) -> LineView:
    lines = [Line(i, t) for i, t in enumerate(text.splitlines() or [""], start=1)]
    unplaced: list[Problem] = []
    for p in problems:
        if p.line is not None and 1 <= p.line <= len(lines):
            lines[p.line - 1].problems.append(p)
        else:
            unplaced.append(p)
    return LineView(lines, unplaced)


def editable(obj: dict[str, Any]) -> str:
    out = {k: v for k, v in obj.items() if k != "status"}
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in _SERVER_METADATA}
    annotations = {
        k: v
        for k, v in (meta.get("annotations") or {}).items()
        if k != "kubectl.kubernetes.io/last-applied-configuration"
    }
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    out["metadata"] = meta
    return yaml.safe_dump(out, sort_keys=False, default_flow_style=False)


# -- the egress gateway form --------------------------------------------------------------

GATEWAY_PROTOCOLS = ("HTTP", "HTTPS", "TLS", "TCP", "HTTP2", "GRPC")


def parse_ports(text: str) -> tuple[list[tuple[int, str]], list[str]]:
    """``80 HTTP`` / ``443/TLS`` / ``8080``, one per line or comma: (ports, reasons)."""
    ports: list[tuple[int, str]] = []
    errors: list[str] = []
    for raw in text.replace(",", "\n").splitlines():
        item = raw.strip()
        if not item:
            continue
        number, _, proto = item.replace("/", " ").partition(" ")
        proto = proto.strip().upper() or "HTTP"
        if not number.isdigit() or not 1 <= int(number) <= 65535:
            errors.append(f"port {item!r}: want a number from 1 to 65535, then a protocol")
            continue
        if proto not in GATEWAY_PROTOCOLS:
            errors.append(
                f"port {item!r}: protocol {proto} is not one of {', '.join(GATEWAY_PROTOCOLS)}"
            )
            continue
        ports.append((int(number), proto))
    if not ports and not errors:
        errors.append("give at least one port, e.g. 80 HTTP")
    return ports, errors


def egress_gateway(name: str, namespace: str, replicas: int, ports: list[tuple[int, str]]) -> str:
    """The IstioGateway the seed's "create an egress gateway" form makes: its Service ports
    are named ``<protocol>-<index>`` (Istio's protocol selection by port name) over TCP."""
    obj = {
        "apiVersion": "istio.alibabacloud.com/v1beta1",
        "kind": "IstioGateway",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "gatewayType": "egress",
            "replicaCount": replicas,
            "ports": [
                {"name": f"{proto.lower()}-{i}", "port": port, "protocol": "TCP",
                 "targetPort": port}
                for i, (port, proto) in enumerate(ports)
            ],
        },
    }  # fmt: skip
    return yaml.safe_dump(obj, sort_keys=False)
