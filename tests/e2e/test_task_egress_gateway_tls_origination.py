# ruff: noqa: E501 (the page's YAML is kept verbatim, comments included)
"""istio.io's task "Egress Gateways with TLS Origination", replayed on a local mesh.

Page: content/en/docs/tasks/traffic-management/egress/egress-gateway-tls-origination/ of
istio/istio.io, commands and outputs from snips.sh at commit
985554b84f26c6fa8393c5f9e3f5e82e0d3fd23f. `kubectl` -> `meshgate` (its `create secret
tls|generic` and `create configmap --from-file` included), the YAML and nginx.conf verbatim,
`openssl` run as the page runs it in a scratch directory, the sleep sample as Istio's,
edition.cnn.com the demo world's; `my-nginx` runs Debian's nginx for the `nginx` image
(docs/pods.md). Differences (README "Istio task compatibility"): access logs are JSON (the
test reads the page's fields by name); meshgate gives `my-nginx` a sidecar (Istio's page runs it
in a namespace without injection), which passes its TLS port through untouched.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.e2e.istio_task import (
    GATEWAY,
    SLEEP_YAML,
    access_log,
    apply_yaml,
    header_value,
    sleep_exec,
    source_pod,
    status_lines,
    wait_log,
)
from tests.e2e.meshctl import Mesh, meshgate_argv, retry

pytestmark = pytest.mark.e2e

NGINX = "my-nginx.mesh-external.svc.cluster.local"

SE_CNN = """apiVersion: networking.istio.io/v1alpha3
kind: ServiceEntry
metadata:
  name: cnn
spec:
  hosts:
  - edition.cnn.com
  ports:
  - number: 80
    name: http
    protocol: HTTP
  - number: 443
    name: https
    protocol: HTTPS
  resolution: DNS
"""
GW_DR_CNN = """apiVersion: networking.istio.io/v1alpha3
kind: Gateway
metadata:
  name: istio-egressgateway
spec:
  selector:
    istio: egressgateway
  servers:
  - port:
      number: 80
      name: https-port-for-tls-origination
      protocol: HTTPS
    hosts:
    - edition.cnn.com
    tls:
      mode: ISTIO_MUTUAL
---
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata:
  name: egressgateway-for-cnn
spec:
  host: istio-egressgateway.istio-system.svc.cluster.local
  subsets:
  - name: cnn
    trafficPolicy:
      loadBalancer:
        simple: ROUND_ROBIN
      portLevelSettings:
      - port:
          number: 80
        tls:
          mode: ISTIO_MUTUAL
          sni: edition.cnn.com
"""
VS_DR_CNN = """apiVersion: networking.istio.io/v1alpha3
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
          number: 443
      weight: 100
---
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata:
  name: originate-tls-for-edition-cnn-com
spec:
  host: edition.cnn.com
  trafficPolicy:
    loadBalancer:
      simple: ROUND_ROBIN
    portLevelSettings:
    - port:
        number: 443
      tls:
        mode: SIMPLE # initiates HTTPS for connections to edition.cnn.com
"""
NGINX_CONF = r"""events {
}

http {
  log_format main '$remote_addr - $remote_user [$time_local]  $status '
  '"$request" $body_bytes_sent "$http_referer" '
  '"$http_user_agent" "$http_x_forwarded_for"';
  access_log /var/log/nginx/access.log main;
  error_log  /var/log/nginx/error.log;

  server {
    listen 443 ssl;

    root /usr/share/nginx/html;
    index index.html;

    server_name my-nginx.mesh-external.svc.cluster.local;
    ssl_certificate /etc/nginx-server-certs/tls.crt;
    ssl_certificate_key /etc/nginx-server-certs/tls.key;
    ssl_client_certificate /etc/nginx-ca-certs/example.com.crt;
    ssl_verify_client on;
  }
}
"""
NGINX_DEPLOY = """apiVersion: v1
kind: Service
metadata:
  name: my-nginx
  namespace: mesh-external
  labels:
    run: my-nginx
spec:
  ports:
  - port: 443
    protocol: TCP
  selector:
    run: my-nginx
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: my-nginx
  namespace: mesh-external
spec:
  selector:
    matchLabels:
      run: my-nginx
  replicas: 1
  template:
    metadata:
      labels:
        run: my-nginx
    spec:
      containers:
      - name: my-nginx
        image: nginx
        ports:
        - containerPort: 443
        volumeMounts:
        - name: nginx-config
          mountPath: /etc/nginx
          readOnly: true
        - name: nginx-server-certs
          mountPath: /etc/nginx-server-certs
          readOnly: true
        - name: nginx-ca-certs
          mountPath: /etc/nginx-ca-certs
          readOnly: true
      volumes:
      - name: nginx-config
        configMap:
          name: nginx-configmap
      - name: nginx-server-certs
        secret:
          secretName: nginx-server-certs
      - name: nginx-ca-certs
        secret:
          secretName: nginx-ca-certs
"""
GW_DR_NGINX = """apiVersion: networking.istio.io/v1alpha3
kind: Gateway
metadata:
  name: istio-egressgateway
spec:
  selector:
    istio: egressgateway
  servers:
  - port:
      number: 443
      name: https
      protocol: HTTPS
    hosts:
    - my-nginx.mesh-external.svc.cluster.local
    tls:
      mode: ISTIO_MUTUAL
---
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata:
  name: egressgateway-for-nginx
spec:
  host: istio-egressgateway.istio-system.svc.cluster.local
  subsets:
  - name: nginx
    trafficPolicy:
      loadBalancer:
        simple: ROUND_ROBIN
      portLevelSettings:
      - port:
          number: 443
        tls:
          mode: ISTIO_MUTUAL
          sni: my-nginx.mesh-external.svc.cluster.local
"""
VS_NGINX = """apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: direct-nginx-through-egress-gateway
spec:
  hosts:
  - my-nginx.mesh-external.svc.cluster.local
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
        subset: nginx
        port:
          number: 443
      weight: 100
  - match:
    - gateways:
      - istio-egressgateway
      port: 443
    route:
    - destination:
        host: my-nginx.mesh-external.svc.cluster.local
        port:
          number: 443
      weight: 100
"""
DR_MTLS_NGINX = """apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata:
  name: originate-mtls-for-nginx
spec:
  host: my-nginx.mesh-external.svc.cluster.local
  trafficPolicy:
    loadBalancer:
      simple: ROUND_ROBIN
    portLevelSettings:
    - port:
        number: 443
      tls:
        mode: MUTUAL
        credentialName: client-credential # this must match the secret created earlier to hold client certs
        sni: my-nginx.mesh-external.svc.cluster.local
"""


def _sh(cwd: Path, cmd: str) -> None:
    """One of the page's shell lines (openssl), run in the scratch directory."""
    proc = subprocess.run(cmd, shell=True, cwd=cwd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"{cmd}\n{proc.stderr}"


def _enable_egress_gateway(mesh: Mesh) -> None:
    mesh.meshgate(
        "install",
        "--set",
        "components.egressGateways[0].name=istio-egressgateway",
        "--set",
        "components.egressGateways[0].enabled=true",
        "--set",
        "meshConfig.accessLogFile=/dev/stdout",
        "-y",
    )
    mesh.wait_pod("istio-system", "istio-egressgateway-")


def test_tls_origination_with_an_egress_gateway(mesh: Mesh) -> None:
    _enable_egress_gateway(mesh)
    mesh.meshgate("apply", "-f", str(SLEEP_YAML))
    pod = source_pod(mesh)

    apply_yaml(mesh, SE_CNN)
    ok, out = retry(
        lambda: (
            sleep_exec(
                mesh,
                pod,
                "curl",
                "-sSL",
                "-o",
                "/dev/null",
                "-D",
                "-",
                "http://edition.cnn.com/politics",
            ).stdout
        ),
        lambda o: status_lines(o)[:1] == ["HTTP/1.1 301 Moved Permanently"],
        20,
    )
    assert ok, out
    assert header_value(out, "location")[0] == "https://edition.cnn.com/politics"

    apply_yaml(mesh, GW_DR_CNN)
    apply_yaml(mesh, VS_DR_CNN)
    ok, out = retry(
        lambda: (
            sleep_exec(
                mesh,
                pod,
                "curl",
                "-sSL",
                "-o",
                "/dev/null",
                "-D",
                "-",
                "http://edition.cnn.com/politics",
            ).stdout
        ),
        lambda o: status_lines(o) == ["HTTP/1.1 200 OK"],
        20,
    )
    assert ok, out
    # The gateway's log: the request, sent on to the site's port 443 (TLS originated).
    entry = wait_log(
        mesh,
        GATEWAY,
        {"path": "/politics", "upstream_cluster": "outbound|443||edition.cnn.com"},
        namespace="istio-system",
    )
    assert entry["response_code"] == 200 and entry["method"] == "GET"
    assert entry["upstream_host"] == "198.51.100.30:443"
    assert entry["authority"] == "edition.cnn.com"

    # Cleanup the TLS origination example.
    mesh.meshgate("delete", "gateway", "istio-egressgateway")
    mesh.meshgate("delete", "serviceentry", "cnn")
    mesh.meshgate("delete", "virtualservice", "direct-cnn-through-egress-gateway")
    mesh.meshgate("delete", "destinationrule", "originate-tls-for-edition-cnn-com")
    mesh.meshgate("delete", "destinationrule", "egressgateway-for-cnn")
    mesh.meshgate("delete", "service", "sleep")
    mesh.meshgate("delete", "deployment", "sleep")


def test_mutual_tls_origination_with_an_egress_gateway(mesh: Mesh, tmp_path: Path) -> None:
    if subprocess.run(["which", "nginx"], capture_output=True).returncode != 0:
        pytest.skip("needs Debian's nginx for the page's my-nginx (make deps installs it)")
    _enable_egress_gateway(mesh)
    mesh.meshgate("apply", "-f", str(SLEEP_YAML))
    pod = source_pod(mesh)
    work = tmp_path / "page"
    work.mkdir()

    # Generate client and server certificates and keys.
    _sh(
        work,
        "openssl req -x509 -sha256 -nodes -days 365 -newkey rsa:2048 -subj "
        "'/O=example Inc./CN=example.com' -keyout example.com.key -out example.com.crt",
    )
    _sh(
        work,
        f"openssl req -out {NGINX}.csr -newkey rsa:2048 -nodes -keyout {NGINX}.key "
        f'-subj "/CN={NGINX}/O=some organization"',
    )
    _sh(
        work,
        "openssl x509 -req -days 365 -CA example.com.crt -CAkey example.com.key -set_serial 0 "
        f"-in {NGINX}.csr -out {NGINX}.crt",
    )
    _sh(
        work,
        "openssl req -out client.example.com.csr -newkey rsa:2048 -nodes -keyout "
        'client.example.com.key -subj "/CN=client.example.com/O=client organization"',
    )
    _sh(
        work,
        "openssl x509 -req -days 365 -CA example.com.crt -CAkey example.com.key -set_serial 1 "
        "-in client.example.com.csr -out client.example.com.crt",
    )

    # Deploy a mutual TLS server.
    def mg(*args: str) -> str:
        """A meshgate command run where the page's files are (its ./nginx.conf...)."""
        proc = subprocess.run(
            [*mesh.prefix, *meshgate_argv(), *args],
            env=mesh.env,
            cwd=work,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, f"meshgate {' '.join(args)}: {proc.stdout}{proc.stderr}"
        return proc.stdout

    assert mg("create", "namespace", "mesh-external").strip() == "namespace/mesh-external created"
    assert mg(
        "create", "-n", "mesh-external", "secret", "tls", "nginx-server-certs",
        "--key", f"{NGINX}.key", "--cert", f"{NGINX}.crt",
    ).strip() == "secret/nginx-server-certs created"  # fmt: skip
    mg("create", "-n", "mesh-external", "secret", "generic", "nginx-ca-certs",
       "--from-file=example.com.crt")  # fmt: skip
    (work / "nginx.conf").write_text(NGINX_CONF)
    assert mg(
        "create", "configmap", "nginx-configmap", "-n", "mesh-external",
        "--from-file=nginx.conf=./nginx.conf",
    ).strip() == "configmap/nginx-configmap created"  # fmt: skip
    apply_yaml(mesh, NGINX_DEPLOY)
    mesh.wait_pod("mesh-external", "my-nginx-", timeout=90)

    # Configure mutual TLS origination for egress traffic.
    mg("create", "secret", "-n", "istio-system", "generic", "client-credential",
       "--from-file=tls.key=client.example.com.key",
       "--from-file=tls.crt=client.example.com.crt", "--from-file=ca.crt=example.com.crt")  # fmt: skip
    apply_yaml(mesh, GW_DR_NGINX)
    apply_yaml(mesh, VS_NGINX)
    apply_yaml(mesh, DR_MTLS_NGINX, namespace="istio-system")

    ok, proc = retry(
        lambda: sleep_exec(mesh, pod, "curl", "-sS", f"http://{NGINX}"),
        lambda p: "<title>Welcome to nginx!</title>" in p.stdout,
        30,
        interval=0.5,
    )
    assert ok, "\n".join(
        [
            proc.stdout + proc.stderr,
            json.dumps(access_log(mesh, pod)[-1:]),
            json.dumps(access_log(mesh, GATEWAY, "istio-system")[-1:]),
            mesh.meshgate("logs", "deploy/my-nginx", "-n", "mesh-external", check=False).stdout,
        ]
    )
    assert proc.stdout.startswith(
        "<!DOCTYPE html>\n<html>\n<head>\n<title>Welcome to nginx!</title>"
    )
    # The gateway's log: GET / to my-nginx, 200.
    entry = wait_log(
        mesh,
        GATEWAY,
        {"authority": NGINX, "upstream_cluster": f"outbound|443||{NGINX}"},
        namespace="istio-system",
    )
    assert entry["method"] == "GET" and entry["path"] == "/" and entry["response_code"] == 200
    # What nginx checked: the client certificate the gateway presented (its access log
    # shows the request; a client without a certificate is refused).
    nginx_log = mesh.meshgate("logs", "deploy/my-nginx", "-n", "mesh-external", check=False)
    assert '200 "GET / HTTP/1.1"' in nginx_log.stdout, nginx_log.stdout + nginx_log.stderr
    without = mesh.meshgate(
        "exec", "-n", "mesh-external", "deploy/my-nginx", "-c", "my-nginx", "--",
        "curl", "-sk", "https://127.0.0.1/", check=False,
    )  # fmt: skip
    assert "400 No required SSL certificate was sent" in without.stdout, without

    # Cleanup the mutual TLS origination example.
    mg("delete", "secret", "nginx-server-certs", "nginx-ca-certs", "-n", "mesh-external")
    mg("delete", "secret", "client-credential", "-n", "istio-system")
    mg("delete", "configmap", "nginx-configmap", "-n", "mesh-external")
    mg("delete", "service", "my-nginx", "-n", "mesh-external")
    mg("delete", "deployment", "my-nginx", "-n", "mesh-external")
    mg("delete", "namespace", "mesh-external")
    mg("delete", "gateway", "istio-egressgateway")
    mg("delete", "virtualservice", "direct-nginx-through-egress-gateway")
    mg("delete", "destinationrule", "-n", "istio-system", "originate-mtls-for-nginx")
    mg("delete", "destinationrule", "egressgateway-for-nginx")
    mg("delete", "service", "sleep")
    mg("delete", "deployment", "sleep")
