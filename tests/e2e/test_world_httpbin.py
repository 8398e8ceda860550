"""The demo world's httpbin.org is the real httpbin: through the mesh it echoes the headers
that arrived (the sidecar's included), waits on /delay/N (so a VirtualService timeout gives
504, as in Istio's egress task), and answers /status/N, /ip and /anything as httpbin.org."""

from __future__ import annotations

import json

import pytest

from tests.e2e.meshctl import WALKTHROUGH, Mesh, retry

pytestmark = pytest.mark.e2e

# Istio's "Accessing External Services" task: the ServiceEntry, then the timeout.
HTTPBIN_EXT = """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: httpbin-ext
spec:
  hosts:
  - httpbin.org
  ports:
  - number: 80
    name: http
    protocol: HTTP
  resolution: DNS
  location: MESH_EXTERNAL
"""
TIMEOUT = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: httpbin-ext
spec:
  hosts:
  - httpbin.org
  http:
  - timeout: 3s
    route:
    - destination:
        host: httpbin.org
      weight: 100
"""


def _json(mesh: Mesh, pod: str, url: str) -> dict[str, object]:
    ok, proc = retry(lambda: mesh.curl(pod, url), lambda p: p.stdout.startswith("{"), 20)
    assert ok, f"{url}: {proc.stdout}{proc.stderr}"
    return dict(json.loads(proc.stdout))


def test_httpbin_echoes_what_the_sidecar_sent(mesh: Mesh) -> None:
    mesh.meshgate("apply", "-f", str(WALKTHROUGH / "1-sleep.yaml"))
    sleep = mesh.wait_pod("default", "sleep-")
    mesh.meshgate("apply", "-f", "-", input=HTTPBIN_EXT)

    ok, proc = retry(
        lambda: mesh.curl(sleep, "-H", "X-Test: meshgate", "http://httpbin.org/headers"),
        lambda p: "X-Envoy-Attempt-Count" in p.stdout,
        20,
    )
    assert ok, proc.stdout + proc.stderr
    headers = json.loads(proc.stdout)["headers"]
    assert headers["Host"] == "httpbin.org"
    assert headers["X-Test"] == "meshgate"
    assert headers["User-Agent"].startswith("curl/")
    # Added by the sidecar on its way out (its router counts attempts, as Istio's does;
    # the decorator and peer metadata headers: tests/e2e/test_task_egress_control.py).
    assert headers["X-Envoy-Attempt-Count"] == "1"

    anything = _json(mesh, sleep, "http://httpbin.org/anything/x?y=1")
    assert anything["method"] == "GET"
    assert anything["args"] == {"y": "1"}
    assert anything["url"] == "http://httpbin.org/anything/x?y=1"
    # The origin is the address the world host saw: the pod's (no NAT on the way).
    ip = _json(mesh, sleep, "http://httpbin.org/ip")
    assert str(ip["origin"]).startswith("10.34."), ip

    code = mesh.curl(
        sleep, "-o", "/dev/null", "-w", "%{http_code}", "http://httpbin.org/status/418"
    )
    assert code.stdout == "418", code
    # And over TLS, with the world CA the pod trusts.
    tls = mesh.curl(sleep, "https://httpbin.org/get")
    assert json.loads(tls.stdout)["url"] == "https://httpbin.org/get", tls


def test_virtual_service_timeout_gives_504_on_a_slow_answer(mesh: Mesh) -> None:
    mesh.meshgate("apply", "-f", str(WALKTHROUGH / "1-sleep.yaml"))
    sleep = mesh.wait_pod("default", "sleep-")
    mesh.meshgate("apply", "-f", "-", input=HTTPBIN_EXT)
    fmt = "%{http_code} %{time_total}"
    # Without a timeout the slow answer arrives (httpbin waited 5 s).
    slow = mesh.curl(sleep, "-o", "/dev/null", "-w", fmt, "http://httpbin.org/delay/5", max_time=15)
    code, took = slow.stdout.split()
    assert code == "200" and float(took) >= 5.0, slow
    mesh.meshgate("apply", "-f", "-", input=TIMEOUT)
    ok, proc = retry(
        lambda: mesh.curl(
            sleep, "-o", "/dev/null", "-w", fmt, "http://httpbin.org/delay/5", max_time=15
        ),
        lambda p: p.stdout.startswith("504 "),
        30,
    )
    assert ok, proc.stdout + proc.stderr
    took_s = float(proc.stdout.split()[1])
    assert 2.9 <= took_s < 4.5, proc.stdout
