"""Volumes on a gateway (proxy-only) pod: an IstioGateway's ``secretVolumes`` are mounted
read-only in its Envoy's sandbox, where Envoy (uid 1337) reads them, as Istio's gateway chart
mounts them in ``istio-proxy``. The older form of Istio's "Egress Gateways with TLS
Origination" mutual TLS section works this way: client certificates from Secrets mounted
at ``/etc/istio/nginx-client-certs`` and ``/etc/istio/nginx-ca-certs``, and a
DestinationRule whose ``clientCertificate``/``privateKey``/``caCertificates`` name those
files. (Istio's page patches the Deployment; meshgate's gateway Deployment belongs to its
IstioGateway, so the volumes are the IstioGateway's, ASM's way.)

The server is the nginx world host of ``test_task_sidecar_mtls_origination`` (client
certificates from the page's example.com CA); sleep -> its sidecar -> the gateway (plain
HTTP on port 80) -> nginx (mutual TLS from files).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.meshctl import WALKTHROUGH, Mesh, retry
from tests.e2e.test_task_sidecar_mtls_origination import HOST, skip_reason, write_world

pytestmark = pytest.mark.e2e

GATEWAY = """apiVersion: istio.alibabacloud.com/v1beta1
kind: IstioGateway
metadata:
  name: istio-egressgateway
  namespace: istio-system
spec:
  gatewayType: egress
  replicaCount: 1
  ports:
  - {name: http-0, port: 80, protocol: TCP, targetPort: 80}
  secretVolumes:
  - name: nginx-client-certs
    secretName: nginx-client-certs
    mountPath: /etc/istio/nginx-client-certs
  - name: nginx-ca-certs
    secretName: nginx-ca-certs
    mountPath: /etc/istio/nginx-ca-certs
"""

ROUTES = f"""apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: {{name: nginx}}
spec:
  hosts: [{HOST}]
  ports:
  - {{number: 80, name: http, protocol: HTTP}}
  - {{number: 31443, name: https, protocol: HTTPS}}
  resolution: DNS
---
apiVersion: networking.istio.io/v1beta1
kind: Gateway
metadata: {{name: egress-nginx}}
spec:
  selector: {{istio: egressgateway}}
  servers:
  - port: {{number: 80, name: http, protocol: HTTP}}
    hosts: [{HOST}]
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {{name: direct-nginx-through-egress-gateway}}
spec:
  hosts: [{HOST}]
  gateways: [egress-nginx, mesh]
  http:
  - match: [{{gateways: [mesh], port: 80}}]
    route:
    - destination:
        host: istio-egressgateway.istio-system.svc.cluster.local
        port: {{number: 80}}
  - match: [{{gateways: [egress-nginx], port: 80}}]
    route:
    - destination: {{host: {HOST}, port: {{number: 31443}}}}
---
# In the gateway's namespace only: the files exist in the gateway's sandbox alone.
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {{name: originate-mtls-for-nginx, namespace: istio-system}}
spec:
  host: {HOST}
  exportTo: [.]
  trafficPolicy:
    portLevelSettings:
    - port: {{number: 31443}}
      tls:
        mode: MUTUAL
        clientCertificate: /etc/istio/nginx-client-certs/tls.crt
        privateKey: /etc/istio/nginx-client-certs/tls.key
        caCertificates: /etc/istio/nginx-ca-certs/example.com.crt
        sni: {HOST}
"""


@pytest.fixture
def gw_mesh() -> Iterator[tuple[Mesh, Path]]:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    work = Path(tempfile.mkdtemp(prefix="mg-gateway-volumes-"))
    try:
        write_world(work)
        mesh = Mesh(work / "home")
        try:
            mesh.meshgate("up", "--world", str(work / "world.yaml"), timeout=180)
            yield mesh, work
        finally:
            mesh.meshgate("down", "--force", check=False)
            from meshgate.home import mesh_id

            left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
            assert f"mg-{mesh_id(mesh.home)}" not in left.stdout, left.stdout
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_gateway_reads_client_certificates_from_its_secret_volumes(
    gw_mesh: tuple[Mesh, Path],
) -> None:
    mesh, work = gw_mesh
    mesh.meshgate(
        "create", "secret", "tls", "nginx-client-certs", "-n", "istio-system",
        f"--key={work}/client.example.com.key", f"--cert={work}/client.example.com.crt",
    )  # fmt: skip
    mesh.meshgate(
        "create", "secret", "generic", "nginx-ca-certs", "-n", "istio-system",
        f"--from-file={work}/example.com.crt",
    )  # fmt: skip
    mesh.meshgate("apply", "-f", str(WALKTHROUGH / "1-sleep.yaml"))
    mesh.meshgate("apply", "-f", "-", input=GATEWAY)
    gw = mesh.wait_pod("istio-system", "istio-egressgateway", timeout=90)
    sleep = mesh.wait_pod("default", "sleep", timeout=90)

    # The page's check: the key and certificates are in the gateway's proxy container, and
    # the proxy's user can read them.
    listed = mesh.meshgate(
        "exec", "-n", "istio-system", gw, "--",
        "ls", "/etc/istio/nginx-client-certs", "/etc/istio/nginx-ca-certs",
    )  # fmt: skip
    assert listed.stdout == (
        "/etc/istio/nginx-ca-certs:\nexample.com.crt\n\n"
        "/etc/istio/nginx-client-certs:\ntls.crt\ntls.key\n"
    ), listed.stdout
    key = mesh.meshgate(
        "exec", "-n", "istio-system", gw, "--",
        "head", "-1", "/etc/istio/nginx-client-certs/tls.key",
    )  # fmt: skip
    assert key.stdout.startswith("-----BEGIN PRIVATE KEY-----"), key.stdout
    denied = mesh.meshgate(
        "exec", "-n", "istio-system", gw, "--", "touch", "/etc/istio/nginx-ca-certs/x",
        check=False,
    )  # fmt: skip
    assert denied.returncode != 0 and "Read-only file system" in denied.stderr, denied

    mesh.meshgate("apply", "-f", "-", input=ROUTES)
    ok, last = retry(
        lambda: mesh.curl(sleep, f"http://{HOST}/", max_time=10),
        lambda p: "<title>Welcome to nginx!</title>" in p.stdout,
        timeout=60,
        interval=1,
    )
    assert ok, f"{last.stdout}\n{last.stderr}\n{mesh.log_tail()}"
    access = (mesh.home / "logs" / "world" / HOST / "access.log").read_text().splitlines()
    assert access and access[-1].endswith('"O=client organization,CN=client.example.com"'), access
