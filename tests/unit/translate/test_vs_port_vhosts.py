"""A mesh VirtualService's routes for a port its service does not listen on get a virtual
host in that port's route configuration (Istio builds VirtualService virtual hosts per
listener port): Istio's egress gateway TLS origination task sends `curl http://my-nginx...`
(port 80) to a Service with port 443 only."""

from __future__ import annotations

from typing import Any

from tests.golden.envoyconf import by_name, vhost
from tests.golden.seedworld import decode, sleep_proxy, step_resources

from meshgate.model.snapshot import Snapshot
from meshgate.translate import translate

NGINX = "my-nginx.mesh-external.svc.cluster.local"
SERVICE = """apiVersion: v1
kind: Namespace
metadata: {name: mesh-external}
---
apiVersion: v1
kind: Service
metadata: {name: my-nginx, namespace: mesh-external}
spec:
  ports: [{port: 443, protocol: TCP}]
  selector: {run: my-nginx}
"""
VS = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: direct-nginx}
spec:
  hosts: [my-nginx.mesh-external.svc.cluster.local]
  http:
  - match: [{port: 80}]
    route:
    - destination: {host: my-nginx.mesh-external.svc.cluster.local, port: {number: 443}}
"""


def _route80(with_vs: bool) -> Any:
    resources = [*step_resources(1), *decode(SERVICE)]
    if with_vs:
        resources.extend(decode(VS))
    snap = Snapshot.build(resources)
    return by_name(translate(snap, sleep_proxy(snap)).routes, "80")


def test_port_80_route_follows_the_virtual_service_of_a_443_only_service() -> None:
    host = vhost(_route80(True), f"{NGINX}:80")
    assert NGINX in host.domains and "my-nginx.mesh-external" in host.domains
    assert [r.route.cluster for r in host.routes] == [f"outbound|443||{NGINX}"]
    assert host.routes[0].decorator.operation == f"{NGINX}:443/*"


def test_without_a_virtual_service_there_is_no_such_host() -> None:
    names = [v.name for v in _route80(False).virtual_hosts]
    assert f"{NGINX}:80" not in names
