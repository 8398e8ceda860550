"""Mutual TLS inside the mesh, as Istio's "egress gateway with mutual TLS" recipe has it: the
sidecar presents its SPIFFE identity to the egress gateway, which requires it."""

from __future__ import annotations

import datetime
import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.meshctl import WALKTHROUGH, Mesh, meshgate_argv, proxy_certificates, retry

pytestmark = pytest.mark.e2e

GATEWAY_443 = """apiVersion: istio.alibabacloud.com/v1beta1
kind: IstioGateway
metadata: {name: istio-egressgateway, namespace: istio-system}
spec:
  gatewayType: egress
  replicaCount: 1
  ports:
  - {name: http-0, port: 80, protocol: TCP, targetPort: 80}
  - {name: https-0, port: 443, protocol: TCP, targetPort: 443}
"""

RECIPE = """apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: egress-mtls, namespace: default}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: [aliyun.com]
    tls: {mode: ISTIO_MUTUAL}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: egressgateway-for-aliyun, namespace: default}
spec:
  host: istio-egressgateway.istio-system.svc.cluster.local
  subsets:
  - name: aliyun
    trafficPolicy:
      portLevelSettings:
      - port: {number: 443}
        tls: {mode: ISTIO_MUTUAL, sni: aliyun.com}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: aliyun-through-egress, namespace: default}
spec:
  hosts: [aliyun.com]
  gateways: [egress-mtls, mesh]
  http:
  - match: [{gateways: [mesh], port: 80}]
    route:
    - destination:
        host: istio-egressgateway.istio-system.svc.cluster.local
        subset: aliyun
        port: {number: 443}
  - match: [{gateways: [egress-mtls], port: 443}]
    route:
    - destination: {host: aliyun.com, port: {number: 80}}
"""

PLAIN = """apiVersion: v1
kind: Pod
metadata: {name: outsider, annotations: {sidecar.istio.io/inject: "false"}}
spec:
  containers: [{name: c, image: curl, command: [/bin/sleep, infinity]}]
"""


def _last_log(mesh: Mesh, gw: str, needle: str) -> dict[str, object] | None:
    out = mesh.meshgate("-n", "istio-system", "logs", gw, "-c", "istio-proxy").stdout
    lines = [line for line in out.splitlines() if needle in line and line.startswith("{")]
    return json.loads(lines[-1]) if lines else None


def test_sidecar_to_gateway_mutual_tls(mesh: Mesh) -> None:
    mesh.meshgate("apply", "-f", str(WALKTHROUGH / "1-sleep.yaml"))
    mesh.meshgate("apply", "-f", str(WALKTHROUGH / "3-serviceentry.yaml"))  # as Istio's task
    mesh.meshgate("apply", "-f", "-", input=GATEWAY_443)
    mesh.meshgate("apply", "-f", "-", input=RECIPE)
    mesh.meshgate("apply", "-f", "-", input=PLAIN)
    sleep = mesh.wait_pod("default", "sleep-")
    gw = mesh.wait_pod("istio-system", "istio-egressgateway-")
    outsider = mesh.wait_pod("default", "outsider")

    # The seed's request and answer, through an mTLS hop to the gateway.
    def status() -> str:
        out = mesh.curl(sleep, "-I", "http://aliyun.com/").stdout
        return out.splitlines()[0] if out else ""

    # Until the route through the gateway is in place, the sidecar passes the request
    # straight through (ALLOW_ANY): wait for the gateway to log it.
    def through_gateway() -> dict[str, object] | None:
        return _last_log(mesh, gw, "aliyun.com") if status().startswith("HTTP/1.1 301") else None

    ok, entry = retry(through_gateway, lambda e: e is not None, 30, 0.3)
    assert ok and entry is not None, status()
    assert entry["requested_server_name"] == "aliyun.com", entry
    assert entry["upstream_cluster"] == "outbound|80||aliyun.com", entry
    assert entry["response_code"] == 301

    # The gateway's own identity, from the mesh CA.
    out = mesh.meshgate("-n", "istio-system", "proxy-config", "secret", gw).stdout
    assert "default" in out and "ROOTCA" in out, out
    detail = proxy_certificates(
        mesh.meshgate("-n", "istio-system", "proxy-config", "secret", gw, "-o", "json").stdout
    )
    sans = {san for _, names in detail["default"] for san in names}
    assert sans == {"spiffe://cluster.local/ns/istio-system/sa/istio-egressgateway-service-account"}

    # Without a mesh certificate the gateway's 443 lets nobody in.
    gw_ip = mesh.meshgate(
        "-n", "istio-system", "get", "pod", gw, "-o", "jsonpath={.status.podIP}"
    ).stdout.strip()
    proc = mesh.curl(
        outsider, "-k", "--resolve", f"aliyun.com:443:{gw_ip}", "https://aliyun.com/", max_time=3
    )
    assert proc.returncode != 0 and "HTTP/" not in proc.stdout, proc.stdout + proc.stderr


LOOP = (
    "i=0; while [ $i -lt {n} ]; do curl -s -o /dev/null -w '%{{http_code}}\\n' --max-time 3 "
    "http://aliyun.com/; i=$((i+1)); sleep 0.1; done"
)


def _serials(mesh: Mesh, gw: str) -> set[str]:
    out = mesh.meshgate("-n", "istio-system", "proxy-config", "secret", gw, "-o", "json").stdout
    return {serial for serial, _ in proxy_certificates(out)["default"]}


def test_workload_certificates_rotate_under_load(tmp_path: Path) -> None:
    """20 s certificates, re-issued every 10 s, and a root rotation, under a steady curl
    loop through the mTLS gateway: no request fails."""
    from tests.e2e.conftest import _skip_reason

    if reason := _skip_reason():
        pytest.skip(reason)
    mesh = Mesh(tmp_path / "home")
    mesh.meshgate("up", "--world", "demo", "--workload-cert-ttl", "20s")
    try:
        mesh.meshgate("apply", "-f", str(WALKTHROUGH / "1-sleep.yaml"))
        mesh.meshgate("apply", "-f", str(WALKTHROUGH / "3-serviceentry.yaml"))
        mesh.meshgate("apply", "-f", "-", input=GATEWAY_443 + "---\n" + RECIPE)
        sleep = mesh.wait_pod("default", "sleep-")
        gw = mesh.wait_pod("istio-system", "istio-egressgateway-")
        ok, _ = retry(lambda: _last_log(mesh, gw, "aliyun.com"), lambda e: e is not None, 30, 0.3)
        if not ok:  # nothing through the gateway yet: send one request and look again
            mesh.curl(sleep, "-I", "http://aliyun.com/")
        before = _serials(mesh, gw)
        cmd = [*meshgate_argv(), "exec", sleep, "--", "sh", "-c", LOOP.format(n=180)]
        loop = subprocess.Popen(cmd, env=mesh.env, stdout=subprocess.PIPE, text=True)
        try:
            # Meanwhile, the root itself: trusted at once, signing 3 s later, the old root
            # dropped 10 s after that.
            time.sleep(3)
            out = mesh.meshgate("ca", "rotate", "--activate-after", "3s", "--overlap", "10s")
            new_root = out.stdout.split("new root ", 1)[1].split()[0]
            stdout, _ = loop.communicate(timeout=120)
        finally:
            loop.kill()
        codes = stdout.split()
        after = _serials(mesh, gw)
        assert len(codes) == 180 and set(codes) == {"301"}, stdout
        assert before and after and before != after, (before, after)  # re-issued meanwhile
        status = mesh.meshgate("ca", "status").stdout.splitlines()
        assert status == [status[0]] and new_root in status[0] and "signing" in status[0], status
        roots = proxy_certificates(
            mesh.meshgate("-n", "istio-system", "proxy-config", "secret", gw, "-o", "json").stdout
        )
        assert [serial for serial, _ in roots["ROOTCA"]] == [new_root]
        entry = _last_log(mesh, gw, "aliyun.com")
        assert entry is not None and entry["requested_server_name"] == "aliyun.com"
    finally:
        mesh.meshgate("down", "--force", check=False)
        from meshgate.home import mesh_id

        left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert f"mg-{mesh_id(mesh.home)}" not in left, f"namespaces left behind: {left}"


OTHER_NS = """apiVersion: v1
kind: Namespace
metadata: {name: other}
"""

ONLY_DEFAULT = """apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: only-default, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: egressgateway}}
  action: ALLOW
  rules:
  - from: [{source: {namespaces: [default]}}]
"""


def test_gateway_authorizes_by_the_peers_namespace(mesh: Mesh) -> None:
    """The identity mTLS proves is what the gateway's AuthorizationPolicy checks: the same
    request from namespace `default` is let out, from namespace `other` refused."""
    mesh.meshgate("apply", "-f", "-", input=OTHER_NS)
    mesh.meshgate("apply", "-f", str(WALKTHROUGH / "1-sleep.yaml"))
    mesh.meshgate("apply", "-n", "other", "-f", str(WALKTHROUGH / "1-sleep.yaml"))
    mesh.meshgate("apply", "-f", str(WALKTHROUGH / "3-serviceentry.yaml"))
    # The DestinationRule where every namespace's sidecars find it (as in Istio: the client's
    # namespace, the service's, or the root namespace).
    recipe = RECIPE.replace(
        "name: egressgateway-for-aliyun, namespace: default",
        "name: egressgateway-for-aliyun, namespace: istio-system",
    )
    mesh.meshgate("apply", "-f", "-", input=GATEWAY_443 + "---\n" + recipe)
    mine = mesh.wait_pod("default", "sleep-")
    theirs = mesh.wait_pod("other", "sleep-")
    gw = mesh.wait_pod("istio-system", "istio-egressgateway-")

    def answer(pod: str, ns: str) -> str:
        proc = mesh.meshgate(
            "exec", "-n", ns, pod, "--", "curl", "-s", "--max-time", "3",
            "-w", "\\n%{http_code}", "http://aliyun.com/", check=False,
        )  # fmt: skip
        return proc.stdout.strip()

    for pod, ns in ((mine, "default"), (theirs, "other")):
        ok, last = retry(lambda p=pod, n=ns: answer(p, n), lambda a: a.endswith("301"), 30, 0.3)
        assert ok, (ns, last)
    ok, _ = retry(lambda: _last_log(mesh, gw, "aliyun.com"), lambda e: e is not None, 20, 0.3)
    assert ok

    mesh.meshgate("apply", "-f", "-", input=ONLY_DEFAULT)
    ok, last = retry(lambda: answer(theirs, "other"), lambda a: a.endswith("403"), 30, 0.3)
    assert ok, last
    assert last.startswith("RBAC: access denied"), last
    assert answer(mine, "default").endswith("301")


def test_a_users_own_ca_signs_the_mesh(tmp_path: Path) -> None:
    """`up --ca-cert/--ca-key/--ca-root`: the user's intermediate signs every proxy's
    certificate, their root is what proxies trust, and mTLS to the gateway works."""
    from cryptography import x509 as cx509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from tests.e2e.conftest import _skip_reason

    if reason := _skip_reason():
        pytest.skip(reason)

    def make_ca(name: str, issuer: tuple[object, cx509.Certificate] | None = None):  # type: ignore[no-untyped-def]
        key = ec.generate_private_key(ec.SECP256R1())
        subject = cx509.Name([cx509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        signer_key, signer = issuer if issuer else (key, None)
        cert = (
            cx509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(signer.subject if signer else subject)
            .public_key(key.public_key())
            .serial_number(cx509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(cx509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(signer_key, hashes.SHA256())  # type: ignore[arg-type]
        )
        return key, cert

    root = make_ca("corp root")
    inter = make_ca("corp mesh intermediate", root)
    pem = serialization.Encoding.PEM
    (tmp_path / "inter.pem").write_bytes(inter[1].public_bytes(pem))
    (tmp_path / "root.pem").write_bytes(root[1].public_bytes(pem))
    (tmp_path / "inter.key").write_bytes(
        inter[0].private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    mesh = Mesh(tmp_path / "home")
    ca_flags = ["--ca-cert", str(tmp_path / "inter.pem"), "--ca-key", str(tmp_path / "inter.key")]
    wrong = mesh.meshgate("up", *ca_flags[:2], "--ca-key", str(tmp_path / "root.pem"), check=False)
    assert wrong.returncode != 0 and "--ca-cert" in wrong.stderr, wrong.stderr
    mesh.meshgate("up", "--world", "demo", *ca_flags, "--ca-root", str(tmp_path / "root.pem"))
    try:
        serial = format(root[1].serial_number, "x")
        assert serial in mesh.meshgate("ca", "status").stdout
        mesh.meshgate("apply", "-f", str(WALKTHROUGH / "1-sleep.yaml"))
        mesh.meshgate("apply", "-f", str(WALKTHROUGH / "3-serviceentry.yaml"))
        mesh.meshgate("apply", "-f", "-", input=GATEWAY_443 + "---\n" + RECIPE)
        sleep = mesh.wait_pod("default", "sleep-")
        gw = mesh.wait_pod("istio-system", "istio-egressgateway-")

        def through_gateway() -> dict[str, object] | None:
            mesh.curl(sleep, "-I", "http://aliyun.com/")
            return _last_log(mesh, gw, "aliyun.com")

        ok, entry = retry(through_gateway, lambda e: e is not None, 30, 0.3)
        assert ok and entry is not None and entry["requested_server_name"] == "aliyun.com"
        roots = proxy_certificates(
            mesh.meshgate("-n", "istio-system", "proxy-config", "secret", gw, "-o", "json").stdout
        )
        assert [serial for serial, _ in roots["ROOTCA"]] == [serial]
    finally:
        mesh.meshgate("down", "--force", check=False)
