"""istio.io's task "Egress TLS Origination", replayed on a local mesh.

Page: content/en/docs/tasks/traffic-management/egress/egress-tls-origination/index.md of
istio/istio.io at commit c71712c34d1ec9d110896b1fa872b6b59d66864e (the ServiceEntry with
`targetPort: 443` and a port-80 DestinationRule; snips.sh of the same section read at
45d3718b2b3029f7ea414be2281b998982f56800). `kubectl` -> `meshgate`, the YAML verbatim, the
sleep sample as Istio's, edition.cnn.com the demo world's (docs/world.md). The section
"Mutual TLS origination for egress traffic" (credentialName at the sidecar, with its Role
and RoleBinding) is replayed in test_task_sidecar_mtls_origination.py.
"""

from __future__ import annotations

import pytest

from tests.e2e.istio_task import (
    SLEEP_YAML,
    apply_yaml,
    header_value,
    sleep_exec,
    source_pod,
    status_lines,
    wait_log,
)
from tests.e2e.meshctl import Mesh, retry

pytestmark = pytest.mark.e2e

APPLY_SIMPLE = """apiVersion: networking.istio.io/v1alpha3
kind: ServiceEntry
metadata:
  name: edition-cnn-com
spec:
  hosts:
  - edition.cnn.com
  ports:
  - number: 80
    name: http-port
    protocol: HTTP
  - number: 443
    name: https-port
    protocol: HTTPS
  resolution: DNS
"""
APPLY_ORIGINATION = """apiVersion: networking.istio.io/v1alpha3
kind: ServiceEntry
metadata:
  name: edition-cnn-com
spec:
  hosts:
  - edition.cnn.com
  ports:
  - number: 80
    name: http-port
    protocol: HTTP
    targetPort: 443
  - number: 443
    name: https-port
    protocol: HTTPS
  resolution: DNS
---
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata:
  name: edition-cnn-com
spec:
  host: edition.cnn.com
  trafficPolicy:
    portLevelSettings:
    - port:
        number: 80
      tls:
        mode: SIMPLE # initiates HTTPS when accessing edition.cnn.com
"""


def _politics(mesh: Mesh, pod: str, scheme: str) -> str:
    url = f"{scheme}://edition.cnn.com/politics"
    return sleep_exec(mesh, pod, "curl", "-sSL", "-o", "/dev/null", "-D", "-", url).stdout


def test_egress_tls_origination(mesh: Mesh) -> None:
    # Before you begin (and the access log on, to see where the request went).
    mesh.meshgate("install", "--set", "meshConfig.accessLogFile=/dev/stdout", "-y")
    mesh.meshgate("apply", "-f", str(SLEEP_YAML))
    pod = source_pod(mesh)

    # Configuring access to an external service: a redirect, then the page over HTTPS.
    apply_yaml(mesh, APPLY_SIMPLE)
    ok, out = retry(
        lambda: _politics(mesh, pod, "http"),
        lambda o: status_lines(o) == ["HTTP/1.1 301 Moved Permanently", "HTTP/2 200"],
        20,
    )
    assert ok, out
    assert header_value(out, "location") == ["https://edition.cnn.com/politics"]

    # TLS origination for egress traffic: the same command now gets 200 at once.
    apply_yaml(mesh, APPLY_ORIGINATION)
    ok, out = retry(
        lambda: _politics(mesh, pod, "http"),
        lambda o: status_lines(o) == ["HTTP/1.1 200 OK"],
        20,
    )
    assert ok, out
    assert header_value(out, "content-type") == ["text/html; charset=utf-8"]
    # The sidecar sent it to port 443 (TLS originated there), not to port 80.
    entry = wait_log(
        mesh, pod, {"path": "/politics", "response_code": 200, "authority": "edition.cnn.com"}
    )
    assert entry["upstream_cluster"] == "outbound|80||edition.cnn.com"
    assert entry["upstream_host"] == "198.51.100.30:443"

    # Applications that use HTTPS keep working.
    out = _politics(mesh, pod, "https")
    assert status_lines(out) == ["HTTP/2 200"], out

    # Cleanup the TLS origination configuration.
    mesh.meshgate("delete", "serviceentry", "edition-cnn-com")
    mesh.meshgate("delete", "destinationrule", "edition-cnn-com")
    # Cleanup common configuration.
    mesh.meshgate("delete", "service", "sleep")
    mesh.meshgate("delete", "deployment", "sleep")


# The page's 'Mutual TLS origination for egress traffic' section (credentialName at the
# sidecar, readable through the page's Role and RoleBinding) is replayed in
# test_task_sidecar_mtls_origination.py.
