"""HTTPS to the simulated world: pods trust the world CA as they would a public one; the
sidecar passes TLS through under ALLOW_ANY, resets it under REGISTRY_ONLY, and lets it through
again once a ServiceEntry registers the host's TLS port."""

from __future__ import annotations

import time

import pytest

from tests.e2e.meshctl import WALKTHROUGH, Mesh

pytestmark = pytest.mark.e2e

TLS_ENTRY = """apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata:
  name: aliyun-https
spec:
  hosts: [aliyun.com]
  location: MESH_EXTERNAL
  ports:
  - {number: 443, name: tls, protocol: TLS}
  resolution: DNS
"""


def _until(mesh: Mesh, pod: str, ok: object, timeout: float = 20.0) -> tuple[int, str]:
    deadline = time.monotonic() + timeout
    while True:
        proc = mesh.meshgate(
            "exec", pod, "--", "curl", "-sS", "-I", "--max-time", "5", "https://aliyun.com/",
            check=False,
        )  # fmt: skip
        result = (proc.returncode, proc.stdout + proc.stderr)
        if ok(*result) or time.monotonic() > deadline:  # type: ignore[operator]
            return result
        time.sleep(0.2)


def test_https_through_the_sidecar(mesh: Mesh) -> None:
    mesh.meshgate("apply", "-f", str(WALKTHROUGH / "1-sleep.yaml"))
    sleep = mesh.wait_pod("default", "sleep-")

    # ALLOW_ANY: TLS passes through untouched; the certificate verifies against the world CA.
    code, out = _until(mesh, sleep, lambda c, o: c == 0)
    assert code == 0, out
    assert out.startswith("HTTP/2 200")
    assert "server: Tengine" in out  # end-to-end TLS: the sidecar cannot rewrite it

    # REGISTRY_ONLY: the sidecar's catch-all sends TLS to BlackHoleCluster: the connection
    # is reset during the handshake (curl exit 35), as in Istio.
    mesh.meshgate("apply", "-f", str(WALKTHROUGH / "2-registry-only.yaml"))
    code, out = _until(mesh, sleep, lambda c, o: c != 0)
    assert code in (35, 56), out

    # A ServiceEntry with the TLS port lets it through again.
    mesh.meshgate("apply", "-f", "-", input=TLS_ENTRY)
    code, out = _until(mesh, sleep, lambda c, o: c == 0)
    assert code == 0, out
    assert out.startswith("HTTP/2 200")
