"""The seed's walkthrough, replayed through the CLI on a real mesh (real Envoy, real netns).

Each step asserts what the seed's user sees: the status line and headers of
``curl aliyun.com -I`` in the sleep pod, and the egress gateway's JSON access-log line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pytest

from tests.e2e.meshctl import WALKTHROUGH, Mesh, retry

pytestmark = pytest.mark.e2e


def _eventually(probe: Callable[[], str | None], what: str, timeout: float = 20.0) -> str:
    ok, last = retry(probe, bool, timeout)
    if not ok or last is None:
        raise AssertionError(f"timed out waiting for {what}")
    return last


def _curl_until(mesh: Mesh, pod: str, status: str) -> str:
    def probe() -> str | None:
        out = mesh.curl(pod, "-I", "aliyun.com").stdout
        return out if out.startswith(f"HTTP/1.1 {status}") else None

    return _eventually(probe, f"HTTP/1.1 {status} from the sleep pod")


def _headers(resp: str) -> dict[str, str]:
    out = {}
    for line in resp.splitlines()[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            out[k.strip().lower()] = v.strip()
    return out


def test_seed_walkthrough(mesh: Mesh) -> None:
    # Step 1: sleep app, ALLOW_ANY: 301 through the sidecar.
    mesh.meshgate("apply", "-f", str(WALKTHROUGH / "1-sleep.yaml"))
    sleep = mesh.wait_pod("default", "sleep-")
    assert re.fullmatch(r"sleep-[a-z0-9]+-[a-z0-9]{5}", sleep)
    pods = json.loads(mesh.meshgate("get", "pods", "-n", "default", "-o", "json").stdout)
    assert pods["kind"] == "List"
    (item,) = [p for p in pods["items"] if p["metadata"]["name"] == sleep]
    assert item["status"]["phase"] == "Running"
    sleep_ip = item["status"]["podIP"]
    # The kubectl idioms of Istio's docs work too: jsonpath, and deploy/NAME for exec.
    jp = mesh.meshgate("get", "pod", "-l", "app=sleep", "-o", "jsonpath={.items..metadata.name}")
    assert jp.stdout == sleep
    ip = mesh.meshgate("get", "pod", sleep, "-o", "jsonpath={.status.podIP}").stdout
    assert ip == sleep_ip
    addr = mesh.meshgate("exec", "deploy/sleep", "--", "ip", "-4", "-o", "addr", "show", "eth0")
    assert f" {sleep_ip}/" in addr.stdout
    assert mesh.meshgate("exec", sleep, "--", "pwd").stdout == "/\n"  # not the caller's cwd

    resp = _curl_until(mesh, sleep, "301")
    headers = _headers(resp)
    assert resp.startswith("HTTP/1.1 301 Moved Permanently")
    assert headers["server"] == "envoy"
    assert headers["location"] == "https://aliyun.com/"
    assert "x-envoy-upstream-service-time" in headers

    # Step 2: REGISTRY_ONLY: the sidecar answers 502 itself.
    mesh.meshgate("apply", "-f", str(WALKTHROUGH / "2-registry-only.yaml"))
    resp = _curl_until(mesh, sleep, "502")
    assert resp.startswith("HTTP/1.1 502 Bad Gateway")
    assert _headers(resp)["server"] == "envoy"

    # Step 3: the ServiceEntry lets aliyun.com through again.
    mesh.meshgate("apply", "-f", str(WALKTHROUGH / "3-serviceentry.yaml"))
    resp = _curl_until(mesh, sleep, "301")
    assert _headers(resp)["server"] == "envoy"
    # What the sidecar really runs, read from its Envoy: the ServiceEntry's cluster.
    clusters = mesh.meshgate("proxy-config", "cluster", sleep, "--fqdn", "aliyun.com").stdout
    assert clusters.splitlines()[1].split() == ["aliyun.com", "80", "-", "outbound", "STRICT_DNS"]

    # Step 4: through the egress gateway; the gateway logs the request.
    mesh.meshgate("apply", "-f", str(WALKTHROUGH / "4-egress-gateway.yaml"))
    gw = mesh.wait_pod("istio-system", "istio-egressgateway-")
    gw_pods = json.loads(mesh.meshgate("get", "pods", "-n", "istio-system", "-o", "json").stdout)
    (gw_item,) = [p for p in gw_pods["items"] if p["metadata"]["name"] == gw]
    assert gw_item["metadata"]["labels"]["istio"] == "egressgateway"
    gw_ip = gw_item["status"]["podIP"]

    # The controller keeps Deployment status as Kubernetes does, and what it made applies
    # back unchanged.
    def deployment_ready() -> str | None:
        out = mesh.meshgate("get", "deploy", "-A").stdout
        rows = [line.split() for line in out.splitlines()[1:]]
        ready = {r[1]: r[2] for r in rows}
        return "ok" if ready == {"sleep": "1/1", "istio-egressgateway": "1/1"} else None

    _eventually(deployment_ready, "deployments 1/1")
    made = mesh.meshgate("get", "deploy,svc,sa", "-A", "-o", "yaml").stdout
    again = mesh.meshgate("apply", "-f", "-", input=made).stdout
    assert again.strip() and all(line.endswith(" unchanged") for line in again.splitlines())

    def gateway_line() -> str | None:
        _curl_until(mesh, sleep, "301")
        out = mesh.meshgate("logs", "-n", "istio-system", gw, "-c", "istio-proxy").stdout
        lines = [x for x in out.splitlines() if "aliyun.com" in x]
        return lines[-1] if lines else None

    entry = json.loads(_eventually(gateway_line, "the gateway's access-log line"))
    assert len(entry) == 24
    assert entry["upstream_cluster"] == "outbound|80||aliyun.com"
    assert entry["response_code"] == 301
    assert isinstance(entry["duration"], int)
    assert entry["authority"] == "aliyun.com"
    assert entry["method"] == "HEAD"
    assert entry["protocol"] == "HTTP/1.1"
    assert entry["downstream_remote_address"].split(":")[0] == sleep_ip
    assert entry["x_forwarded_for"] == sleep_ip
    assert entry["downstream_local_address"] == f"{gw_ip}:80"
    assert entry["trace_id"] is None
