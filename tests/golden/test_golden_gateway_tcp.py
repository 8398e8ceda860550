"""Golden file of an egress gateway carrying TCP (Istio's TCP egress through a gateway): a
plain TCP server, an ISTIO_MUTUAL TLS server routed by ``tcp`` routes (weighted), a MONGO
server no route applies to (a logged refusal), and a PASSTHROUGH server sharing a port with
a terminating one. Regenerate with ``MESHGATE_UPDATE_GOLDEN=1 pytest tests/golden``."""

from __future__ import annotations

from meshgate.model.snapshot import Snapshot
from meshgate.translate import translate
from tests.golden.seedworld import decode, gateway_proxy, step_resources
from tests.golden.test_golden import render
from tests.golden.test_golden_kube import _check

GW = "istio-egressgateway.istio-system.svc.cluster.local"
TCP_WORLD = f"""
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: tcp-world, namespace: default}}
spec:
  hosts: [tcp.example.com]
  ports: [{{number: 80, name: tcp-80, protocol: TCP}}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: tls-world, namespace: default}}
spec:
  hosts: [tls.example.com, pass.example.com]
  ports: [{{number: 443, name: tls-443, protocol: TLS}}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: tcp-world, namespace: default}}
spec:
  host: tcp.example.com
  subsets: [{{name: v2, labels: {{version: v2}}}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: tcp-gw, namespace: istio-system}}
spec:
  selector: {{istio: egressgateway}}
  servers:
  - port: {{number: 9000, name: tcp-9000, protocol: TCP}}
    hosts: [tcp.example.com]
  - port: {{number: 9001, name: tls-9001, protocol: TLS}}
    hosts: [tcp.example.com]
    tls: {{mode: ISTIO_MUTUAL}}
  - port: {{number: 9002, name: mongo-9002, protocol: MONGO}}
    hosts: ["*"]
  - port: {{number: 9443, name: tls-9443, protocol: TLS}}
    hosts: [tls.example.com]
    tls: {{mode: ISTIO_MUTUAL}}
  - port: {{number: 9443, name: tls-9443-pass, protocol: TLS}}
    hosts: [pass.example.com]
    tls: {{mode: PASSTHROUGH}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: tcp-world, namespace: default}}
spec:
  hosts: [tcp.example.com]
  gateways: [mesh, istio-system/tcp-gw]
  tcp:
  - match: [{{gateways: [mesh], port: 80}}]
    route: [{{destination: {{host: {GW}, port: {{number: 9000}}}}}}]
  - match: [{{gateways: [istio-system/tcp-gw], port: 9000}}]
    route: [{{destination: {{host: tcp.example.com, port: {{number: 80}}}}}}]
  - match: [{{gateways: [istio-system/tcp-gw], port: 9001}}]
    route:
    - {{destination: {{host: tcp.example.com, port: {{number: 80}}}}, weight: 80}}
    - {{destination: {{host: tcp.example.com, subset: v2, port: {{number: 80}}}}, weight: 20}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: tls-world, namespace: default}}
spec:
  hosts: [tls.example.com, pass.example.com]
  gateways: [istio-system/tcp-gw]
  tls:
  - match: [{{port: 9443, sniHosts: [pass.example.com]}}]
    route: [{{destination: {{host: pass.example.com, port: {{number: 443}}}}}}]
  - match: [{{port: 9443, sniHosts: [tls.example.com]}}]
    route: [{{destination: {{host: pass.example.com, port: {{number: 443}}}}}}]
  tcp:
  - match: [{{port: 9443}}]
    route: [{{destination: {{host: tls.example.com, port: {{number: 443}}}}}}]
"""


def tcp_snapshot() -> Snapshot:
    return Snapshot.build(step_resources(4) + decode(TCP_WORLD, "tcp-world.yaml"))


def test_golden_gateway_tcp() -> None:
    snap = tcp_snapshot()
    _check("gateway-tcp.json", render(translate(snap, gateway_proxy(snap))))
