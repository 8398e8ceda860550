"""Helpers for end-to-end tests: a mesh in its own state directory, driven through the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[2]
WALKTHROUGH = ROOT / "examples" / "walkthrough"


def retry(
    attempt: Callable[[], T], done: Callable[[T], bool], timeout: float, interval: float = 0.2
) -> tuple[bool, T]:
    """Call ``attempt`` until ``done`` holds for its result or ``timeout`` seconds pass:
    (whether it held, the last result), so a caller can say what it saw last."""
    deadline = time.monotonic() + timeout
    while True:
        result = attempt()
        if done(result):
            return True, result
        if time.monotonic() >= deadline:
            return False, result
        time.sleep(interval)


def proxy_certificates(dump_json: str) -> dict[str, list[tuple[str, list[str]]]]:
    """``pc secret -o json`` (Envoy's SecretsConfigDump, istioctl's names) read as the Istio
    task reads it (``.dynamicActiveSecrets[].secret.tlsCertificate.certificateChain``):
    per secret name, each certificate's (serial in hex, URI and DNS SANs)."""
    import base64
    import json

    from cryptography import x509

    out: dict[str, list[tuple[str, list[str]]]] = {}
    for item in json.loads(dump_json).get("dynamicActiveSecrets") or []:
        secret = item.get("secret") or {}
        source = (
            (secret.get("tlsCertificate") or {}).get("certificateChain")
            or (secret.get("validationContext") or {}).get("trustedCa")
            or {}
        )
        certs = x509.load_pem_x509_certificates(base64.b64decode(source["inlineBytes"]))
        found = out.setdefault(str(item.get("name")), [])
        for cert in certs[:1]:  # the leaf (or the first root), as istioctl's table shows
            try:
                sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
                names = [str(v) for v in sans.get_values_for_type(x509.UniformResourceIdentifier)]
                names += sans.get_values_for_type(x509.DNSName)
            except x509.ExtensionNotFound:
                names = []
            found.append((format(cert.serial_number, "x"), names))
    return out


def meshgate_argv() -> list[str]:
    exe = Path(sys.executable).parent / "meshgate"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "meshgate.cli.main"]


class Mesh:
    """A mesh driven through the CLI; with ``netns``, every command runs inside that
    network namespace (``ip netns exec``), as a user of that namespace would run it."""

    def __init__(self, home: Path, netns: str | None = None) -> None:
        self.home = home
        self.env = dict(os.environ, MESHGATE_HOME=str(home))
        self.prefix = ["ip", "netns", "exec", netns] if netns else []

    def meshgate(
        self, *args: str, check: bool = True, input: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            self.prefix + meshgate_argv() + list(args),
            env=self.env,
            capture_output=True,
            text=True,
            input=input,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"meshgate {' '.join(args)} exited {proc.returncode}\n"
                f"stdout: {proc.stdout}\nstderr: {proc.stderr}\n{self.log_tail()}"
            )
        return proc

    def curl(self, pod: str, *args: str, max_time: float = 5) -> subprocess.CompletedProcess[str]:
        """``curl -sS ARGS`` inside ``pod`` (its sidecar captures it), never raising."""
        return self.meshgate(
            "exec", pod, "--", "curl", "-sS", "--max-time", f"{max_time:g}", *args, check=False
        )

    def log_tail(self, n: int = 40) -> str:
        log = self.home / "control-plane.log"
        if not log.exists():
            return "(no control-plane.log)"
        lines = log.read_text(errors="replace").splitlines()[-n:]
        return "--- control-plane.log ---\n" + "\n".join(lines)

    def wait_pod(self, namespace: str, prefix: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            last = self.meshgate("get", "pods", "-n", namespace, check=False).stdout
            for line in last.splitlines():
                cols = line.split()
                if len(cols) >= 3 and cols[0].startswith(prefix) and cols[2] == "Running":
                    ready, _, total = cols[1].partition("/")
                    if ready == total:
                        return cols[0]
            time.sleep(0.25)
        raise AssertionError(
            f"pod {prefix}* not running in {namespace}:\n{last}\n{self.log_tail()}"
        )
