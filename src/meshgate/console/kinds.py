"""The resource kinds the console lists and edits, and the scenario templates it offers.

Rules: one ``KindPage`` per page (its URL slug, API group and kind, the columns it shows);
templates are complete YAML documents that apply as they are (each one is checked by a
unit test), so a user edits names and hosts, not structure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Object = dict[str, Any]


def _hosts(obj: Object) -> str:
    return ", ".join(str(h) for h in (obj.get("spec") or {}).get("hosts") or [])


def _se_ports(obj: Object) -> str:
    ports = (obj.get("spec") or {}).get("ports") or []
    return ", ".join(f"{p.get('number')}/{p.get('protocol', '')}" for p in ports)


def _location(obj: Object) -> str:
    return str((obj.get("spec") or {}).get("location") or "MESH_EXTERNAL")


def _gateways(obj: Object) -> str:
    return ", ".join(str(g) for g in (obj.get("spec") or {}).get("gateways") or ["mesh"])


def _servers(obj: Object) -> str:
    servers = (obj.get("spec") or {}).get("servers") or []
    return "; ".join(
        f"{(s.get('port') or {}).get('number')}/{(s.get('port') or {}).get('protocol')} "
        + ",".join(s.get("hosts") or [])
        for s in servers
    )


def _selector(obj: Object) -> str:
    spec = obj.get("spec") or {}
    sel = spec.get("selector") or {}
    labels = sel.get("matchLabels") if isinstance(sel.get("matchLabels"), dict) else sel
    return ",".join(f"{k}={v}" for k, v in sorted((labels or {}).items())) or "(all)"


def _host(obj: Object) -> str:
    return str((obj.get("spec") or {}).get("host") or "")


def _action(obj: Object) -> str:
    return str((obj.get("spec") or {}).get("action") or "ALLOW")


def _replicas(obj: Object) -> str:
    count = (obj.get("spec") or {}).get("replicaCount")
    return str(1 if count is None else count)


def _gw_ports(obj: Object) -> str:
    ports = (obj.get("spec") or {}).get("ports") or []
    return ", ".join(f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in ports)


@dataclass(frozen=True)
class KindPage:
    slug: str
    title: str
    group: str
    kind: str
    api_version: str
    columns: tuple[tuple[str, Callable[[Object], str]], ...]
    templates: dict[str, str] = field(default_factory=dict)
    default_namespace: str = "default"


SE_EXTERNAL = """\
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata:
  name: external-svc-http
spec:
  hosts:
  - aliyun.com
  location: MESH_EXTERNAL
  ports:
  - number: 80
    name: http
    protocol: HTTP
  resolution: DNS
"""

SE_TLS = """\
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata:
  name: external-svc-https
spec:
  hosts:
  - aliyun.com
  location: MESH_EXTERNAL
  ports:
  - number: 443
    name: tls
    protocol: TLS
  resolution: DNS
"""

SE_STATIC = """\
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata:
  name: external-svc-static
spec:
  hosts:
  - legacy.example.internal
  addresses:
  - 192.0.2.10/32
  location: MESH_EXTERNAL
  ports:
  - number: 8080
    name: http
    protocol: HTTP
  resolution: STATIC
  endpoints:
  - address: 192.0.2.10
"""

GATEWAY_EGRESS = """\
apiVersion: networking.istio.io/v1beta1
kind: Gateway
metadata:
  name: egress-gw
spec:
  selector:
    istio: egressgateway
  servers:
  - port:
      number: 80
      name: http
      protocol: HTTP
    hosts:
    - aliyun.com
"""

VS_THROUGH_GATEWAY = """\
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: egressgateway-vs
spec:
  hosts:
  - aliyun.com
  gateways:
  - egress-gw
  - mesh
  http:
  - match:
    - gateways:
      - mesh
      port: 80
    route:
    - destination:
        host: istio-egressgateway.istio-system.svc.cluster.local
        port:
          number: 80
      weight: 100
  - match:
    - gateways:
      - egress-gw
      port: 80
    route:
    - destination:
        host: aliyun.com
        port:
          number: 80
      weight: 100
"""

DR_GATEWAY_MTLS = """\
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata:
  name: egressgateway-mtls
spec:
  host: istio-egressgateway.istio-system.svc.cluster.local
  trafficPolicy:
    tls:
      mode: ISTIO_MUTUAL
"""

AP_GATEWAY_ALLOW = """\
apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata:
  name: egress-allow-sleep
  namespace: istio-system
spec:
  selector:
    matchLabels:
      istio: egressgateway
  action: ALLOW
  rules:
  - from:
    - source:
        principals:
        - cluster.local/ns/default/sa/sleep
    to:
    - operation:
        hosts:
        - aliyun.com
"""

EGRESS_GATEWAY = """\
apiVersion: istio.alibabacloud.com/v1beta1
kind: IstioGateway
metadata:
  name: istio-egressgateway
  namespace: istio-system
spec:
  gatewayType: egress
  replicaCount: 1
  ports:
  - name: http-0
    port: 80
    protocol: TCP
    targetPort: 80
"""

PAGES: tuple[KindPage, ...] = (
    KindPage(
        "serviceentries",
        "ServiceEntries",
        "networking.istio.io",
        "ServiceEntry",
        "networking.istio.io/v1beta1",
        (("Hosts", _hosts), ("Ports", _se_ports), ("Location", _location)),
        {
            "Access an external service (HTTP)": SE_EXTERNAL,
            "Access an external service (TLS)": SE_TLS,
            "A fixed address outside the mesh": SE_STATIC,
        },
    ),
    KindPage(
        "egressgateways",
        "Egress gateways",
        "istio.alibabacloud.com",
        "IstioGateway",
        "istio.alibabacloud.com/v1beta1",
        (("Replicas", _replicas), ("Ports", _gw_ports)),
        {"Egress gateway (HTTP on 80)": EGRESS_GATEWAY},
        default_namespace="istio-system",
    ),
    KindPage(
        "gateways",
        "Gateways",
        "networking.istio.io",
        "Gateway",
        "networking.istio.io/v1beta1",
        (("Selector", _selector), ("Servers", _servers)),
        {"Gateway rule for the egress gateway": GATEWAY_EGRESS},
    ),
    KindPage(
        "virtualservices",
        "VirtualServices",
        "networking.istio.io",
        "VirtualService",
        "networking.istio.io/v1beta1",
        (("Hosts", _hosts), ("Gateways", _gateways)),
        {"Send a host through the egress gateway": VS_THROUGH_GATEWAY},
    ),
    KindPage(
        "destinationrules",
        "DestinationRules",
        "networking.istio.io",
        "DestinationRule",
        "networking.istio.io/v1beta1",
        (("Host", _host),),
        {"Mutual TLS to the egress gateway": DR_GATEWAY_MTLS},
    ),
    KindPage(
        "authorizationpolicies",
        "AuthorizationPolicies",
        "security.istio.io",
        "AuthorizationPolicy",
        "security.istio.io/v1beta1",
        (("Action", _action), ("Selector", _selector)),
        {"Let only the sleep app out through the gateway": AP_GATEWAY_ALLOW},
        default_namespace="istio-system",
    ),
)

BY_SLUG = {p.slug: p for p in PAGES}
