"""A wide configuration touching every translator feature, for unit tests and Envoy validation."""

from __future__ import annotations

from typing import Any

from meshgate.model.snapshot import Snapshot
from tests.golden.seedworld import decode, step_resources

FEATURES = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: httpbin, namespace: default}
spec:
  hosts: [httpbin.org]
  ports: [{number: 80, name: http, protocol: HTTP}, {number: 443, name: https, protocol: HTTPS}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: wiki, namespace: default}
spec:
  hosts: ["*.wikipedia.org"]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: NONE
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: default}
spec:
  hosts: [db.internal.example]
  addresses: [192.0.2.50]
  ports: [{number: 5432, name: tcp-pg, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 192.0.2.51, labels: {version: v1}}, {address: 192.0.2.52, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: rr, namespace: default}
spec:
  hosts: [rr.example.com]
  ports: [{number: 8080, name: http2-x, protocol: HTTP2, targetPort: 8443}]
  resolution: DNS_ROUND_ROBIN
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: httpbin, namespace: default}
spec:
  host: httpbin.org
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    connectionPool:
      tcp: {maxConnections: 10, connectTimeout: 3s}
      http: {http1MaxPendingRequests: 5, maxRequestsPerConnection: 1, maxRetries: 3, idleTimeout: 30s}
    outlierDetection: {consecutive5xxErrors: 3, interval: 5s, baseEjectionTime: 1m, maxEjectionPercent: 50}
    portLevelSettings:
    - port: {number: 443}
      tls: {mode: SIMPLE, sni: httpbin.org, subjectAltNames: [httpbin.org]}
  subsets:
  - name: canary
    labels: {version: v2}
    trafficPolicy: {loadBalancer: {simple: RANDOM}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: db, namespace: default}
spec:
  host: db.internal.example
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
  trafficPolicy:
    tls: {mode: MUTUAL, clientCertificate: /etc/certs/cert.pem, privateKey: /etc/certs/key.pem}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: httpbin, namespace: default}
spec:
  hosts: [httpbin.org]
  http:
  - name: faulty
    match:
    - name: delay
      uri: {prefix: /delay}
      headers: {x-test: {exact: "yes"}, x-present: {}}
      method: {exact: GET}
    fault:
      delay: {fixedDelay: 1s, percentage: {value: 50}}
      abort: {httpStatus: 418, percentage: {value: 10}}
    route: [{destination: {host: httpbin.org}}]
  - name: split
    match: [{uri: {regex: "^/status/[0-9]+$"}, ignoreUriCase: true}]
    timeout: 3s
    retries: {attempts: 3, perTryTimeout: 1s, retryOn: "5xx,503"}
    route:
    - destination: {host: httpbin.org, subset: canary}
      weight: 20
      headers: {request: {set: {x-canary: "1"}}}
    - destination: {host: httpbin.org}
      weight: 80
    headers:
      request: {set: {x-a: b}, add: {x-c: d}, remove: [x-e]}
      response: {set: {x-f: g}}
    mirror: {host: httpbin.org, subset: canary}
    mirrorPercentage: {value: 5}
  - name: moved
    match: [{uri: {exact: /old}}]
    redirect: {uri: /new, authority: httpbin.org, redirectCode: 302}
  - name: teapot
    match: [{uri: {exact: /teapot}, authority: {prefix: httpbin}}]
    directResponse: {status: 418, body: {string: "I'm a teapot"}}
  - name: rewrite
    match: [{uri: {prefix: /v1/}, queryParams: {debug: {exact: "1"}}}]
    rewrite: {uri: /, authority: httpbin.org}
    route: [{destination: {host: httpbin.org, port: {number: 80}}}]
  - route: [{destination: {host: httpbin.org}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: wiki, namespace: default}
spec:
  hosts: ["*.wikipedia.org"]
  gateways: [mesh, istio-system/wiki-gw]
  tls:
  - match: [{gateways: [mesh], port: 443, sniHosts: ["*.wikipedia.org"]}]
    route: [{destination: {host: istio-egressgateway.istio-system.svc.cluster.local, port: {number: 443}}}]
  - match: [{gateways: [istio-system/wiki-gw], port: 443, sniHosts: [en.wikipedia.org]}]
    route: [{destination: {host: en.wikipedia.org, port: {number: 443}}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: wiki-gw, namespace: istio-system}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: 443, name: tls, protocol: TLS}
    hosts: ["*.wikipedia.org"]
    tls: {mode: PASSTHROUGH}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: en-wiki, namespace: default}
spec:
  hosts: [en.wikipedia.org]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
"""


def feature_resources() -> list[Any]:
    return step_resources(4) + decode(FEATURES, "features.yaml")


def feature_snapshot() -> Snapshot:
    return Snapshot.build(feature_resources())
