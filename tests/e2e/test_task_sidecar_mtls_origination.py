"""Istio's "Egress TLS Origination" task, section "Mutual TLS origination for egress traffic"
(istio/istio.io ``content/en/docs/tasks/traffic-management/egress/egress-tls-origination/
index.md`` at commit 06d49ee50610ec33b4a9513da54c73cd1b824cfd), replayed with ``kubectl``
-> ``meshgate``: the sidecar of ``sleep`` originates mutual TLS with the client certificate
of Secret ``client-credential``, which it gets over SDS only once the page's Role and
RoleBinding let its service account read Secrets.

What differs from the page, and why:
- The mutual TLS server is a world host served by nginx (docs/world.md), named
  ``my-nginx.mesh-external.svc.cluster.local`` and listening on the ServiceEntry's port
  31443, instead of the page's ``my-nginx`` Deployment in namespace ``mesh-external``: the
  ServiceEntry (``resolution: NONE``) sends the sidecar to whatever address the name
  resolves to, so the path through the sidecar is the same. Its nginx.conf is the page's
  with that port, the client's DN in the access log and an index page of its own (Debian's
  nginx ships no ``index.html``).
- The certificates are made with the page's ``openssl`` commands (the "Generate client and
  server certificates and keys" steps it points to); files are given by absolute path.
- The page applies the Role and RoleBinding first. Here the request is made once before
  them too, to show what a user sees without them: the sidecar gets no certificate (Envoy
  waits for it, then fails the connection), and ``analyze`` and ``describe pod`` say why.
- Access logs are on (``accessLogFile: /dev/stdout``, as Istio's demo profile sets it), so
  the proxy's log line for the failure can be checked.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.meshctl import Mesh, retry

pytestmark = pytest.mark.e2e

HOST = "my-nginx.mesh-external.svc.cluster.local"

SLEEP = """apiVersion: v1
kind: ServiceAccount
metadata:
  name: sleep
---
apiVersion: v1
kind: Service
metadata:
  name: sleep
  labels:
    app: sleep
    service: sleep
spec:
  ports:
  - port: 80
    name: http
  selector:
    app: sleep
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: sleep
spec:
  replicas: 1
  selector:
    matchLabels:
      app: sleep
  template:
    metadata:
      labels:
        app: sleep
    spec:
      terminationGracePeriodSeconds: 0
      serviceAccountName: sleep
      containers:
      - name: sleep
        image: curlimages/curl:8.16.0
        command: ["/bin/sleep", "infinity"]
        imagePullPolicy: IfNotPresent
        volumeMounts:
        - mountPath: /etc/sleep/tls
          name: secret-volume
      volumes:
      - name: secret-volume
        secret:
          secretName: sleep-secret
          optional: true
"""

ACCESS_LOG = """apiVersion: meshgate.io/v1alpha1
kind: MeshConfig
metadata: {name: default}
spec: {accessLogFile: /dev/stdout}
"""

SERVICE_ENTRY = """apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata:
  name: originate-mtls-for-nginx
spec:
  exportTo:
  - .
  hosts:
  - my-nginx.mesh-external.svc.cluster.local
  location: MESH_EXTERNAL
  ports:
  - name: http-port-for-tls-origination
    number: 31443
    protocol: HTTP
  resolution: NONE
"""

DESTINATION_RULE = """apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata:
  name: originate-mtls-for-nginx
spec:
  workloadSelector:
    matchLabels:
      app: sleep
  host: my-nginx.mesh-external.svc.cluster.local
  trafficPolicy:
    loadBalancer:
      simple: ROUND_ROBIN
    portLevelSettings:
    - port:
        number: 31443
      tls:
        mode: MUTUAL
        credentialName: client-credential # this must match the secret created earlier to hold \
client certs, and works only when DR has a workloadSelector
        sni: my-nginx.mesh-external.svc.cluster.local
"""

OPENSSL = [
    "req -x509 -sha256 -nodes -days 365 -newkey rsa:2048 -subj /O=example?Inc./CN=example.com"
    " -keyout example.com.key -out example.com.crt",
    f"req -out {HOST}.csr -newkey rsa:2048 -nodes -keyout {HOST}.key"
    f" -subj /CN={HOST}/O=some?organization",
    f"x509 -req -sha256 -days 365 -CA example.com.crt -CAkey example.com.key -set_serial 0"
    f" -in {HOST}.csr -out {HOST}.crt",
    "req -out client.example.com.csr -newkey rsa:2048 -nodes -keyout client.example.com.key"
    " -subj /CN=client.example.com/O=client?organization",
    "x509 -req -sha256 -days 365 -CA example.com.crt -CAkey example.com.key -set_serial 1"
    " -in client.example.com.csr -out client.example.com.crt",
]

NGINX_CONF = f"""events {{
}}

http {{
  log_format main '$remote_addr - $remote_user [$time_local]  $status '
  '"$request" $body_bytes_sent "$http_referer" '
  '"$http_user_agent" "$http_x_forwarded_for" "$ssl_client_s_dn"';
  access_log /var/log/nginx/access.log main;
  error_log  /var/log/nginx/error.log;

  server {{
    listen 31443 ssl;

    root /etc/nginx-html;
    index index.html;

    server_name {HOST};
    ssl_certificate /etc/nginx-server-certs/tls.crt;
    ssl_certificate_key /etc/nginx-server-certs/tls.key;
    ssl_client_certificate /etc/nginx-ca-certs/example.com.crt;
    ssl_verify_client on;
  }}
}}
"""

INDEX = "<!DOCTYPE html>\n<html>\n<head>\n<title>Welcome to nginx!</title>\n</head>\n</html>\n"

WORLD = f"""hosts:
- names: [{HOST}]
  address: 192.0.2.40
  ports: [{{port: 31443, protocol: https}}]
  backend:
    kind: nginx
    config: nginx.conf
    files:
      /etc/nginx-server-certs/tls.crt: {HOST}.crt
      /etc/nginx-server-certs/tls.key: {HOST}.key
      /etc/nginx-ca-certs/example.com.crt: example.com.crt
      /etc/nginx-html/index.html: index.html
"""


def write_world(work: Path) -> None:
    """The page's certificates (its openssl commands), the nginx config and the world."""
    for command in OPENSSL:
        args = [a.replace("?", " ") for a in command.split()]
        subprocess.run(["openssl", *args], cwd=work, check=True, capture_output=True)
    (work / "nginx.conf").write_text(NGINX_CONF)
    (work / "index.html").write_text(INDEX)
    (work / "world.yaml").write_text(WORLD)


def skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root: pods and the world are network namespaces"
    for tool in ("nginx", "openssl", "curl", "bwrap", "iptables"):
        if shutil.which(tool, path="/usr/sbin:/usr/bin:/sbin:/bin") is None:
            return f"needs {tool} (make deps installs it as root)"
    return None


@pytest.fixture
def task_mesh() -> Iterator[tuple[Mesh, Path]]:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    # Not under pytest's tmp_path: world files are read by programs running as nobody.
    work = Path(tempfile.mkdtemp(prefix="mg-sidecar-mtls-"))
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


def _curl(mesh: Mesh, pod: str) -> subprocess.CompletedProcess[str]:
    # The page's command, with a time limit so a waiting proxy cannot hang the test.
    return mesh.meshgate(
        "exec", pod, "-c", "sleep", "--", "curl", "-sS", "--max-time", "10",
        f"http://{HOST}:31443", check=False,
    )  # fmt: skip


def test_sidecar_originates_mutual_tls_once_rbac_lets_it_read_the_secret(
    task_mesh: tuple[Mesh, Path],
) -> None:
    mesh, work = task_mesh
    # Istio's demo profile logs every request at the proxies (meshConfig.accessLogFile).
    mesh.meshgate("apply", "-f", "-", input=ACCESS_LOG)
    mesh.meshgate("apply", "-f", "-", input=SLEEP)
    pod = mesh.wait_pod("default", "sleep", timeout=90)

    created = mesh.meshgate(
        "create", "secret", "generic", "client-credential",
        f"--from-file=tls.key={work}/client.example.com.key",
        f"--from-file=tls.crt={work}/client.example.com.crt",
        f"--from-file=ca.crt={work}/example.com.crt",
    )  # fmt: skip
    assert created.stdout == "secret/client-credential created\n"
    mesh.meshgate("apply", "-f", "-", input=SERVICE_ENTRY)
    mesh.meshgate("apply", "-f", "-", input=DESTINATION_RULE)

    # Without the Role and RoleBinding: no client certificate reaches the sidecar. Envoy
    # waits for it (SDS initial fetch, 15 s), then fails each connection for want of it.
    failed, last = retry(
        lambda: _curl(mesh, pod),
        lambda p: "reset reason: remote connection failure" in p.stdout,
        timeout=60,
        interval=2,
    )
    assert failed, f"{last.stdout}\n{last.stderr}\n{mesh.log_tail()}"
    assert last.stdout == (
        "upstream connect error or disconnect/reset before headers. retried and the latest "
        "reset reason: remote connection failure"
    )
    logged, proxy_log = retry(
        lambda: mesh.meshgate("logs", pod, "-c", "istio-proxy", check=False).stdout,
        lambda out: (
            '"upstream_transport_failure_reason":"TLS_error:_Secret_is_not_supplied_by_SDS"' in out
        ),
        timeout=10,
    )
    assert logged, proxy_log[-3000:]
    (line,) = [ln for ln in proxy_log.splitlines() if "Secret_is_not_supplied" in ln][-1:]
    assert '"response_code":503' in line and '"response_flags":"URX,UF"' in line, line
    status = mesh.meshgate("proxy-status", pod).stdout
    (sds,) = [row.split() for row in status.splitlines() if row.startswith("SDS ")]
    assert sds[5] == "kubernetes://client-credential", status  # MISSING: the key, not the CA

    # The control plane logs what it withheld, in istiod's words.
    cp_log = (mesh.home / "control-plane.log").read_text()
    assert (
        f"proxy {pod}.default attempted to access unauthorized certificates client-credential: "
        "sleep/default is not authorized to read secrets: "
    ) in cp_log, mesh.log_tail()

    analyzed = mesh.meshgate("analyze", check=False)
    assert analyzed.returncode != 0
    assert (
        "Error [MG2005] (DestinationRule default/originate-mtls-for-nginx) credentialName "
        '"client-credential" is not delivered to the sidecars of pod sleep-'
    ) in analyzed.stdout, analyzed.stdout
    assert "service account default/sleep may not list Secrets in namespace default" in (
        analyzed.stdout
    )
    described = mesh.meshgate("describe", "pod", pod).stdout
    assert (
        "  Secrets:      not readable: sleep/default is not authorized to read secrets"
    ) in described, described
    assert (
        "    credentialName client-credential (DestinationRule originate-mtls-for-nginx): "
        "not delivered"
    ) in described, described

    # The page's RBAC, verbatim.
    role = mesh.meshgate(
        "create", "role", "client-credential-role", "--resource=secret", "--verb=get,list,watch"
    )
    assert role.stdout == "role.rbac.authorization.k8s.io/client-credential-role created\n"
    binding = mesh.meshgate(
        "create", "rolebinding", "client-credential-role-binding",
        "--role=client-credential-role", "--serviceaccount=default:sleep",
    )  # fmt: skip
    assert binding.stdout == (
        "rolebinding.rbac.authorization.k8s.io/client-credential-role-binding created\n"
    )

    ok, last = retry(
        lambda: _curl(mesh, pod),
        lambda p: "<title>Welcome to nginx!</title>" in p.stdout,
        timeout=60,
        interval=1,
    )
    assert ok, f"{last.stdout}\n{last.stderr}\n{mesh.log_tail()}"
    assert last.stdout.startswith("<!DOCTYPE html>\n<html>\n<head>\n<title>Welcome to nginx!")
    # nginx checked the client certificate the sidecar presented: the page's client's.
    access = mesh.home / "logs" / "world" / HOST / "access.log"
    lines = [ln for ln in access.read_text().splitlines() if '"GET / HTTP/1.1"' in ln]
    assert lines and ' 200 "GET / HTTP/1.1"' in lines[-1], lines
    assert lines[-1].endswith('"O=client organization,CN=client.example.com"'), lines

    clean = mesh.meshgate("analyze", check=False)
    assert "MG2005" not in clean.stdout, clean.stdout
    described = mesh.meshgate("describe", "pod", pod).stdout
    assert (
        "  Secrets:      readable: RoleBinding default/client-credential-role-binding "
        "(Role client-credential-role)"
    ) in described, described
