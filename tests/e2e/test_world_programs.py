"""World hosts served by real programs: nginx requiring client certificates from a CA the
user gives (made here), and squid as an HTTP CONNECT proxy whose access log the user reads.
Driven from the node's namespace (where pods' traffic goes out), on a world file of our own."""

from __future__ import annotations

import datetime
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from meshgate.runtime import netns, procs, worldprocs
from meshgate.runtime.node import Node
from meshgate.runtime.world import load_world
from tests.e2e.test_runtime_support import state_dir

pytestmark = pytest.mark.e2e

NGINX_CONF = """events {
}
http {
  log_format main '$remote_addr [$time_local] $status "$request" "$ssl_client_s_dn"';
  access_log /var/log/nginx/access.log main;
  error_log  /var/log/nginx/error.log;
  server {
    listen 443 ssl;
    listen [::]:443 ssl;
    server_name my-nginx.example.org;
    ssl_certificate /srv/meshgate-world/tls.crt;
    ssl_certificate_key /srv/meshgate-world/tls.key;
    ssl_client_certificate /etc/nginx-ca-certs/example.com.crt;
    ssl_verify_client on;
    location / { return 200 "hello $ssl_client_s_dn\\n"; }
  }
}
"""
WORLD = """hosts:
- names: [my-nginx.example.org]
  address: 192.0.2.40
  ports: [{port: 443, protocol: https}]
  backend:
    kind: nginx
    config: nginx.conf
    files:
      /etc/nginx-ca-certs/example.com.crt: ca.crt
- names: [proxy.example.org]
  address: 192.0.2.41
  backend: {kind: squid}
"""


def _skip() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: the world is a network namespace")
    for tool in ("nginx", "squid", "bwrap", "curl"):
        if shutil.which(tool, path="/usr/sbin:/usr/bin:/sbin:/bin") is None:
            pytest.skip(f"needs {tool} (make deps installs it as root)")


def _cert(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name | None, signer: object
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), True)
    )
    return builder.sign(signer, hashes.SHA256())  # type: ignore[arg-type]


def _pem(obj: x509.Certificate | ec.EllipticCurvePrivateKey) -> bytes:
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(serialization.Encoding.PEM)
    return obj.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _files(d: Path) -> None:
    """A client CA (for nginx) and a client certificate it signed, and one it did not."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("example.com", ca_key, None, ca_key)
    good_key = ec.generate_private_key(ec.SECP256R1())
    good = _cert("sleep.client", good_key, ca.subject, ca_key)
    rogue_key = ec.generate_private_key(ec.SECP256R1())
    rogue = _cert("rogue.client", rogue_key, None, rogue_key)
    (d / "ca.crt").write_bytes(_pem(ca))
    for name, cert, key in (("client", good, good_key), ("rogue", rogue, rogue_key)):
        (d / f"{name}.crt").write_bytes(_pem(cert))
        (d / f"{name}.key").write_bytes(_pem(key))
    (d / "nginx.conf").write_text(NGINX_CONF)
    (d / "world.yaml").write_text(WORLD)


def _curl(node: Node, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*netns.exec_prefix(node.netns), "curl", "-sS", "--max-time", "5", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_nginx_requires_a_client_cert_and_squid_logs_connect(tmp_path: Path) -> None:
    _skip()
    _files(tmp_path)
    with state_dir() as state:
        node = Node(state)
        node.up(load_world(tmp_path / "world.yaml"))
        ca = str(state / "world" / "ca.pem")
        target = ("--cacert", ca, "--resolve", "my-nginx.example.org:443:192.0.2.40")
        url = "https://my-nginx.example.org/"

        bare = _curl(node, *target, "-o", "/dev/null", "-w", "%{http_code}", url)
        assert bare.stdout == "400", bare  # "No required SSL certificate was sent"
        rogue = _curl(
            node, *target, "--cert", str(tmp_path / "rogue.crt"),
            "--key", str(tmp_path / "rogue.key"), "-o", "/dev/null", "-w", "%{http_code}", url,
        )  # fmt: skip
        assert rogue.stdout == "400", rogue  # "The SSL certificate error"
        good = _curl(
            node, *target, "--cert", str(tmp_path / "client.crt"),
            "--key", str(tmp_path / "client.key"), url,
        )  # fmt: skip
        assert good.stdout == "hello CN=sleep.client\n", good
        logs = state / "logs" / "world"
        access = (logs / "my-nginx.example.org" / "access.log").read_text()
        assert '200 "GET / HTTP/1.1" "CN=sleep.client"' in access, access

        # squid: an HTTPS request through it is a CONNECT line in its access log.
        via = _curl(node, "-x", "http://proxy.example.org:3128", "--cacert", ca,
                    "--cert", str(tmp_path / "client.crt"), "--key", str(tmp_path / "client.key"),
                    "--resolve", "proxy.example.org:3128:192.0.2.41", url)  # fmt: skip
        assert via.stdout == "hello CN=sleep.client\n", via
        squid_log = (logs / "proxy.example.org" / "access.log").read_text()
        assert "TCP_TUNNEL/200" in squid_log and "CONNECT my-nginx.example.org:443" in squid_log

        # Unprivileged: nginx's and squid's processes are nobody's.
        recs = {
            k: v for k, v in node.manifest.read()["processes"].items()
            if k.startswith(worldprocs.KEY_PREFIX)
        }  # fmt: skip
        assert set(recs) == {
            "node/world/my-nginx.example.org/nginx",
            "node/world/proxy.example.org/squid",
        }
        for rec in recs.values():
            pids = [rec["pid"], *_descendants(rec["pid"])]
            uids = {os.stat(f"/proc/{p}").st_uid for p in pids if os.path.exists(f"/proc/{p}")}
            assert 65534 in uids and uids <= {0, 65534}, uids  # bwrap is root, the rest not
            programs = {_comm(p) for p in pids} - {"bwrap"}
            assert all(os.stat(f"/proc/{p}").st_uid == 65534 for p in pids if _comm(p) in programs)

        node.down(grace=0.5)
        for rec in recs.values():
            assert not procs.is_alive(procs.ProcId(rec["pid"], rec["start_time"]))


def _descendants(pid: int) -> list[int]:
    out: list[int] = []
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return out
    for k in map(int, kids):
        out += [k, *_descendants(k)]
    return out


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""
