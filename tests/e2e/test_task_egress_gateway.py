"""istio.io's task "Egress Gateways", replayed on a local mesh.

Page: content/en/docs/tasks/traffic-management/egress/egress-gateway/ of istio/istio.io,
commands and outputs from snips.sh at commit a8ddb0d0da3d550f1490999736fb4e396cdfcc65.
`kubectl` -> `meshgate`, `istioctl install --set X` -> `meshgate install --set X -y`,
`istioctl pc secret` -> `meshgate pc secret`; the Istio-API tab's YAML verbatim; the sleep
sample as Istio's; edition.cnn.com is the demo world's (docs/world.md). Differences (README
"Istio task compatibility"): access logs are JSON (the test reads the page's fields by
name); the page's jq over `pc secret -o json` (Envoy's SecretsConfigDump, in istioctl's
JSON names) is read in Python; the Gateway API tab is not replayed; the
"Apply Kubernetes network policies" section is skipped (meshgate injects every pod: no
namespace without injection for its first half).
"""

from __future__ import annotations

import pytest

from tests.e2e.istio_task import (
    GATEWAY,
    SLEEP_YAML,
    apply_yaml,
    header_value,
    sleep_exec,
    source_pod,
    status_lines,
    wait_log,
)
from tests.e2e.meshctl import Mesh, proxy_certificates, retry

pytestmark = pytest.mark.e2e

GW_SA = "spiffe://cluster.local/ns/istio-system/sa/istio-egressgateway-service-account"

SE_CNN_HTTP = """apiVersion: networking.istio.io/v1alpha3
kind: ServiceEntry
metadata:
  name: cnn
spec:
  hosts:
  - edition.cnn.com
  ports:
  - number: 80
    name: http-port
    protocol: HTTP
  - number: 443
    name: https
    protocol: HTTPS
  resolution: DNS
"""
GW_AND_DR_HTTP = """apiVersion: networking.istio.io/v1alpha3
kind: Gateway
metadata:
  name: istio-egressgateway
spec:
  selector:
    istio: egressgateway
  servers:
  - port:
      number: 80
      name: http
      protocol: HTTP
    hosts:
    - edition.cnn.com
---
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata:
  name: egressgateway-for-cnn
spec:
  host: istio-egressgateway.istio-system.svc.cluster.local
  subsets:
  - name: cnn
"""
VS_HTTP = """apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: direct-cnn-through-egress-gateway
spec:
  hosts:
  - edition.cnn.com
  gateways:
  - istio-egressgateway
  - mesh
  http:
  - match:
    - gateways:
      - mesh
      port: 80
    route:
    - destination:
        host: istio-egressgateway.istio-system.svc.cluster.local
        subset: cnn
        port:
          number: 80
      weight: 100
  - match:
    - gateways:
      - istio-egressgateway
      port: 80
    route:
    - destination:
        host: edition.cnn.com
        port:
          number: 80
      weight: 100
"""
SE_CNN_TLS = """apiVersion: networking.istio.io/v1alpha3
kind: ServiceEntry
metadata:
  name: cnn
spec:
  hosts:
  - edition.cnn.com
  ports:
  - number: 443
    name: tls
    protocol: TLS
  resolution: DNS
"""
HTTPS_ALL = """apiVersion: networking.istio.io/v1alpha3
kind: Gateway
metadata:
  name: istio-egressgateway
spec:
  selector:
    istio: egressgateway
  servers:
  - port:
      number: 443
      name: tls
      protocol: TLS
    hosts:
    - edition.cnn.com
    tls:
      mode: PASSTHROUGH
---
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata:
  name: egressgateway-for-cnn
spec:
  host: istio-egressgateway.istio-system.svc.cluster.local
  subsets:
  - name: cnn
---
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: direct-cnn-through-egress-gateway
spec:
  hosts:
  - edition.cnn.com
  gateways:
  - mesh
  - istio-egressgateway
  tls:
  - match:
    - gateways:
      - mesh
      port: 443
      sniHosts:
      - edition.cnn.com
    route:
    - destination:
        host: istio-egressgateway.istio-system.svc.cluster.local
        subset: cnn
        port:
          number: 443
  - match:
    - gateways:
      - istio-egressgateway
      port: 443
      sniHosts:
      - edition.cnn.com
    route:
    - destination:
        host: edition.cnn.com
        port:
          number: 443
      weight: 100
"""


def _politics(mesh: Mesh, pod: str, scheme: str) -> str:
    """`curl -sSL -o /dev/null -D - SCHEME://edition.cnn.com/politics`: the headers."""
    url = f"{scheme}://edition.cnn.com/politics"
    return sleep_exec(mesh, pod, "curl", "-sSL", "-o", "/dev/null", "-D", "-", url).stdout


def _redirect_then_page(out: str) -> bool:
    return status_lines(out) == ["HTTP/1.1 301 Moved Permanently", "HTTP/2 200"]


def _cleanup(mesh: Mesh) -> None:
    mesh.meshgate("delete", "serviceentry", "cnn")
    mesh.meshgate("delete", "gateway", "istio-egressgateway")
    mesh.meshgate("delete", "virtualservice", "direct-cnn-through-egress-gateway")
    mesh.meshgate("delete", "destinationrule", "egressgateway-for-cnn")


def test_egress_gateways(mesh: Mesh) -> None:
    # Before you begin: sleep, SOURCE_POD, and the access log on (the page's install
    # line; its PILOT_ENABLE_CONFIG_DISTRIBUTION_TRACKING setting means nothing here).
    mesh.meshgate("apply", "-f", str(SLEEP_YAML))
    pod = source_pod(mesh)
    mesh.meshgate("install", "--set", "meshConfig.accessLogFile=/dev/stdout", "-y")

    # Deploy Istio egress gateway: none yet, so enable it as the page's IstioOperator says.
    sel = ["get", "pod", "-l", "istio=egressgateway", "-n", "istio-system"]
    assert "egressgateway" not in mesh.meshgate(*sel, check=False).stdout
    mesh.meshgate(
        "install",
        "--set",
        "components.egressGateways[0].name=istio-egressgateway",
        "--set",
        "components.egressGateways[0].enabled=true",
        "-y",
    )
    mesh.wait_pod("istio-system", "istio-egressgateway-")
    assert "Running" in mesh.meshgate(*sel).stdout

    # Egress gateway for HTTP traffic.
    apply_yaml(mesh, SE_CNN_HTTP)
    ok, out = retry(lambda: _politics(mesh, pod, "http"), _redirect_then_page, 20)
    assert ok, out
    assert header_value(out, "location") == ["https://edition.cnn.com/politics"]
    assert header_value(out, "content-type")[-1] == "text/html; charset=utf-8"

    apply_yaml(mesh, GW_AND_DR_HTTP)
    apply_yaml(mesh, VS_HTTP)
    ok, out = retry(lambda: _politics(mesh, pod, "http"), _redirect_then_page, 20)
    assert ok, out
    assert header_value(out, "location") == ["https://edition.cnn.com/politics"]
    # The gateway's log has the request: it went out through the gateway.
    entry = wait_log(
        mesh, GATEWAY, {"path": "/politics", "response_code": 301}, namespace="istio-system"
    )
    assert entry["method"] == "GET" and entry["authority"] == "edition.cnn.com"
    assert entry["upstream_cluster"] == "outbound|80||edition.cnn.com"
    assert entry["upstream_host"] == "198.51.100.30:80"
    assert str(entry["user_agent"]).startswith("curl/")
    # The sidecar sent it to the gateway, not to the site.
    to_gateway = "outbound|80|cnn|istio-egressgateway.istio-system.svc.cluster.local"
    side = wait_log(mesh, pod, {"path": "/politics", "upstream_cluster": to_gateway})
    assert side["response_code"] == 301

    # The gateway's mesh identity: istioctl pc secret -n istio-system "$(kubectl get pod -l
    # istio=egressgateway -n istio-system -o jsonpath='{.items[0].metadata.name}')" ...
    gw_pod = mesh.meshgate(*sel, "-o", "jsonpath={.items[0].metadata.name}").stdout.strip()
    # | jq '[.dynamicActiveSecrets[] | select(.name == "default")][0].secret.tlsCertificate
    # .certificateChain.inlineBytes' -r | base64 -d | openssl x509 -text -noout
    secrets = proxy_certificates(
        mesh.meshgate("pc", "secret", "-n", "istio-system", gw_pod, "-o", "json").stdout
    )
    ((_, sans),) = secrets["default"]
    assert sans == [GW_SA], secrets

    _cleanup(mesh)

    # Egress gateway for HTTPS traffic.
    apply_yaml(mesh, SE_CNN_TLS)
    ok, out = retry(
        lambda: _politics(mesh, pod, "https"), lambda o: status_lines(o) == ["HTTP/2 200"], 20
    )
    assert ok, out
    assert header_value(out, "content-type") == ["text/html; charset=utf-8"]
    apply_yaml(mesh, HTTPS_ALL)
    ok, out = retry(
        lambda: _politics(mesh, pod, "https"), lambda o: status_lines(o) == ["HTTP/2 200"], 20
    )
    assert ok, out
    # The gateway's log: a TCP entry ("- - -" 0) to the site, by SNI.
    entry = wait_log(
        mesh,
        GATEWAY,
        {"upstream_cluster": "outbound|443||edition.cnn.com"},
        namespace="istio-system",
    )
    assert entry["requested_server_name"] == "edition.cnn.com"
    assert entry["upstream_host"] == "198.51.100.30:443"
    assert entry["method"] is None and entry["response_code"] == 0
    _cleanup(mesh)

    # Cleanup.
    mesh.meshgate("delete", "-f", str(SLEEP_YAML))


@pytest.mark.skip(
    reason="egress-gateway page, 'Apply Kubernetes network policies': its sleep in "
    "test-egress must run without a sidecar (a namespace without istio-injection), and "
    'meshgate injects every pod unless the pod says sidecar.istio.io/inject: "false"; '
    "the page's NetworkPolicy itself is replayed in test_networkpolicy.py"
)
def test_egress_gateways_network_policies() -> None:
    """The page's last section (see the skip reason)."""
