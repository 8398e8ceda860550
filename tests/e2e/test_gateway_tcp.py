"""TCP egress through the egress gateway (Istio's gateway TCP servers), on a real mesh.

The sleep pod's plain connections to edition.cnn.com:80 (a ServiceEntry with ``protocol:
TCP`` and the site's address, so the sidecar has a TCP listener for it) go to the egress
gateway by a mesh ``tcp`` route, and the gateway sends the bytes on by its own ``tcp``
route: curl gets the site's HTTP answer through a TCP path, and the gateway's log line is a
tcp_proxy entry (no method, response code 0) with ``upstream_cluster
outbound|80||edition.cnn.com``. First through a plain TCP server, then through a TLS server
with ``tls.mode: ISTIO_MUTUAL`` that ends the mesh's mutual TLS before its ``tcp`` route.
A TCP server no route applies to refuses and logs why.
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
from tests.e2e.meshctl import Mesh, retry

pytestmark = pytest.mark.e2e

GW_HOST = "istio-egressgateway.istio-system.svc.cluster.local"
SE = """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: cnn-tcp}
spec:
  hosts: [edition.cnn.com]
  addresses: [198.51.100.30]
  ports: [{number: 80, name: tcp-80, protocol: TCP}]
  resolution: DNS
"""


def _routes(gw_port: int, mode: str, route_port: int | None = None) -> str:
    """Gateway, DestinationRule and VirtualService for TCP on gateway port ``gw_port``; the
    gateway's tcp route matches ``route_port`` (default: the gateway port)."""
    if mode == "ISTIO_MUTUAL":
        server = f"""  - port: {{number: {gw_port}, name: tls-{gw_port}, protocol: TLS}}
    hosts: [edition.cnn.com]
    tls: {{mode: ISTIO_MUTUAL}}"""
        subset_tls = (
            f"    trafficPolicy:\n      portLevelSettings:\n      - port: {{number: {gw_port}}}\n"
            "        tls: {mode: ISTIO_MUTUAL, sni: edition.cnn.com}"
        )
    else:
        server = f"""  - port: {{number: {gw_port}, name: tcp-{gw_port}, protocol: TCP}}
    hosts: [edition.cnn.com]"""
        subset_tls = ""
    return f"""apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: tcp-egress}}
spec:
  selector: {{istio: egressgateway}}
  servers:
{server}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: egressgateway-for-cnn}}
spec:
  host: {GW_HOST}
  subsets:
  - name: cnn
{subset_tls}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: cnn-tcp-through-egress-gateway}}
spec:
  hosts: [edition.cnn.com]
  gateways: [mesh, tcp-egress]
  tcp:
  - match: [{{gateways: [mesh], port: 80}}]
    route:
    - destination: {{host: {GW_HOST}, subset: cnn, port: {{number: {gw_port}}}}}
  - match: [{{gateways: [tcp-egress], port: {route_port or gw_port}}}]
    route:
    - destination: {{host: edition.cnn.com, port: {{number: 80}}}}
"""


def _curl(mesh: Mesh, pod: str) -> str:
    url = "http://edition.cnn.com/politics"
    return sleep_exec(mesh, pod, "curl", "-sS", "-o", "/dev/null", "-D", "-", url).stdout


def _moved(out: str) -> bool:
    return status_lines(out) == ["HTTP/1.1 301 Moved Permanently"]


def _through_gateway(mesh: Mesh, pod: str, gw_port: int) -> None:
    ok, out = retry(lambda: _curl(mesh, pod), _moved, 30)
    assert ok, out
    assert header_value(out, "server") == ["Varnish"]
    # The gateway's entry is tcp_proxy's: no HTTP fields, the site's cluster and address.
    entry = wait_log(
        mesh,
        GATEWAY,
        {"upstream_cluster": "outbound|80||edition.cnn.com", "method": None},
        namespace="istio-system",
    )
    assert entry["response_code"] == 0
    assert entry["upstream_host"] == "198.51.100.30:80"
    # The sidecar sent the bytes to the gateway, as TCP too.
    to_gateway = f"outbound|{gw_port}|cnn|{GW_HOST}"
    side = wait_log(mesh, pod, {"upstream_cluster": to_gateway})
    assert side["method"] is None and side["response_code"] == 0


def test_tcp_through_the_egress_gateway(mesh: Mesh) -> None:
    mesh.meshgate("apply", "-f", str(SLEEP_YAML))
    pod = source_pod(mesh)
    mesh.meshgate(
        "install",
        "--set",
        "meshConfig.accessLogFile=/dev/stdout",
        "--set",
        "components.egressGateways[0].name=istio-egressgateway",
        "--set",
        "components.egressGateways[0].enabled=true",
        "-y",
    )
    mesh.wait_pod("istio-system", "istio-egressgateway-")
    apply_yaml(mesh, SE)

    # A plain TCP server on the gateway's port 80.
    apply_yaml(mesh, _routes(80, "TCP"))
    _through_gateway(mesh, pod, 80)

    # A TLS server ending the mesh's mutual TLS on 443, then the same tcp route.
    mesh.meshgate("delete", "gateway", "tcp-egress")
    apply_yaml(mesh, _routes(443, "ISTIO_MUTUAL"))
    _through_gateway(mesh, pod, 443)
    entry = wait_log(
        mesh,
        GATEWAY,
        {
            "upstream_cluster": "outbound|80||edition.cnn.com",
            "requested_server_name": "edition.cnn.com",
        },
        namespace="istio-system",
    )
    assert entry["response_code"] == 0

    # No tcp route for the gateway's server: the gateway refuses and says why.
    mesh.meshgate("delete", "gateway", "tcp-egress")
    apply_yaml(mesh, _routes(80, "TCP", route_port=81))
    ok, out = retry(lambda: _curl(mesh, pod), lambda o: not _moved(o), 30)
    assert ok, out
    refused = wait_log(
        mesh, GATEWAY, {"upstream_cluster": "BlackHoleCluster"}, namespace="istio-system"
    )
    status = str(refused["istio_policy_status"])
    assert status.startswith("no tcp route on gateway for port 80 (from "), status
