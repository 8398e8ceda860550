"""VirtualService and DestinationRule behaviour on real Envoy, as a user sees it from a pod:
fault injection, header changes, rewrites, direct responses, and TLS origination by the
sidecar for a plain-HTTP request (the world's https host, verified against the world CA)."""

from __future__ import annotations

import pytest

from tests.e2e.meshctl import WALKTHROUGH, Mesh, retry

pytestmark = pytest.mark.e2e

RULES = """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: httpbin}
spec:
  hosts: [httpbin.org]
  location: MESH_EXTERNAL
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: httpbin}
spec:
  hosts: [httpbin.org]
  http:
  - name: broken
    match: [{uri: {prefix: /broken}}]
    fault: {abort: {httpStatus: 503, percentage: {value: 100}}}
    route: [{destination: {host: httpbin.org}}]
  - name: teapot
    match: [{uri: {exact: /teapot}}]
    rewrite: {uri: /status/418}
    route: [{destination: {host: httpbin.org}}]
  - name: local
    match: [{uri: {exact: /local}}]
    directResponse: {status: 204}
  - name: default
    headers:
      response: {set: {x-meshgate-route: default}}
    route: [{destination: {host: httpbin.org}}]
"""

ORIGINATE = """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: cnn}
spec:
  hosts: [edition.cnn.com]
  location: MESH_EXTERNAL
  ports:
  - {number: 80, name: http, protocol: HTTP, targetPort: 443}
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: cnn}
spec:
  host: edition.cnn.com
  trafficPolicy:
    tls: {mode: SIMPLE, sni: edition.cnn.com, caCertificates: CA_PATH}
"""


def _curl(mesh: Mesh, pod: str, url: str) -> str:
    proc = mesh.curl(pod, "-i", url)
    return proc.stdout + proc.stderr


def _until(mesh: Mesh, pod: str, url: str, status: str, timeout: float = 20.0) -> str:
    ok, out = retry(
        lambda: _curl(mesh, pod, url), lambda o: o.startswith(f"HTTP/1.1 {status}"), timeout
    )
    if not ok:
        raise AssertionError(f"{url}: wanted {status}, last answer:\n{out}")
    return out


def test_virtual_service_rules(mesh: Mesh) -> None:
    mesh.meshgate("apply", "-f", str(WALKTHROUGH / "1-sleep.yaml"))
    sleep = mesh.wait_pod("default", "sleep-")
    mesh.meshgate("apply", "-f", "-", input=RULES)

    out = _until(mesh, sleep, "http://httpbin.org/anything", "200")
    assert "x-meshgate-route: default" in out.lower()
    assert "server: envoy" in out.lower()

    out = _until(mesh, sleep, "http://httpbin.org/broken", "503")
    assert "fault filter abort" in out

    out = _until(mesh, sleep, "http://httpbin.org/teapot", "418")
    assert "-=[ teapot ]=-" in out  # the real httpbin's 418 body

    _until(mesh, sleep, "http://httpbin.org/local", "204")


def test_sidecar_originates_tls(mesh: Mesh) -> None:
    mesh.meshgate("apply", "-f", str(WALKTHROUGH / "1-sleep.yaml"))
    sleep = mesh.wait_pod("default", "sleep-")
    # caCertificates is a path in the proxy's own filesystem (its sandbox), as in Istio's
    # istio-proxy container: the pod's trust bundle, which holds the world CA.
    ca = "/etc/ssl/certs/ca-certificates.crt"
    mesh.meshgate("apply", "-f", "-", input=ORIGINATE.replace("CA_PATH", ca))
    # Plain HTTP from the app; the sidecar speaks TLS to port 443 and verifies the server.
    out = _until(mesh, sleep, "http://edition.cnn.com/", "200")
    assert "CNN (meshgate demo world)" in out
