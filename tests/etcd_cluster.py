"""Real etcd members on loopback for tests: ``EtcdCluster`` and the ``etcd_cluster`` helper.

Rules of this module:
- Members are real ``/usr/bin/etcd`` processes (Debian's etcd-server, installed by
  ``make deps``) listening on 127.0.0.1 only, on free ports, each with its own data dir under
  one temporary directory. Nothing else on the host is touched.
- Cleanup kills exactly the processes this module started (by PID, never by name) and
  removes the temporary directory, also when start-up or the test failed.
- Without the binary the caller gets ``pytest.skip`` with the reason (``make deps`` as root
  installs it); as root the binary is expected and its absence is a failure.
- A member can be stopped and started again (same name, ports and data dir) to test
  failover and watch resumption.

Use::

    from tests.etcd_cluster import etcd_cluster

    with etcd_cluster(members=3) as cluster:
        cluster.client_urls      # ["http://127.0.0.1:PORT", ...]
        cluster.endpoints        # "127.0.0.1:PORT,127.0.0.1:PORT,..." (for etcd://)
        cluster.store_url        # "etcd://127.0.0.1:PORT,..."
        cluster.stop(0); cluster.start(0)

    with etcd_cluster(tls=True) as cluster:   # clients need cluster.tls_files' certificates
        ...
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ETCD = os.environ.get("MESHGATE_ETCD_BINARY", "/usr/bin/etcd")
# Large enough for one apply of thousands of objects in one transaction (etcd's defaults:
# 128 operations, 1.5 MiB per request); the store's docs tell operators the same.
MAX_TXN_OPS = 100_000
MAX_REQUEST_BYTES = 64 * 1024 * 1024


def require_etcd() -> str:
    """The etcd binary, or a skip (not root) / failure (root) saying how to get it."""
    if os.path.exists(ETCD) and os.access(ETCD, os.X_OK):
        return ETCD
    reason = f"{ETCD} missing: `make deps` as root installs Debian's etcd-server"
    if os.geteuid() == 0:
        pytest.fail(reason)
    pytest.skip(reason)


def _free_ports(count: int) -> list[int]:
    # Bind all at once so the same port is not handed out twice; etcd binds them right after.
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _write_tls(directory: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def cert(cn: str, key: ec.EllipticCurvePrivateKey, issuer: Any, ca: bool, **ext: Any) -> Any:
        b = (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(name("meshgate-test-etcd-ca") if issuer else name(cn))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        for value in ext.values():
            b = b.add_extension(value, critical=False)
        return b.sign(issuer or key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = cert("meshgate-test-etcd-ca", ca_key, None, True)
    files: dict[str, Path] = {}

    def save(label: str, c: Any, key: ec.EllipticCurvePrivateKey | None) -> None:
        files[label] = directory / f"{label}.pem"
        files[label].write_bytes(c.public_bytes(serialization.Encoding.PEM))
        if key is not None:
            files[f"{label}-key"] = directory / f"{label}-key.pem"
            files[f"{label}-key"].write_bytes(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )

    save("ca", ca, None)
    for label, usage in (
        ("server", ExtendedKeyUsageOID.SERVER_AUTH),
        ("client", ExtendedKeyUsageOID.CLIENT_AUTH),
    ):
        key = ec.generate_private_key(ec.SECP256R1())
        san = x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        )
        save(
            label, cert(label, key, ca_key, False, san=san, eku=x509.ExtendedKeyUsage([usage])), key
        )
    return files


@dataclass
class Member:
    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    scheme: str = "http"

    @property
    def client_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"


@dataclass
class EtcdCluster:
    """1 or 3 (any number of) etcd members on 127.0.0.1; ``start_all`` then ``close``."""

    size: int = 1
    tls: bool = False
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="meshgate-etcd-")))
    members: list[Member] = field(default_factory=list)
    token: str = ""
    # With ``tls``: "ca", "server", "server-key", "client", "client-key" PEM files; members
    # then take clients over TLS only, with a client certificate of that CA.
    tls_files: dict[str, Path] = field(default_factory=dict)

    def __post_init__(self) -> None:
        ports = _free_ports(2 * self.size)
        self.token = f"meshgate-test-{os.getpid()}-{ports[0]}"
        if self.tls:
            self.tls_files = _write_tls(self.root / "tls")
        for i in range(self.size):
            d = self.root / f"m{i}"
            self.members.append(
                Member(
                    f"m{i}",
                    ports[2 * i],
                    ports[2 * i + 1],
                    d / "data",
                    d / "etcd.log",
                    scheme="https" if self.tls else "http",
                )
            )

    @property
    def client_urls(self) -> list[str]:
        return [m.client_url for m in self.members]

    @property
    def endpoints(self) -> str:
        """``HOST:PORT,...`` of every member, as ``etcd://`` store URLs take them."""
        return ",".join(f"127.0.0.1:{m.client_port}" for m in self.members)

    @property
    def store_url(self) -> str:
        return f"etcd://{self.endpoints}"

    def _command(self, m: Member) -> list[str]:
        initial = ",".join(f"{o.name}={o.peer_url}" for o in self.members)
        return [
            ETCD,
            f"--name={m.name}",
            f"--data-dir={m.data_dir}",
            f"--listen-client-urls={m.client_url}",
            f"--advertise-client-urls={m.client_url}",
            f"--listen-peer-urls={m.peer_url}",
            f"--initial-advertise-peer-urls={m.peer_url}",
            f"--initial-cluster={initial}",
            f"--initial-cluster-token={self.token}",
            "--initial-cluster-state=new",
            f"--max-txn-ops={MAX_TXN_OPS}",
            f"--max-request-bytes={MAX_REQUEST_BYTES}",
            # Short elections: a failover test should not wait seconds for a new raft leader.
            "--heartbeat-interval=50",
            "--election-timeout=500",
            "--logger=zap",
        ] + (
            [
                f"--cert-file={self.tls_files['server']}",
                f"--key-file={self.tls_files['server-key']}",
                f"--trusted-ca-file={self.tls_files['ca']}",
                "--client-cert-auth",
            ]
            if self.tls
            else []
        )

    def start(self, index: int, *, wait: bool = True) -> None:
        """Start (or restart) member ``index`` with its data dir; wait until it is healthy."""
        m = self.members[index]
        if m.process is not None and m.process.poll() is None:
            return
        m.data_dir.parent.mkdir(parents=True, exist_ok=True)
        with open(m.log_path, "ab") as log:
            m.process = subprocess.Popen(
                self._command(m), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        if wait:
            self.wait_healthy(index)

    def stop(self, index: int, *, kill: bool = False) -> None:
        """Stop member ``index`` (SIGTERM, or SIGKILL with ``kill``) and reap it."""
        m = self.members[index]
        p = m.process
        if p is None:
            return
        if p.poll() is None:
            p.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)
        m.process = None

    def wait_healthy(self, index: int, timeout: float = 30.0) -> None:
        m = self.members[index]
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if m.process is not None and m.process.poll() is not None:
                raise RuntimeError(
                    f"etcd {m.name} exited ({m.process.returncode}): {self.log(index)}"
                )
            try:
                with urllib.request.urlopen(
                    f"{m.client_url}/health", timeout=2, context=self._ssl()
                ) as r:
                    body = r.read().decode()
                if '"health":"true"' in body.replace(" ", ""):
                    return
                last = body
            except OSError as exc:
                last = str(exc)
            time.sleep(0.1)
        raise RuntimeError(
            f"etcd {m.name} not healthy after {timeout}s ({last}): {self.log(index)}"
        )

    def _ssl(self) -> Any:
        if not self.tls:
            return None
        import ssl

        ctx = ssl.create_default_context(cafile=str(self.tls_files["ca"]))
        ctx.load_cert_chain(self.tls_files["client"], self.tls_files["client-key"])
        return ctx

    def start_all(self) -> None:
        # Members of a new cluster wait for each other: start all, then wait for each.
        for i in range(self.size):
            self.start(i, wait=False)
        for i in range(self.size):
            self.wait_healthy(i)

    def log(self, index: int) -> str:
        """The tail of member ``index``'s log (for failure messages)."""
        with contextlib.suppress(OSError):
            return self.members[index].log_path.read_text(errors="replace")[-2000:]
        return ""

    def close(self) -> None:
        for i in range(self.size):
            with contextlib.suppress(Exception):
                self.stop(i, kill=True)
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def etcd_cluster(members: int = 1, *, tls: bool = False) -> Iterator[EtcdCluster]:
    """A running cluster of ``members`` etcd members (clients over mutual TLS with ``tls``:
    ``cluster.tls_files``); skips if etcd is not installed."""
    require_etcd()
    cluster = EtcdCluster(members, tls=tls)
    try:
        cluster.start_all()
        yield cluster
    finally:
        cluster.close()
