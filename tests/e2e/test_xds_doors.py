"""Only the proxies meshgate starts may fetch configuration: the xDS socket refuses other
local users, a stream is authenticated per proxy (a credential only that proxy can read),
one posing as another proxy gets nothing and disturbs nothing, and a proxy asking for a
secret that is not its own gets none."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from envoy.config.core.v3.base_pb2 import Node
from envoy.service.discovery.v3 import ads_pb2_grpc
from envoy.service.discovery.v3.discovery_pb2 import DiscoveryRequest

from meshgate.home import run_dir
from tests.e2e.meshctl import WALKTHROUGH, Mesh, retry

pytestmark = pytest.mark.e2e

LISTENER = "type.googleapis.com/envoy.config.listener.v3.Listener"
SECRET = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
TOKEN_HEADER = "x-meshgate-proxy-token"


def _bootstrap(mesh: Mesh, namespace: str, pod: str) -> dict[str, object]:
    from meshgate.home import mesh_id
    from meshgate.runtime.names import pod_id, runtime_dir

    path = runtime_dir(mesh_id(mesh.home)) / "pods" / pod_id(namespace, pod) / "envoy.json"
    data: dict[str, object] = json.loads(path.read_text())
    return data


def _token(boot: dict[str, object]) -> str:
    ads = boot["dynamic_resources"]["ads_config"]  # type: ignore[index]
    for header in ads["grpc_services"][0]["initial_metadata"]:
        if header["key"] == TOKEN_HEADER:
            return str(header["value"])
    raise AssertionError("no proxy credential in the bootstrap")


def _ask(sock: Path, node_id: str, type_url: str, names: list[str], token: str | None):  # type: ignore[no-untyped-def]
    """One ADS request; (grpc status code or None, resources answered)."""
    channel = grpc.insecure_channel(f"unix:{sock}")
    stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
    req = DiscoveryRequest(node=Node(id=node_id), type_url=type_url, resource_names=names)
    metadata = [(TOKEN_HEADER, token)] if token else []
    try:
        for response in stub.StreamAggregatedResources(iter([req]), metadata=metadata, timeout=3):
            return None, list(response.resources)
        return None, []
    except grpc.RpcError as exc:
        return exc.code(), []
    finally:
        channel.close()


def _synced(mesh: Mesh, prefix: str) -> bool:
    rows = mesh.meshgate("proxy-status").stdout.splitlines()
    return any(r.startswith(prefix) and "SYNCED" in r and "DISCONNECTED" not in r for r in rows)


def test_only_meshgates_proxies_get_configuration(mesh: Mesh) -> None:
    mesh.meshgate("apply", "-f", str(WALKTHROUGH / "1-sleep.yaml"))
    mesh.meshgate("apply", "-f", str(WALKTHROUGH / "4-egress-gateway.yaml"))
    sleep = mesh.wait_pod("default", "sleep-")
    gw = mesh.wait_pod("istio-system", "istio-egressgateway-")
    sock = run_dir(mesh.home) / "xds" / "xds.sock"

    # The socket and the proxies' files: owner and proxies' group only.
    st = sock.stat()
    assert oct(st.st_mode & 0o777) == "0o660" and st.st_gid == 1337
    assert oct(sock.parent.stat().st_mode & 0o777) == "0o750"
    boot_path = sock.parent.parent / "pods"
    for entry in boot_path.iterdir():
        assert entry.stat().st_mode & 0o007 == 0, entry  # nothing for other users
    probe = "import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])"
    nobody = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
         sys.executable, "-c", probe, str(sock)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert nobody.returncode != 0 and "Permission denied" in nobody.stderr, nobody.stderr

    gw_boot = _bootstrap(mesh, "istio-system", gw)
    gw_node = str(gw_boot["node"]["id"])  # type: ignore[index]
    sleep_token = _token(_bootstrap(mesh, "default", sleep))
    assert _token(gw_boot) != sleep_token

    # Posing as the gateway: without a credential, or with another proxy's, nothing.
    for token in (None, "forged", sleep_token):
        code, resources = _ask(sock, gw_node, LISTENER, [], token)
        assert code == grpc.StatusCode.PERMISSION_DENIED and resources == [], token
    # ... and the real gateway is undisturbed (never shown as disconnected or replaced).
    assert _synced(mesh, gw)
    assert _synced(mesh, sleep)

    # A proxy with its own credential gets its own config, but not another's secret.
    sleep_node = str(_bootstrap(mesh, "default", sleep)["node"]["id"])  # type: ignore[index]
    code, resources = _ask(sock, sleep_node, LISTENER, [], sleep_token)
    assert code is None and resources, "the sleep proxy's own listeners"
    code, resources = _ask(sock, sleep_node, SECRET, ["kubernetes://gateway-cert"], sleep_token)
    assert resources == [], "another workload's secret"
    ok, _ = retry(lambda: _synced(mesh, sleep), bool, 10)
    assert ok

    # The seed still works through the sandboxed, authenticated proxies.
    out = mesh.meshgate("exec", sleep, "--", "curl", "-sI", "--max-time", "5", "aliyun.com").stdout
    assert out.startswith("HTTP/1.1 301"), out
