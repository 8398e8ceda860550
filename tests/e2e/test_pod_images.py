"""Pods run their images' programs: nginx and squid with their ConfigMaps and Secrets, env
from ConfigMaps and Secrets, and the kubelet's waiting reasons when an image or an object is
missing. Every check is what a user sees: curl's output, `meshgate exec`, `get`/`describe`.
"""

from __future__ import annotations

import datetime
import os
import uuid
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.e2e.meshctl import Mesh, retry

pytestmark = pytest.mark.e2e


def _need(*programs: str) -> None:
    missing = [p for p in programs if not os.path.exists(p)]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (make deps installs them as root)")


def _pod(mesh: Mesh, namespace: str, prefix: str) -> str:
    return mesh.wait_pod(namespace, prefix, timeout=60)


def _exec(mesh: Mesh, pod: str, *argv: str, namespace: str = "default") -> str:
    proc = mesh.meshgate("exec", "-n", namespace, pod, "--", *argv, check=False)
    return proc.stdout + proc.stderr


NGINX = """
apiVersion: v1
kind: ConfigMap
metadata: {name: site-conf}
data:
  nginx.conf: |
    events {}
    http {
      access_log /var/log/nginx/access.log;
      server {
        listen 8080;
        location / { default_type text/plain; return 200 "served by $hostname from site-conf\\n"; }
      }
    }
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: site}
spec:
  selector: {matchLabels: {app: site}}
  template:
    metadata: {labels: {app: site}}
    spec:
      containers:
      - name: nginx
        image: docker.io/library/nginx:1.25
        ports: [{containerPort: 8080}]
        volumeMounts: [{name: conf, mountPath: /etc/nginx, readOnly: true}]
      volumes: [{name: conf, configMap: {name: site-conf}}]
---
apiVersion: v1
kind: Service
metadata: {name: site}
spec:
  selector: {app: site}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: client}
spec:
  selector: {matchLabels: {app: client}}
  template:
    metadata: {labels: {app: client}}
    spec:
      containers: [{name: curl, image: curlimages/curl:8.16.0, command: [/bin/sleep, infinity]}]
"""

# The http-proxy task's squid, its ConfigMap as the page writes it (port 3128).
SQUID = """
apiVersion: v1
kind: Namespace
metadata: {name: external}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: proxy-configmap, namespace: external}
data:
  squid.conf: |
    http_port 3128

    acl SSL_ports port 443
    acl CONNECT method CONNECT

    http_access deny CONNECT !SSL_ports
    http_access allow localhost manager
    http_access deny manager
    http_access allow all

    coredump_dir /var/spool/squid
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: squid, namespace: external}
spec:
  replicas: 1
  selector: {matchLabels: {app: squid}}
  template:
    metadata:
      labels: {app: squid}
      annotations: {sidecar.istio.io/inject: "false"}
    spec:
      volumes:
      - name: proxy-config
        configMap: {name: proxy-configmap}
      containers:
      - name: squid
        image: ubuntu/squid:5.2-22.04_beta
        imagePullPolicy: IfNotPresent
        volumeMounts:
        - name: proxy-config
          mountPath: /etc/squid
          readOnly: true
"""


def test_nginx_serves_its_configmap_through_the_mesh_and_squid_proxies_to_it(
    mesh: Mesh,
) -> None:
    _need("/usr/sbin/nginx", "/usr/sbin/squid")
    mesh.meshgate("apply", "-f", "-", input=NGINX + "---" + SQUID)
    site = _pod(mesh, "default", "site-")
    client = _pod(mesh, "default", "client-")
    squid = _pod(mesh, "external", "squid-")

    # nginx runs the ConfigMap's nginx.conf; curl reaches it through both sidecars.
    ok, out = retry(lambda: mesh.curl(client, "http://site/"), lambda p: p.returncode == 0, 20)
    assert ok and out.stdout == f"served by {site} from site-conf\n", out
    assert "GET / HTTP/1.1" in mesh.meshgate("logs", site).stdout  # access.log is its output

    # squid, as the task deploys it: an HTTP proxy on 3128, its access.log in the pod.
    ip = mesh.meshgate(
        "get", "pod", "-n", "external", squid, "-o", "jsonpath={.status.podIP}"
    ).stdout.strip()
    ok, out = retry(
        lambda: mesh.curl(
            client, "-x", f"http://{ip}:3128", "http://site.default.svc.cluster.local/"
        ),
        lambda p: p.returncode == 0 and "from site-conf" in p.stdout,
        20,
    )
    assert ok, out
    log = _exec(mesh, squid, "tail", "/var/log/squid/access.log", namespace="external")
    assert "GET http://site.default.svc.cluster.local/" in log, log
    assert "TCP_MISS/200" in log, log


def _pem(obj: x509.Certificate) -> str:
    return obj.public_bytes(serialization.Encoding.PEM).decode()


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _cert(
    name: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    signer: ec.EllipticCurvePrivateKey,
    ca: bool,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    b = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
    return b.sign(signer, hashes.SHA256())


def _tls_secret(name: str, namespace: str, data: dict[str, str]) -> str:
    lines = "\n".join(
        f"  {k}: |\n" + "".join(f"    {line}\n" for line in v.splitlines()) for k, v in data.items()
    )
    meta = f"metadata: {{name: {name}, namespace: {namespace}}}"
    return f"apiVersion: v1\nkind: Secret\n{meta}\ntype: Opaque\nstringData:\n{lines}"


def test_my_nginx_requires_a_client_certificate_from_its_secret(mesh: Mesh) -> None:
    """The mutual TLS task's my-nginx: nginx.conf from a ConfigMap, its certificate and the
    CA it checks clients against from Secrets, mounted where the task mounts them."""
    _need("/usr/sbin/nginx")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-ca")])
    ca = _cert("test-ca", ca_key, ca_name, ca_key, ca=True)
    server_key, client_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    server = _cert(
        "my-nginx.mesh-external.svc.cluster.local", server_key, ca_name, ca_key, ca=False
    )
    client = _cert("client.example.com", client_key, ca_name, ca_key, ca=False)
    conf = """events {
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
    conf_lines = "".join(f"    {line}\n" for line in conf.splitlines())
    docs = [
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: mesh-external}",
        _tls_secret(
            "nginx-server-certs",
            "mesh-external",
            {"tls.crt": _pem(server), "tls.key": _key_pem(server_key)},
        ),
        _tls_secret("nginx-ca-certs", "mesh-external", {"example.com.crt": _pem(ca)}),
        _tls_secret(
            "client-credential",
            "default",
            {"tls.crt": _pem(client), "tls.key": _key_pem(client_key), "ca.crt": _pem(ca)},
        ),
        "apiVersion: v1\nkind: ConfigMap\n"
        "metadata: {name: nginx-configmap, namespace: mesh-external}\n"
        f"data:\n  nginx.conf: |\n{conf_lines}",
        """apiVersion: v1
kind: Service
metadata:
  name: my-nginx
  namespace: mesh-external
  labels: {run: my-nginx}
spec:
  ports:
  - port: 443
    protocol: TCP
  selector: {run: my-nginx}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: my-nginx, namespace: mesh-external}
spec:
  selector: {matchLabels: {run: my-nginx}}
  replicas: 1
  template:
    metadata: {labels: {run: my-nginx}}
    spec:
      containers:
      - name: my-nginx
        image: nginx
        ports: [{containerPort: 443}]
        volumeMounts:
        - {name: nginx-config, mountPath: /etc/nginx, readOnly: true}
        - {name: nginx-server-certs, mountPath: /etc/nginx-server-certs, readOnly: true}
        - {name: nginx-ca-certs, mountPath: /etc/nginx-ca-certs, readOnly: true}
      volumes:
      - {name: nginx-config, configMap: {name: nginx-configmap}}
      - {name: nginx-server-certs, secret: {secretName: nginx-server-certs}}
      - {name: nginx-ca-certs, secret: {secretName: nginx-ca-certs}}
---
apiVersion: v1
kind: Pod
metadata: {name: tester, annotations: {sidecar.istio.io/inject: "false"}}
spec:
  containers:
  - name: curl
    image: curlimages/curl
    command: [/bin/sleep, infinity]
    volumeMounts: [{name: creds, mountPath: /etc/client-certs, readOnly: true}]
  volumes: [{name: creds, secret: {secretName: client-credential, defaultMode: 0400}}]""",
    ]
    mesh.meshgate("apply", "-f", "-", input="\n---\n".join(docs))
    _pod(mesh, "mesh-external", "my-nginx-")
    tester = _pod(mesh, "default", "tester")
    url = "https://my-nginx.mesh-external.svc.cluster.local"
    creds = ["--cacert", "/etc/client-certs/ca.crt"]
    with_cert = [
        *creds,
        "--cert",
        "/etc/client-certs/tls.crt",
        "--key",
        "/etc/client-certs/tls.key",
    ]
    ok, out = retry(
        lambda: mesh.curl(tester, *with_cert, url),
        lambda p: "<title>Welcome to nginx!</title>" in p.stdout,
        20,
    )
    assert ok, out
    out = mesh.curl(tester, *creds, url)
    assert "<title>400 No required SSL certificate was sent</title>" in out.stdout, out


def test_secret_and_configmap_files_and_env_inside_the_pod_only(mesh: Mesh) -> None:
    tag = uuid.uuid4().hex[:8]
    mount = f"/etc/mg-e2e-{tag}"
    manifest = f"""
apiVersion: v1
kind: ConfigMap
metadata: {{name: settings}}
data: {{LEVEL: debug, greeting.txt: "hello\\n"}}
---
apiVersion: v1
kind: Secret
metadata: {{name: token}}
type: Opaque
data: {{value: c2VjcmV0LXZhbHVl, other: b3RoZXI=}}
---
apiVersion: v1
kind: Pod
metadata: {{name: reader, annotations: {{sidecar.istio.io/inject: "false"}}}}
spec:
  containers:
  - name: app
    image: busybox
    command: [/bin/sleep, infinity]
    envFrom: [{{configMapRef: {{name: settings}}, prefix: CFG_}}]
    env:
    - {{name: TOKEN, valueFrom: {{secretKeyRef: {{name: token, key: value}}}}}}
    - {{name: MISSING_OK, valueFrom: {{configMapKeyRef: {{name: nope, key: x, optional: true}}}}}}
    - {{name: COMBINED, value: "$(CFG_LEVEL)-$(TOKEN)-$$(LITERAL)"}}
    - {{name: POD, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}
    volumeMounts:
    - {{name: secret, mountPath: {mount}}}
    - {{name: conf, mountPath: /opt/conf/greeting.txt, subPath: greeting.txt}}
  volumes:
  - name: secret
    secret:
      secretName: token
      defaultMode: 0440
      items: [{{key: value, path: nested/token}}, {{key: other, path: other, mode: 0400}}]
  - {{name: conf, configMap: {{name: settings}}}}
"""
    mesh.meshgate("apply", "-f", "-", input=manifest)
    pod = _pod(mesh, "default", "reader")
    out = _exec(
        mesh,
        pod,
        "sh",
        "-c",
        f"cat {mount}/nested/token; echo; "
        f"stat -c '%a %U %n' {mount}/nested/token {mount}/other; ls {mount}",
    )
    assert out.splitlines() == [
        "secret-value",
        f"440 root {mount}/nested/token",
        f"400 root {mount}/other",
        "nested",
        "other",
    ], out
    assert not Path(mount).exists()  # inside the sandbox only, never on the host
    assert _exec(mesh, pod, "cat", "/opt/conf/greeting.txt") == "hello\n"
    out = _exec(mesh, pod, "sh", "-c", f"touch {mount}/x")
    assert "Read-only file system" in out, out  # secret volumes are read-only
    env = _exec(mesh, pod, "env").splitlines()
    assert "CFG_LEVEL=debug" in env and "TOKEN=secret-value" in env, env
    assert "COMBINED=debug-secret-value-$(LITERAL)" in env, env
    assert f"POD={pod}" in env, env
    assert not any(e.startswith("MISSING_OK=") for e in env), env


UNKNOWN = """
apiVersion: v1
kind: Pod
metadata: {name: mystery, annotations: {sidecar.istio.io/inject: "false"}}
spec:
  containers: [{name: app, image: registry.example.com/team/mystery:2.0}]
---
apiVersion: v1
kind: Pod
metadata: {name: needs-config, annotations: {sidecar.istio.io/inject: "false"}}
spec:
  containers:
  - name: app
    image: busybox
    command: [/bin/sleep, infinity]
    env: [{name: MODE, valueFrom: {configMapKeyRef: {name: later, key: mode}}}]
"""


def test_an_unknown_image_or_a_missing_configmap_waits_as_the_kubelet_says(mesh: Mesh) -> None:
    mesh.meshgate("apply", "-f", "-", input=UNKNOWN)

    def pods() -> str:
        return mesh.meshgate("get", "pods").stdout

    ok, out = retry(
        pods,
        lambda s: "ErrImagePull" in s and "CreateContainerConfigError" in s,
        30,
    )
    assert ok, out
    line = next(line for line in out.splitlines() if line.startswith("mystery"))
    assert line.split()[1:3] == ["0/1", "ErrImagePull"], line
    described = mesh.meshgate("describe", "pod", "mystery").stdout
    assert "Reason:   ErrImagePull" in described, described
    assert 'Failed to pull image "registry.example.com/team/mystery:2.0"' in described
    assert str(mesh.home / "images.yaml") in described, described
    assert "Phase:   Pending" in described, described
    described = mesh.meshgate("describe", "pod", "needs-config").stdout
    assert 'configmap "later" not found' in described, described

    # Once the ConfigMap exists, the container is created; mapping the image in the
    # user's table makes the other run at its next pull.
    mesh.meshgate(
        "apply", "-f", "-",
        input="apiVersion: v1\nkind: ConfigMap\nmetadata: {name: later}\ndata: {mode: fast}\n",
    )  # fmt: skip
    pod = _pod(mesh, "default", "needs-config")
    assert "MODE=fast" in _exec(mesh, pod, "env").splitlines()
    (mesh.home / "images.yaml").write_text(
        "images:\n  registry.example.com/team/mystery:\n    like: busybox\n"
        "    cmd: [sleep, infinity]\n"
    )
    mesh.meshgate("delete", "pod", "mystery")
    mesh.meshgate("apply", "-f", "-", input=UNKNOWN)
    _pod(mesh, "default", "mystery")
