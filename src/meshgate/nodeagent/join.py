"""``meshgate join``: check the control plane, present the token, get certificates, start
the node agent, wait until the node is Ready.

Rules (kubeadm's join, in small):
- The CA is fetched without trusting anything, then checked against the pin
  (``--discovery-token-ca-cert-hash sha256:...``) before anything else is sent; a
  mismatch ends the join. Without a pin the join is refused unless
  ``--discovery-token-unsafe-skip-ca-verification`` says so, as kubeadm does.
- From then on the endpoint is verified against that CA. The node makes two ECDSA keys
  (the agent's, the proxies' xDS client) and sends only their CSRs with the token; a
  refused token ends the join with the control plane's reason, and nothing is kept.
- What joining gave (certificates, the CA, the node's pod range and link) is kept in
  ``<home>/node/`` (0700; keys 0600) for the agent; then the agent starts detached
  (its log ``<home>/node-agent.log``) and ``join`` returns once it reports Ready.
"""

from __future__ import annotations

import hmac
import json
import os
import ssl
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from meshgate.nodeagent.agent import (
    CA_FILE,
    PROXY_CERT,
    PROXY_KEY,
    ControlPlaneRefused,
    call,
    node_dir,
    tls_context,
)
from meshgate.security import pki
from meshgate.security.bootstraptoken import TokenRefused, ca_cert_hash, split
from meshgate.server.lifecycle import spawn_detached


class JoinFailed(Exception):
    pass


def fetch_ca(url: str, timeout: float = 10.0) -> bytes:
    """The CA the endpoint hands out, fetched without verifying anything (the pin does)."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise JoinFailed(f"{url!r} is not an https:// URL of a control plane's join endpoint")
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        answer = call(url, "GET", "/join/v1/ca", ctx, timeout=timeout)
    except (OSError, ControlPlaneRefused) as exc:
        raise JoinFailed(f"cannot reach the control plane at {url}: {exc}") from None
    return str(answer.get("ca") or "").encode()


def _csr(key: ec.EllipticCurvePrivateKey, cn: str) -> str:
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(Encoding.PEM).decode()


def join(
    home: Path,
    url: str,
    token: str,
    name: str,
    ca_hashes: list[str],
    *,
    unsafe_skip_ca: bool = False,
    labels: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> dict[str, Any]:
    try:
        split(token)
    except TokenRefused as exc:
        raise JoinFailed(str(exc)) from None
    if not ca_hashes and not unsafe_skip_ca:
        raise JoinFailed(
            "give --discovery-token-ca-cert-hash sha256:... (as `meshgate token create "
            "--print-join-command` prints it), or --discovery-token-unsafe-skip-ca-verification"
        )
    ca_pem = fetch_ca(url)
    try:
        found = ca_cert_hash(ca_pem)
    except ValueError:
        raise JoinFailed(f"{url} handed out no usable CA certificate") from None
    if ca_hashes and not any(hmac.compare_digest(found, h.strip()) for h in ca_hashes):
        raise JoinFailed(
            f"the control plane's CA at {url} is {found}, not the pinned "
            f"{', '.join(ca_hashes)}: refusing to join"
        )
    from meshgate.client import Client

    if Client(home).available():
        raise JoinFailed(f"a node agent or control plane already runs for {home}")
    d = node_dir(home)
    home.mkdir(parents=True, exist_ok=True)
    os.chmod(home, 0o700)
    d.mkdir(mode=0o700, exist_ok=True)
    ca_file = d / f".{CA_FILE}.joining"  # the pinned CA, until the join is accepted
    pki.write_file(ca_file, ca_pem, 0o644)
    node_key, proxy_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    body = {
        "token": token,
        "name": name,
        "nodeCSR": _csr(node_key, f"system:node:{name}"),
        "proxyCSR": _csr(proxy_key, f"{name}-proxies"),
        "labels": labels or {},
    }
    try:
        answer = call(url, "POST", "/join/v1/nodes", tls_context(ca_file), body)
    except ControlPlaneRefused as exc:
        ca_file.unlink(missing_ok=True)
        raise JoinFailed(f"the control plane refused the join: {exc}") from None
    except (OSError, ssl.SSLError) as exc:
        ca_file.unlink(missing_ok=True)
        raise JoinFailed(f"cannot join through {url}: {exc}") from None
    ca_file.unlink(missing_ok=True)
    pki.write_file(d / "node.key", pki.key_pem(node_key), 0o600)
    pki.write_file(d / "node.crt", str(answer.pop("nodeCert")).encode(), 0o600)
    pki.write_file(d / PROXY_KEY, pki.key_pem(proxy_key), 0o600)
    pki.write_file(d / PROXY_CERT, str(answer.pop("proxyCert")).encode(), 0o600)
    pki.write_file(d / CA_FILE, str(answer.pop("ca")).encode(), 0o644)
    answer["url"] = url
    pki.write_file(d / "join.json", json.dumps(answer, indent=1).encode(), 0o600)
    start_agent(home, timeout)
    return dict(answer)


def start_agent(home: Path, timeout: float) -> None:
    from meshgate.client import Client
    from meshgate.runtime import mountns

    client = Client(home)
    if client.available():
        return
    argv = [*mountns.host_prefix(), sys.executable, "-m", "meshgate.nodeagent", "--home", str(home)]
    logf = home / "node-agent.log"
    proc = spawn_detached(argv, logf)
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        code = proc.poll()
        if code is not None:
            tail = logf.read_text(errors="replace").splitlines()[-15:]
            raise JoinFailed(
                f"the node agent exited with status {code}; see {logf}:\n" + "\n".join(tail)
            )
        try:
            if client.available():
                last = client.call("GET", "/v1/status")
                if last.get("ready"):
                    return
        except (TimeoutError, OSError):
            pass
        time.sleep(0.2)
    why = f" (last error: {last['lastError']})" if last.get("lastError") else ""
    raise JoinFailed(f"the node agent did not become Ready in {timeout:.0f}s{why}; see {logf}")
