"""A changed EDS cluster re-warms in a real Envoy: the change must apply at once.

Envoy builds a new cluster for every added or modified CDS cluster and keeps it warming
(and its CDS ACK back) until that cluster's ClusterLoadAssignment arrives, or until the
15 s initial fetch timeout. These tests change an EDS cluster whose endpoints stay the
same and check, through Envoy's admin API, that the new cluster is active and that the
control plane saw every type acknowledged, well before that timeout.

Rules: as test_xds_envoy.py (loopback only, Envoy killed by PID, temp dirs removed);
waits poll until a deadline of a few seconds, far under the 15 s timeout they guard
against, and nothing else is timed.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import pytest
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2
from google.protobuf import json_format

from meshgate.translate.output import CLUSTER, ENDPOINT, LISTENER, ROUTE, ProxyConfig
from meshgate.xds.server import XdsServer
from meshgate.xds.status import SyncState
from tests.e2e.test_xds_envoy import (
    Configs,
    _envoy_path,
    eds_cluster,
    endpoints,
    envoy_process,
    fetch,
    free_port,
    listener_direct,
    listener_rds,
    route_to_cluster,
    temp_dir,
    wait_for,
)

pytestmark = pytest.mark.skipif(_envoy_path() is None, reason="envoy binary not installed")

# Far under Envoy's 15 s initial fetch timeout, generous for a loaded 2-core machine.
DEADLINE = 5.0
_TLS = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
_REGISTERED = (tls_pb2,)


def upstream(connect_timeout: int, *, tls: bool = False) -> Any:
    cluster = eds_cluster("upstream")
    cluster.connect_timeout.FromSeconds(connect_timeout)
    if tls:
        socket = {"name": "envoy.transport_sockets.tls", "typed_config": {"@type": _TLS}}
        json_format.ParseDict({"transport_socket": socket}, cluster)
    return cluster


def admin_json(admin: int, path: str) -> dict[str, Any]:
    body = fetch(admin, path)
    return json.loads(body) if body else {}


def clusters_dump(admin: int) -> dict[str, Any]:
    dump = admin_json(admin, "/config_dump?resource=dynamic_active_clusters")
    active = {c["cluster"]["name"]: c for c in dump.get("configs", [])}
    warming = admin_json(admin, "/config_dump?resource=dynamic_warming_clusters")
    return {"active": active, "warming": warming.get("configs", [])}


def stat(admin: int, name: str) -> int:
    body = fetch(admin, f"/stats?filter=^{name}$") or ""
    for line in body.splitlines():
        key, _, value = line.partition(": ")
        if key == name:
            return int(value)
    return 0


def all_synced(server: XdsServer, node: str) -> bool:
    status = next((s for s in server.statuses() if s.node_id == node), None)
    if status is None or not status.connected:
        return False
    wanted = (CLUSTER, ENDPOINT, LISTENER, ROUTE)
    return all(status.types[t].state == SyncState.SYNCED for t in wanted)


def test_changed_eds_cluster_is_active_at_once_and_acked() -> None:
    async def scenario() -> None:
        with temp_dir() as work:
            sock = str(work / "xds.sock")
            node = f"mg-warm-{os.getpid()}-a"
            front, backend = free_port(), free_port()
            configs = Configs()

            def config(cluster: Any) -> ProxyConfig:
                return ProxyConfig(
                    listeners=[
                        listener_direct("backend", backend, "plain"),
                        listener_rds("front", front, "front-routes"),
                    ],
                    routes=[route_to_cluster("front-routes", "upstream")],
                    clusters=[cluster],
                    endpoints=[endpoints("upstream", backend)],  # never changes below
                )

            configs.by_node[node] = config(upstream(1))
            server = XdsServer(configs, debounce=0.02, max_delay=0.2)
            await server.start(sock)
            try:
                with envoy_process(work, node, sock) as (_, admin):
                    await wait_for(lambda: fetch(front) == "plain", "first config")
                    await wait_for(lambda: all_synced(server, node), "first ACKs")

                    # 1. Connect timeout only: the modified cluster must replace the old one.
                    configs.by_node[node] = config(upstream(4))
                    server.request_push("connect timeout 1s -> 4s")
                    await wait_for(
                        lambda: _active_timeout(admin) == "4s",
                        "the modified cluster to become active",
                        timeout=DEADLINE,
                    )
                    await wait_for(
                        lambda: all_synced(server, node), "every type ACKed", timeout=DEADLINE
                    )
                    assert clusters_dump(admin)["warming"] == []

                    # 2. Originate TLS to a plaintext backend (the review's DR): traffic
                    # fails at once, not 15 s later...
                    configs.by_node[node] = config(upstream(4, tls=True))
                    server.request_push("tls on")
                    await wait_for(
                        lambda: fetch(front) is None, "TLS origination to fail", timeout=DEADLINE
                    )
                    assert (
                        "transport_socket" in clusters_dump(admin)["active"]["upstream"]["cluster"]
                    )
                    await wait_for(
                        lambda: all_synced(server, node), "ACKs with TLS", timeout=DEADLINE
                    )
                    # ...and undoing it restores traffic at once too.
                    configs.by_node[node] = config(upstream(4))
                    server.request_push("tls off")
                    await wait_for(
                        lambda: fetch(front) == "plain", "plaintext again", timeout=DEADLINE
                    )
                    await wait_for(
                        lambda: all_synced(server, node), "ACKs after undo", timeout=DEADLINE
                    )
                    dump = clusters_dump(admin)
                    assert dump["warming"] == []
                    assert "transport_socket" not in dump["active"]["upstream"]["cluster"]
                    # No EDS fetch ever ran into Envoy's initial fetch timeout.
                    assert stat(admin, "cluster.upstream.init_fetch_timeout") == 0
                    cds = next(s for s in server.statuses() if s.node_id == node).types[CLUSTER]
                    assert cds.acked_version == cds.sent_version
                    assert dump_version(admin) == cds.sent_version
            finally:
                await server.stop()

    asyncio.run(scenario())


def _active_timeout(admin: int) -> str | None:
    active = clusters_dump(admin)["active"].get("upstream")
    return None if active is None else str(active["cluster"].get("connect_timeout"))


def dump_version(admin: int) -> str | None:
    dump = admin_json(admin, "/config_dump?resource=dynamic_active_clusters")
    versions = {c.get("version_info") for c in dump.get("configs", [])}
    return versions.pop() if len(versions) == 1 else None
