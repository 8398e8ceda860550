"""Kubernetes Services beyond selectors, as snapshot input: a selector-less Service backed by
Endpoints and by an EndpointSlice (world addresses), ExternalName Services (one aliasing a
ServiceEntry, one aliasing a Service), and a headless Service with two pods.

Rules: fixed names and addresses, so translated output is stable for golden files.
"""

from __future__ import annotations

from typing import Any

from meshgate.model.snapshot import Snapshot
from tests.golden.seedworld import decode, pod, step_resources

KUBE = """apiVersion: v1
kind: Service
metadata: {name: legacy, namespace: default}
spec:
  clusterIP: 10.96.20.20
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: legacy, namespace: default}
subsets:
- addresses: [{ip: 198.51.100.10}]
  notReadyAddresses: [{ip: 198.51.100.99}]
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: default}
spec:
  clusterIP: 10.96.20.21
  ports: [{name: tcp-db, port: 5432}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: db-abc
  namespace: default
  labels: {kubernetes.io/service-name: db}
addressType: IPv4
endpoints:
- addresses: [198.51.100.30]
- addresses: [198.51.100.31]
  conditions: {ready: false}
ports: [{name: tcp-db, port: 5433}]
---
apiVersion: v1
kind: Service
metadata: {name: aliyun, namespace: default}
spec:
  type: ExternalName
  externalName: aliyun.com
---
apiVersion: v1
kind: Service
metadata: {name: legacy-alias, namespace: default}
spec:
  type: ExternalName
  externalName: legacy.default.svc.cluster.local
  ports: [{port: 9999}]
---
apiVersion: v1
kind: Service
metadata: {name: stateful, namespace: default}
spec:
  clusterIP: None
  selector: {app: stateful}
  ports:
  - {name: http, port: 8080}
  - {name: tcp-peer, port: 7000}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: aliyun-tls, namespace: default}
spec:
  hosts: [aliyun.com]
  location: MESH_EXTERNAL
  ports:
  - {number: 80, name: http, protocol: HTTP}
  - {number: 443, name: tls, protocol: TLS}
  resolution: DNS
"""

STATEFUL = (("stateful-0", "10.34.0.40"), ("stateful-1", "10.34.0.41"))


def kube_resources() -> list[Any]:
    """The seed's step 2 (REGISTRY_ONLY, sleep pod) plus the Services above and their pods."""
    resources = step_resources(2) + decode(KUBE, "kube.yaml")
    for name, ip in STATEFUL:
        p = pod(name, "default", ip, {"app": "stateful", "security.istio.io/tlsMode": "istio"})
        wire = p.to_wire()
        wire["spec"]["hostname"] = name
        wire["spec"]["subdomain"] = "stateful"
        resources.append(decode_one(wire))
    return resources


def decode_one(obj: dict[str, Any]) -> Any:
    from meshgate.api.decode import decode_object

    resource, problems = decode_object(obj)
    assert resource is not None, problems
    return resource


def kube_snapshot() -> Snapshot:
    return Snapshot.build(kube_resources())
