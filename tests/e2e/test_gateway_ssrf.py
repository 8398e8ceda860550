"""Never an open proxy: what the gateway refuses, each refusal logged with its reason.

A request sent straight to the gateway for a host no VirtualService binds gets 404; a peer
without a mesh certificate cannot complete the handshake of an ``ISTIO_MUTUAL`` server; a
host whose name resolves to loopback or to the cloud metadata address is refused by the SSRF
guard (503), while an in-mesh Service a VirtualService routes to is still reached.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from meshgate.runtime import dns
from tests.e2e.meshctl import WALKTHROUGH, Mesh, retry
from tests.e2e.test_mesh_mtls import GATEWAY_443, RECIPE

pytestmark = pytest.mark.e2e

WEB = Path(__file__).parent / "data" / "web.yaml"

# Names an attacker's DNS could answer with the gateway's own insides: written as a zone
# layer of the mesh's DNS (runtime.dns: layers are independent files), as a rebinding
# resolver would answer.
REBOUND = {"metadata.example": ["169.254.169.254"], "admin.example": ["127.0.0.1"]}

SSRF_CONFIG = """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: metadata-example, namespace: default}
spec:
  hosts: [metadata.example]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 80, name: http, protocol: HTTP}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: admin-example, namespace: default}
spec:
  hosts: [admin.example]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 15000, name: http-admin, protocol: HTTP}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: egress-gw, namespace: default}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [metadata.example, admin.example, web.default.svc.cluster.local]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: through-gateway, namespace: default}
spec:
  hosts: [metadata.example]
  gateways: [egress-gw]
  http:
  - route: [{destination: {host: metadata.example, port: {number: 80}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: admin-through-gateway, namespace: default}
spec:
  hosts: [admin.example]
  gateways: [egress-gw]
  http:
  - route: [{destination: {host: admin.example, port: {number: 15000}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web-through-gateway, namespace: default}
spec:
  hosts: [web.default.svc.cluster.local]
  gateways: [egress-gw]
  http:
  - route: [{destination: {host: web.default.svc.cluster.local, port: {number: 80}}}]
"""

GUARD_OFF = """apiVersion: meshgate.io/v1alpha1
kind: MeshConfig
metadata: {name: default}
spec: {gatewaySsrfGuard: false}
"""


def _log_lines(mesh: Mesh, gw: str) -> list[dict[str, object]]:
    out = mesh.meshgate("-n", "istio-system", "logs", gw, "-c", "istio-proxy").stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def _logged(mesh: Mesh, gw: str, **want: object) -> dict[str, object] | None:
    def find() -> dict[str, object] | None:
        for entry in reversed(_log_lines(mesh, gw)):
            if all(entry.get(k) == v for k, v in want.items()):
                return entry
        return None

    # The stdout logger flushes on a timer: a line may show a few seconds later.
    _, entry = retry(find, lambda e: e is not None, 20, 0.5)
    return entry


def test_gateway_refuses_unbound_hosts_peers_without_identity_and_internal_destinations(
    mesh: Mesh,
) -> None:
    dns.write_zone(mesh.home, REBOUND, layer="e2e-rebinding")
    mesh.meshgate("apply", "-f", str(WALKTHROUGH / "1-sleep.yaml"))
    mesh.meshgate("apply", "-f", str(WALKTHROUGH / "3-serviceentry.yaml"))
    mesh.meshgate("apply", "-f", str(WEB))
    mesh.meshgate("apply", "-f", "-", input=GATEWAY_443 + "---\n" + RECIPE)
    mesh.meshgate("apply", "-f", "-", input=SSRF_CONFIG)
    gw = mesh.wait_pod("istio-system", "istio-egressgateway-")
    plain = mesh.wait_pod("default", "plain-")  # no sidecar, no mesh identity
    mesh.wait_pod("default", "web-")
    gw_ip = mesh.meshgate(
        "-n", "istio-system", "get", "pod", gw, "-o", "jsonpath={.status.podIP}"
    ).stdout.strip()

    def straight(host: str, path: str = "/") -> str:
        """The status code of a request sent straight to the gateway pod for ``host``."""
        proc = mesh.curl(
            plain, "-o", "/dev/null", "-w", "%{http_code}",
            "--resolve", f"{host}:80:{gw_ip}", f"http://{host}{path}",
        )  # fmt: skip
        return proc.stdout.strip()

    # An explicitly routed in-mesh Service is still reached through the gateway (its pods
    # are allowed by address), once the gateway has the route.
    ok, code = retry(lambda: straight("web.default.svc.cluster.local"), "200".__eq__, 30, 0.5)
    assert ok, code

    # A host no VirtualService binds to the gateway: 404, never proxied.
    assert straight("unbound.example") == "404"

    # A permitted name that resolves to the cloud metadata address: refused at connect.
    assert straight("metadata.example", "/latest/meta-data/") == "503"
    entry = _logged(mesh, gw, authority="metadata.example")
    assert entry is not None
    assert len(entry) == 24, entry
    assert entry["response_code"] == 503, entry
    assert "UF" in str(entry["response_flags"]).split(","), entry  # URX,UF after retries
    assert entry["upstream_host"] == "169.254.169.254:80", entry
    assert str(entry["istio_policy_status"]).startswith(
        "SSRF guard: upstream 169.254.169.254:80 is link-local (from 10.34."
    ), entry

    # One that resolves to loopback, aimed at the gateway's own admin port: refused, so the
    # gateway cannot be made to serve its admin interface.
    assert straight("admin.example", "/config_dump") == "503"
    entry = _logged(mesh, gw, authority="admin.example")
    assert entry is not None and entry["upstream_host"] == "127.0.0.1:15000", entry
    assert str(entry["istio_policy_status"]).startswith(
        "SSRF guard: upstream 127.0.0.1:15000 is loopback (from "
    ), entry

    # The guard matches the proxy alone: the admin port still answers the CLI in the pod.
    out = mesh.meshgate("-n", "istio-system", "proxy-config", "listeners", gw).stdout
    assert "0.0.0.0" in out, out
    # And `exec` into the gateway's proxy container, as with `kubectl exec` in Istio.
    ready = mesh.meshgate(
        "-n", "istio-system", "exec", gw, "-c", "istio-proxy", "--",
        "curl", "-sS", "--max-time", "5", "http://127.0.0.1:15000/ready",
    )  # fmt: skip
    assert ready.stdout.strip() == "LIVE", ready.stdout + ready.stderr

    # A peer without a mesh certificate, to the ISTIO_MUTUAL server: the handshake fails,
    # and the gateway logs who tried, for which name, and why.
    proc = mesh.curl(
        plain, "-k", "--resolve", f"aliyun.com:443:{gw_ip}", "https://aliyun.com/", max_time=3
    )
    assert proc.returncode != 0 and "HTTP/" not in proc.stdout, proc.stdout + proc.stderr
    entry = _logged(mesh, gw, requested_server_name="aliyun.com", response_code=0)
    assert entry is not None, _log_lines(mesh, gw)[-3:]
    assert len(entry) == 24, entry
    assert entry["istio_policy_status"] == (
        "mTLS required: the peer presented no client certificate (no mesh identity)"
    )
    assert entry["downstream_local_address"] == f"{gw_ip}:443", entry

    # What the guard stops: with it turned off (MeshConfig), the same request is served by
    # the gateway's own admin interface.
    mesh.meshgate("apply", "-f", "-", input=GUARD_OFF)
    ok, code = retry(lambda: straight("admin.example", "/ready"), "200".__eq__, 20, 0.5)
    assert ok, code
