"""ASMEgressTrafficPolicy compiled into Istio resources (egress-semantics §1.1).

``compile_policy(policy, objects)`` is a pure function: a policy and the mesh's objects
(canonical wire dicts, as the store holds them) in, the resources it stands for and its
``status`` out. The server writes them (``server.asmegress``); ``analyze`` reuses it to
report conflicts (MG2006).

Rules of this module:
- Path: app -> sidecar -> (mutual TLS, always) -> egress gateway -> external host. Each
  ``to`` entry gives, in the policy's namespace (owned through ``ownerReferences``):
  a ServiceEntry ``<policy>-<to>`` (hosts, the entry's port, DNS, MESH_EXTERNAL) and a
  VirtualService ``<policy>-<to>`` (the mesh route to the gateway, the gateway route to
  ``hosts[0]``: ASM requires the hosts of one entry to resolve to one address), both
  exported to the ``from`` namespaces, the policy's own and (unless the gateway upgrades
  to HTTPS) the gateway's; and the policy has one Gateway ``<policy>`` selecting the
  IstioGateway's pods, one server per gateway port, every one ``tls.mode: ISTIO_MUTUAL``
  (HTTP-family entries as an HTTPS server, others as TLS).
- In the gateway's namespace (where Istio looks for them: a DestinationRule for the
  gateway's Service, an AuthorizationPolicy for its pods), owned through labels and the
  ``meshgate.io/owner-uid`` annotation (Kubernetes ownerReferences cannot cross
  namespaces; ``server.asmegress`` deletes them with the policy): a DestinationRule
  ``<policy>`` whose subset ``<policy>`` sets ISTIO_MUTUAL on every gateway port the policy
  uses, with the SNI ``hosts[0]`` of the port's first entry (the gateway's server picks
  its filter chain by SNI among its hosts, as in Istio's egress-gateway tasks; the mesh
  routes name that subset), and an AuthorizationPolicy ``<policy>`` (DENY)
  that refuses, per ``to`` entry, its gateway port (and, for HTTP, its hosts) to every
  peer identity other than those of the ``from`` workloads: the service accounts of the
  pods and Deployment templates in ``from.namespace`` matching ``workloadSelector``, or
  the whole namespace without one. Workloads that match no rule are therefore refused at
  the gateway on the mTLS identity they cannot forge (403, RBAC); namespaces outside every
  ``from`` do not see the hosts at all (REGISTRY_ONLY answers 502 / resets). No Sidecar is
  generated: a Sidecar cannot select "every workload but these", so it cannot express the
  allow-list without taking imports away from unrelated workloads.
- ``httpsUpgrade.enabled`` (HTTP-family entries): the gateway routes to ``hosts[0]`` on
  ``httpsUpgrade.port`` (443 when unset) and originates TLS there: a ServiceEntry and a
  DestinationRule (``SIMPLE``, SNI ``hosts[0]``) ``<policy>-<to>-upgrade`` in the gateway's
  namespace, exported to it alone, so no sidecar gets a direct path to that port.
- Gateway ports: ``to.byEgressGateway.port`` when set, else ``spec.byEgressGateway.port``,
  else allocated as ASM does: HTTP and HTTP2 10000, gRPC 50051, TCP/TLS/HTTPS/MONGO one
  port per ``hosts[0]-port`` pair from 10001 to 20000 (skipping ports already used).
  ``status.autoAllocatedGatewayPorts`` maps ``hosts[0]-port`` to each allocated port.
  Ports the IstioGateway's Service lacks are added to it (``gateway_service_ports``).
- Problems make the status ``Failed`` with the exact reason and no resource: no such
  IstioGateway (or not an egress one), a gateway port used for two protocol families or,
  for TCP/TLS, for two destinations. A name taken by an object this policy did not make,
  or a hand-written resource Istio would merge with ours (a mesh VirtualService or a
  DestinationRule for one of our hosts, a Gateway server on our port of the same pods
  with an overlapping host), makes it ``Conflict``: nothing is overwritten or merged.
- Everything is sorted and named from the policy alone, so output is deterministic.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]

ASM_GROUP = "istio.alibabacloud.com"
KIND = "ASMEgressTrafficPolicy"
NETWORKING = "networking.istio.io/v1beta1"
SECURITY = "security.istio.io/v1"
LABEL_POLICY = "istio.alibabacloud.com/egress-traffic-policy"
LABEL_POLICY_NS = "istio.alibabacloud.com/egress-traffic-policy-namespace"
OWNER_UID = "meshgate.io/owner-uid"
HTTP_PORT, GRPC_PORT, RANGE = 10000, 50051, (10001, 20000)
HTTP_FAMILY = ("HTTP", "HTTP2", "GRPC")
UPGRADE_PORT = 443
APPLIED, FAILED, CONFLICT = "Applied", "Failed", "Conflict"


@dataclass(frozen=True)
class Conflict:
    kind: str
    namespace: str
    name: str
    reason: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name} {self.reason}"


@dataclass
class Compiled:
    """What one policy stands for: resources to store, its status, the gateway Service
    ports it needs ((gateway namespace, name) -> ServicePorts), and its conflicts."""

    objects: list[Obj] = field(default_factory=list)
    status: Obj = field(default_factory=dict)
    gateway: tuple[str, str] | None = None
    service_ports: list[Obj] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)


@dataclass(frozen=True)
class _Entry:
    """One ``to`` entry with its rule's sources and the gateway port it uses."""

    base: str  # <policy>-<to name>
    hosts: tuple[str, ...]
    port: int
    port_name: str
    protocol: str
    gw_port: int
    upgrade: int | None
    sources: tuple[tuple[str, tuple[tuple[str, str], ...]], ...]  # (namespace, selector)

    @property
    def http(self) -> bool:
        return self.protocol in HTTP_FAMILY


def _meta(obj: Obj) -> Obj:
    meta: Obj = obj.get("metadata") or {}
    return meta


def _ns(obj: Obj) -> str:
    return str(_meta(obj).get("namespace") or "")


def _name(obj: Obj) -> str:
    return str(_meta(obj).get("name") or "")


def _labels(obj: Obj) -> dict[str, str]:
    return dict(_meta(obj).get("labels") or {})


def made_by(obj: Obj, policy_ns: str, policy_name: str) -> bool:
    """Whether ``obj`` carries the labels of the policy ``policy_ns/policy_name``."""
    labels = _labels(obj)
    return labels.get(LABEL_POLICY) == policy_name and labels.get(LABEL_POLICY_NS) == policy_ns


def generated(obj: Obj) -> bool:
    """Whether ``obj`` was made by some ASMEgressTrafficPolicy."""
    return LABEL_POLICY in _labels(obj)


def _slug(text: str) -> str:
    out = "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")
    return "-".join(p for p in out.split("-") if p)


def _family(protocol: str) -> str:
    if protocol in HTTP_FAMILY:
        return "HTTP"
    return "TCP" if protocol in ("TCP", "MONGO") else "TLS"


def _find_gateway(objects: list[Obj], name: str) -> Obj | None:
    """The IstioGateway called ``name``: the one in istio-system (where ASM deploys them)
    first, else the first by namespace."""
    found = sorted(
        (o for o in objects if o.get("kind") == "IstioGateway" and _name(o) == name),
        key=lambda o: (_ns(o) != "istio-system", _ns(o)),
    )
    return found[0] if found else None


def gateway_selector(gw: Obj) -> dict[str, str]:
    """The pod labels the IstioGateway controller gives its pods (see server.workloads)."""
    name = _name(gw)
    return {"app": name, "istio": name.removeprefix("istio-")}


def _target_port(gw: Obj, port: int) -> int:
    """The port the gateway pods listen on for Service port ``port``."""
    for p in (gw.get("spec") or {}).get("ports") or []:
        if p.get("port") == port and isinstance(p.get("targetPort", port), int):
            return int(p.get("targetPort", port))
    return port


def _entries(policy: Obj) -> tuple[list[_Entry], dict[str, int], list[str]]:
    """Every ``to`` entry with its gateway port; allocated ports; problems."""
    spec = policy.get("spec") or {}
    default_port = (spec.get("byEgressGateway") or {}).get("port")
    name = _name(policy)
    raw: list[tuple[str, Obj, tuple[Any, ...]]] = []
    seen: set[str] = set()
    for i, rule in enumerate(spec.get("egressRules") or []):
        sources = tuple(
            (str(f.get("namespace")), tuple(sorted((f.get("workloadSelector") or {}).items())))
            for f in rule.get("from") or []
        )
        for j, to in enumerate(rule.get("to") or []):
            base = f"{name}-{_slug(to.get('name') or '')}" if to.get("name") else ""
            if not base or base in seen:
                base = f"{name}-{i}-{j}"
            seen.add(base)
            raw.append((base, to, sources))
    explicit = {
        int(p)
        for _, to, _ in raw
        for p in [(to.get("byEgressGateway") or {}).get("port") or default_port]
        if p
    }
    allocated: dict[str, int] = {}
    next_port = RANGE[0]
    entries: list[_Entry] = []
    problems: list[str] = []
    for base, to, sources in raw:
        port = to.get("port") or {}
        protocol = str(port.get("protocol") or "HTTP").upper()
        hosts = tuple(str(h) for h in to.get("hosts") or [])
        number = int(port.get("number") or 0)
        gw_port = (to.get("byEgressGateway") or {}).get("port") or default_port
        key = f"{hosts[0]}-{number}" if hosts else base
        if not gw_port:
            if protocol in ("HTTP", "HTTP2"):
                gw_port = HTTP_PORT
            elif protocol == "GRPC":
                gw_port = GRPC_PORT
            elif key in allocated:
                gw_port = allocated[key]
            else:
                while next_port in explicit and next_port <= RANGE[1]:
                    next_port += 1
                if next_port > RANGE[1]:
                    problems.append(f"no free gateway port left in {RANGE[0]}-{RANGE[1]}")
                    continue
                gw_port, next_port = next_port, next_port + 1
            allocated[key] = int(gw_port)
        upgrade = to.get("httpsUpgrade") or {}
        upgrade_port = int(upgrade.get("port") or UPGRADE_PORT) if upgrade.get("enabled") else None
        if upgrade_port is not None and protocol not in HTTP_FAMILY:
            problems.append(
                f"{base}: httpsUpgrade needs an HTTP port (this one is {protocol}): "
                "only plaintext HTTP can be upgraded to HTTPS at the gateway"
            )
        entries.append(
            _Entry(
                base=base,
                hosts=hosts,
                port=number,
                port_name=str(port.get("name") or f"{protocol.lower()}-{number}"),
                protocol=protocol,
                gw_port=int(gw_port),
                upgrade=upgrade_port,
                sources=sources,
            )
        )
    by_port: dict[int, list[_Entry]] = {}
    for e in entries:
        by_port.setdefault(e.gw_port, []).append(e)
    for gw_port, users in sorted(by_port.items()):
        families = sorted({_family(e.protocol) for e in users})
        if len(families) > 1:
            problems.append(
                f"gateway port {gw_port} is used for {' and '.join(families)} "
                f"({', '.join(e.base for e in users)}): give each protocol its own port"
            )
        elif families != ["HTTP"] and len({(e.hosts[0], e.port) for e in users}) > 1:
            problems.append(
                f"gateway port {gw_port} carries TCP/TLS for several destinations "
                f"({', '.join(e.base for e in users)}): the gateway cannot tell them apart; "
                "give each its own port (or leave byEgressGateway.port unset)"
            )
    return entries, allocated, problems


def _principals(entry: _Entry, objects: list[Obj]) -> list[str]:
    """Peer identities allowed for ``entry``: service accounts of matching workloads."""
    out: set[str] = set()
    for namespace, selector in entry.sources:
        if not selector:
            out.add(f"cluster.local/ns/{namespace}/sa/*")
            continue
        wanted = dict(selector)
        for o in objects:
            if _ns(o) != namespace:
                continue
            if o.get("kind") == "Pod":
                labels, spec = _labels(o), o.get("spec") or {}
            elif o.get("kind") == "Deployment":
                template = (o.get("spec") or {}).get("template") or {}
                labels = dict((template.get("metadata") or {}).get("labels") or {})
                spec = template.get("spec") or {}
            else:
                continue
            if all(labels.get(k) == v for k, v in wanted.items()):
                account = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
                out.add(f"cluster.local/ns/{namespace}/sa/{account}")
    return sorted(out)


def _meta_for(policy: Obj, namespace: str, name: str) -> Obj:
    meta: Obj = {
        "name": name,
        "namespace": namespace,
        "labels": {LABEL_POLICY: _name(policy), LABEL_POLICY_NS: _ns(policy)},
    }
    if namespace == _ns(policy):
        meta["ownerReferences"] = [
            {
                "apiVersion": policy["apiVersion"],
                "kind": KIND,
                "name": _name(policy),
                "uid": str(_meta(policy).get("uid") or ""),
                "controller": True,
            }
        ]
    else:
        meta["annotations"] = {OWNER_UID: str(_meta(policy).get("uid") or "")}
    return meta


def _obj(api: str, kind: str, meta: Obj, spec: Obj) -> Obj:
    return {"apiVersion": api, "kind": kind, "metadata": meta, "spec": spec}


def _resources(policy: Obj, gw: Obj, entries: list[_Entry], objects: list[Obj]) -> list[Obj]:
    pns, pname = _ns(policy), _name(policy)
    gns, gname = _ns(gw) or "istio-system", _name(gw)
    gw_host = f"{gname}.{gns}.svc.cluster.local"
    out: list[Obj] = []
    servers: dict[int, list[_Entry]] = {}
    for e in entries:
        servers.setdefault(e.gw_port, []).append(e)
        export = sorted({ns for ns, _ in e.sources} | {"."} | (set() if e.upgrade else {gns}))
        export = ["." if ns == pns else ns for ns in export]
        export = sorted(set(export))
        out.append(
            _obj(
                NETWORKING,
                "ServiceEntry",
                _meta_for(policy, pns, e.base),
                {
                    "hosts": list(e.hosts),
                    "ports": [{"number": e.port, "name": e.port_name, "protocol": e.protocol}],
                    "resolution": "DNS",
                    "location": "MESH_EXTERNAL",
                    "exportTo": export,
                },
            )
        )
        to_gateway = [
            {"destination": {"host": gw_host, "subset": pname, "port": {"number": e.gw_port}}}
        ]
        upstream = [{"destination": {"host": e.hosts[0], "port": {"number": e.upgrade or e.port}}}]
        vs: Obj = {"hosts": list(e.hosts), "gateways": [pname, "mesh"], "exportTo": export}
        at_gateway = {"gateways": [pname], "port": e.gw_port}
        if e.http:
            vs["http"] = [
                {
                    "name": "to-egress-gateway",
                    "match": [{"gateways": ["mesh"], "port": e.port}],
                    "route": to_gateway,
                },
                {"name": "to-external-host", "match": [at_gateway], "route": upstream},
            ]
        else:
            mesh_match: Obj = {"gateways": ["mesh"], "port": e.port}
            if _family(e.protocol) == "TLS":
                vs["tls"] = [
                    {"match": [{**mesh_match, "sniHosts": list(e.hosts)}], "route": to_gateway}
                ]
            else:
                vs["tcp"] = [{"match": [mesh_match], "route": to_gateway}]
            vs["tcp"] = [*vs.get("tcp", []), {"match": [at_gateway], "route": upstream}]
        out.append(_obj(NETWORKING, "VirtualService", _meta_for(policy, pns, e.base), vs))
        if e.upgrade:
            up = f"{e.base}-upgrade"
            out.append(
                _obj(
                    NETWORKING,
                    "ServiceEntry",
                    _meta_for(policy, gns, up),
                    {
                        "hosts": [e.hosts[0]],
                        "ports": [
                            {"number": e.upgrade, "name": f"https-{e.upgrade}", "protocol": "HTTPS"}
                        ],
                        "resolution": "DNS",
                        "location": "MESH_EXTERNAL",
                        "exportTo": ["."],
                    },
                )
            )
            out.append(
                _obj(
                    NETWORKING,
                    "DestinationRule",
                    _meta_for(policy, gns, up),
                    {
                        "host": e.hosts[0],
                        "exportTo": ["."],
                        "trafficPolicy": {
                            "portLevelSettings": [
                                {
                                    "port": {"number": e.upgrade},
                                    "tls": {"mode": "SIMPLE", "sni": e.hosts[0]},
                                }
                            ]
                        },
                    },
                )
            )
    gw_servers = []
    for port, users in sorted(servers.items()):
        http = _family(users[0].protocol) == "HTTP"
        protocol = "HTTPS" if http else "TLS"
        gw_servers.append(
            {
                "port": {
                    "number": port,
                    "name": f"{protocol.lower()}-{port}",
                    "protocol": protocol,
                },
                "hosts": sorted({h for u in users for h in u.hosts}),
                "tls": {"mode": "ISTIO_MUTUAL"},
            }
        )
    out.append(
        _obj(
            NETWORKING,
            "Gateway",
            _meta_for(policy, pns, pname),
            {"selector": gateway_selector(gw), "servers": gw_servers},
        )
    )
    from_ns = sorted({ns for e in entries for ns, _ in e.sources})
    out.append(
        _obj(
            NETWORKING,
            "DestinationRule",
            _meta_for(policy, gns, pname),
            {
                "host": gw_host,
                "exportTo": sorted({"." if ns == gns else ns for ns in from_ns} | {"."}),
                "subsets": [
                    {
                        "name": pname,
                        "trafficPolicy": {
                            "portLevelSettings": [
                                {
                                    "port": {"number": p},
                                    "tls": {"mode": "ISTIO_MUTUAL", "sni": users[0].hosts[0]},
                                }
                                for p, users in sorted(servers.items())
                            ]
                        },
                    }
                ],
            },
        )
    )
    rules = []
    for e in entries:
        operation: Obj = {"ports": [str(_target_port(gw, e.gw_port))]}
        if e.http:
            operation["hosts"] = sorted({h for host in e.hosts for h in (host, f"{host}:*")})
        rule: Obj = {"to": [{"operation": operation}]}
        allowed = _principals(e, objects)
        if allowed:
            rule["from"] = [{"source": {"notPrincipals": allowed}}]
        rules.append(rule)
    out.append(
        _obj(
            SECURITY,
            "AuthorizationPolicy",
            _meta_for(policy, gns, pname),
            {"selector": {"matchLabels": gateway_selector(gw)}, "action": "DENY", "rules": rules},
        )
    )
    return out


def _hosts_overlap(a: Iterable[str], b: Iterable[str]) -> list[str]:
    def match(x: str, y: str) -> bool:
        if x == y or "*" in (x, y):
            return True
        if x.startswith("*."):
            return y.endswith(x[1:])
        return y.startswith("*.") and x.endswith(y[1:])

    return sorted({y for x in a for y in b if match(x, y)})


def _conflicts(policy: Obj, gw: Obj, desired: list[Obj], objects: list[Obj]) -> list[Conflict]:
    """Hand-written objects our resources would overwrite, or that Istio would merge with
    them (see the module rules)."""
    pns, pname = _ns(policy), _name(policy)
    ours = {(o["kind"], _ns(o), _name(o)) for o in desired}
    foreign = [o for o in objects if not made_by(o, pns, pname)]
    out: list[Conflict] = []
    for o in foreign:
        kind, ns, name = str(o.get("kind")), _ns(o), _name(o)
        if (kind, ns, name) in ours:
            out.append(Conflict(kind, ns, name, "already exists and was not made by this policy"))
    for d in desired:
        spec = d.get("spec") or {}
        for o in foreign:
            if o.get("kind") != d["kind"] or (o["kind"], _ns(o), _name(o)) in ours:
                continue
            ospec = o.get("spec") or {}
            where = (str(o["kind"]), _ns(o), _name(o))
            if d["kind"] == "VirtualService":
                gateways = ospec.get("gateways") or ["mesh"]
                both = _hosts_overlap(spec["hosts"], ospec.get("hosts") or [])
                if "mesh" in gateways and both:
                    out.append(
                        Conflict(
                            *where,
                            f"also routes host {both[0]} in the mesh, "
                            f"which Istio would merge with {_name(d)}",
                        )
                    )
            elif d["kind"] == "DestinationRule" and _ns(o) == _ns(d):
                if ospec.get("host") == spec["host"]:
                    out.append(
                        Conflict(
                            *where,
                            f"is a DestinationRule for {spec['host']} in "
                            f"the same namespace, which Istio would merge with "
                            f"{_name(d)}",
                        )
                    )
            elif d["kind"] == "Gateway":
                selector = ospec.get("selector") or {}
                if not selector or any(
                    gateway_selector(gw).get(k) != v for k, v in selector.items()
                ):
                    continue
                for s in spec["servers"]:
                    for os_ in ospec.get("servers") or []:
                        if (os_.get("port") or {}).get("number") != s["port"]["number"]:
                            continue
                        both = _hosts_overlap(s["hosts"], os_.get("hosts") or [])
                        if both:
                            out.append(
                                Conflict(
                                    *where,
                                    f"serves host {both[0]} on gateway port "
                                    f"{s['port']['number']} of the same pods",
                                )
                            )
    return sorted(set(out), key=lambda c: (c.kind, c.namespace, c.name, c.reason))


def compile_policy(policy: Obj, objects: list[Obj]) -> Compiled:
    """The resources ``policy`` stands for in a mesh holding ``objects`` (see the rules)."""
    spec = policy.get("spec") or {}
    gw_name = str((spec.get("byEgressGateway") or {}).get("name") or "")
    result = Compiled()
    entries, allocated, problems = _entries(policy)
    status: Obj = {"observedGeneration": _meta(policy).get("generation")}
    if allocated:
        status["autoAllocatedGatewayPorts"] = dict(sorted(allocated.items()))
    gw = _find_gateway(objects, gw_name)
    if gw is None:
        problems.insert(
            0,
            f'spec.byEgressGateway.name: no IstioGateway "{gw_name}" (ASM deploys egress '
            "gateways in istio-system)",
        )
    elif (gw.get("spec") or {}).get("gatewayType") != "egress":
        problems.insert(
            0,
            f"spec.byEgressGateway.name: IstioGateway {_ns(gw)}/{gw_name} has gatewayType "
            f"{(gw.get('spec') or {}).get('gatewayType')!r}, not egress",
        )
    if problems:
        result.status = {**status, "status": FAILED, "message": "; ".join(problems)}
        return _drop_none(result)
    assert gw is not None
    result.gateway = (_ns(gw) or "istio-system", gw_name)
    desired = _resources(policy, gw, entries, objects)
    result.conflicts = _conflicts(policy, gw, desired, objects)
    if result.conflicts:
        result.status = {
            **status,
            "status": CONFLICT,
            "message": "not applied: " + "; ".join(map(str, result.conflicts)),
        }
        return _drop_none(result)
    result.objects = desired
    exposed = {p.get("port") for p in (gw.get("spec") or {}).get("ports") or []}
    families = {e.gw_port: _family(e.protocol) for e in entries}
    result.service_ports = [
        {
            "name": f"{'http' if fam == 'HTTP' else 'tls'}-{port}",
            "port": port,
            "protocol": "TCP",
            "targetPort": port,
        }
        for port, fam in sorted(families.items())
        if port not in exposed
    ]
    ports = ", ".join(str(p) for p in sorted(families))
    result.status = {
        **status,
        "status": APPLIED,
        "message": f"applied: {len(desired)} resources; {len(entries)} destination(s) through "
        f"IstioGateway {result.gateway[0]}/{gw_name} port(s) {ports}, mTLS to the gateway",
    }
    return _drop_none(result)


def _drop_none(result: Compiled) -> Compiled:
    result.status = {k: v for k, v in result.status.items() if v is not None}
    return result


def compile_all(objects: list[Obj]) -> dict[tuple[str, str], Compiled]:
    """(namespace, name) of every ASMEgressTrafficPolicy in ``objects`` -> its compilation.
    Two policies that would make the same object: the later (by namespace, name) fails."""
    policies = sorted(
        (o for o in objects if o.get("kind") == KIND), key=lambda o: (_ns(o), _name(o))
    )
    out: dict[tuple[str, str], Compiled] = {}
    claimed: dict[tuple[str, str, str], str] = {}
    for policy in policies:
        compiled = compile_policy(policy, objects)
        keys = [(o["kind"], _ns(o), _name(o)) for o in compiled.objects]
        taken = [(k, claimed[k]) for k in keys if k in claimed]
        if taken:
            (kind, ns, name), other = taken[0]
            compiled.objects, compiled.service_ports = [], []
            compiled.status = {
                **compiled.status,
                "status": CONFLICT,
                "message": f"not applied: {kind} {ns}/{name} is already made by "
                f"ASMEgressTrafficPolicy {other}",
            }
        else:
            for k in keys:
                claimed[k] = f"{_ns(policy)}/{_name(policy)}"
        out[(_ns(policy), _name(policy))] = compiled
    return out
