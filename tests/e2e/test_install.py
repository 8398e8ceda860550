"""``meshgate install`` on a running mesh, as Istio's pages use ``istioctl install``: the
mesh config is in force at once for running pods, and a bad path changes nothing."""

from __future__ import annotations

import pytest
import yaml

from tests.e2e.meshctl import WALKTHROUGH, Mesh, retry

pytestmark = pytest.mark.e2e


def _status(mesh: Mesh, pod: str, url: str) -> str:
    out = mesh.curl(pod, "-I", url).stdout
    return out.splitlines()[0].strip() if out else ""


def test_install_set_registry_only_blocks_unregistered_hosts(mesh: Mesh) -> None:
    mesh.meshgate("apply", "-f", str(WALKTHROUGH / "1-sleep.yaml"))
    sleep = mesh.wait_pod("default", "sleep-")
    ok, line = retry(lambda: _status(mesh, sleep, "http://aliyun.com/"), lambda s: "301" in s, 20)
    assert ok, line

    # An unknown path is refused by name, and changes nothing.
    bad = mesh.meshgate(
        "install", "--set", "meshConfig.outboundTrafficPolicy.mod=REGISTRY_ONLY", "-y", check=False
    )
    assert bad.returncode == 1
    assert "error: --set: unknown path: meshConfig.outboundTrafficPolicy.mod" in bad.stderr
    assert "nothing was changed" in bad.stderr
    spec = yaml.safe_load(mesh.meshgate("get", "meshconfig", "default", "-o", "yaml").stdout)
    assert "outboundTrafficPolicy" not in (spec.get("spec") or {})
    assert _status(mesh, sleep, "http://aliyun.com/") == "HTTP/1.1 301 Moved Permanently"

    done = mesh.meshgate(
        "install", "--set", "meshConfig.outboundTrafficPolicy.mode=REGISTRY_ONLY", "-y"
    )
    assert "meshconfig.meshgate.io/default configured" in done.stdout
    # The running pod's sidecar gets it pushed: no restart.
    ok, line = retry(lambda: _status(mesh, sleep, "http://aliyun.com/"), lambda s: "502" in s, 20)
    assert ok, line
    assert line == "HTTP/1.1 502 Bad Gateway"
    shown = yaml.safe_load(mesh.meshgate("get", "meshconfig", "default", "-o", "yaml").stdout)
    assert shown["spec"]["outboundTrafficPolicy"] == {"mode": "REGISTRY_ONLY"}


def test_install_interception_applies_at_the_next_pod_start(mesh: Mesh) -> None:
    mesh.meshgate("apply", "-f", str(WALKTHROUGH / "1-sleep.yaml"))
    mesh.meshgate("install", "--set", "meshConfig.outboundTrafficPolicy.mode=REGISTRY_ONLY", "-y")
    old = mesh.wait_pod("default", "sleep-")
    ok, line = retry(lambda: _status(mesh, old, "http://aliyun.com/"), lambda s: "502" in s, 20)
    assert ok, line

    mesh.meshgate("install", "--set", "values.global.proxy.excludeIPRanges=198.51.100.10/32", "-y")
    # The running pod keeps its rules (Istio injects them into the pod at its start)...
    assert _status(mesh, old, "http://aliyun.com/") == "HTTP/1.1 502 Bad Gateway"
    # ...a pod started afterwards goes straight to aliyun.com, past its sidecar.
    mesh.meshgate("delete", "pod", old)
    ok, new = retry(
        lambda: mesh.wait_pod("default", "sleep-"), lambda name: name != old, 60, interval=0.5
    )
    assert ok, new
    head = mesh.curl(new, "-I", "http://aliyun.com/").stdout
    assert head.startswith("HTTP/1.1 301 Moved Permanently"), head
    assert "server: Tengine" in head and "x-envoy" not in head
