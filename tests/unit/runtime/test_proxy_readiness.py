"""A proxy's readiness is its own: Istio's /healthz/ready listener on a gateway, the
capture port on a sidecar; both come from the proxy's initial configuration."""

from __future__ import annotations

from pathlib import Path

from meshgate.runtime.pods import PodSpec, ProxySpec, Runtime
from meshgate.xds.bootstrap import bootstrap_config


def proxy_ready_port(tmp_path: Path, mode: str, capture: bool, ready: int | None) -> int | None:
    boot = bootstrap_config("n", "/x/xds.sock", cluster="c", ready_port=ready)
    spec = PodSpec(
        name="p",
        namespace="ns",
        containers=[],
        proxy=ProxySpec(bootstrap=boot, mode=mode),  # type: ignore[arg-type]
        capture=capture,
    )
    return Runtime(tmp_path)._proxy_container(spec).readiness_port


def test_gateway_readiness_is_its_healthz_listener(tmp_path: Path) -> None:
    assert proxy_ready_port(tmp_path, "router", False, 15021) == 15021


def test_sidecar_readiness_is_its_capture_port(tmp_path: Path) -> None:
    assert proxy_ready_port(tmp_path, "sidecar", True, None) == 15001


def test_a_proxy_without_either_is_ready_when_it_runs(tmp_path: Path) -> None:
    assert proxy_ready_port(tmp_path, "router", False, None) is None
