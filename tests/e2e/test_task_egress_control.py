"""istio.io's task "Accessing External Services", replayed on a local mesh.

Page: content/en/docs/tasks/traffic-management/egress/egress-control/ of istio/istio.io,
commands and outputs from snips.sh at commit a8ddb0d0da3d550f1490999736fb4e396cdfcc65
(prose from index.md at 04c962488d4e13556014d7c53decd53aef2cd8a2). Each `kubectl` command
is the same `meshgate` command; `istioctl install --set X` is `meshgate install --set X -y`;
the YAML is the page's. The sleep sample is Istio's (curlimages/curl runs the host's curl,
docs/pods.md); httpbin.org, www.google.com and edition.cnn.com are the demo world's
(docs/world.md). Differences (README "Istio task compatibility"): the proxy's access log is
JSON, not Istio's TEXT line, so the test reads the same fields by name; `meshgate exec`
exits with curl's code (35) but does not print kubectl's "command terminated" line; the
Gateway API tab (HTTPRoute with a ServiceEntry parent) is not replayed.
"""

from __future__ import annotations

import base64
import json
import re
import time

import pytest
from google.protobuf import json_format, struct_pb2

from tests.e2e.istio_task import (
    SLEEP_YAML,
    access_log,
    apply_yaml,
    sleep_exec,
    source_pod,
    status_lines,
    wait_log,
)
from tests.e2e.meshctl import Mesh, retry

pytestmark = pytest.mark.e2e

SE_HTTPBIN = """apiVersion: networking.istio.io/v1alpha3
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
SE_GOOGLE = """apiVersion: networking.istio.io/v1alpha3
kind: ServiceEntry
metadata:
  name: google
spec:
  hosts:
  - www.google.com
  ports:
  - number: 443
    name: https
    protocol: HTTPS
  resolution: DNS
  location: MESH_EXTERNAL
"""
VS_TIMEOUT = """apiVersion: networking.istio.io/v1alpha3
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


def _both_https(mesh: Mesh, pod: str) -> tuple[list[str], list[int], list[str]]:
    """`curl -sI https://www.google.com | grep "HTTP/"; curl -sI https://edition.cnn.com
    | grep "HTTP/"`: the status lines, the two exit codes and kubectl's stderr lines."""
    google = sleep_exec(mesh, pod, "curl", "-sI", "https://www.google.com")
    cnn = sleep_exec(mesh, pod, "curl", "-sI", "https://edition.cnn.com")
    return (
        status_lines(google.stdout) + status_lines(cnn.stdout),
        [google.returncode, cnn.returncode],
        google.stderr.splitlines() + cnn.stderr.splitlines(),
    )


def _timed_delay(mesh: Mesh, pod: str) -> tuple[str, float]:
    """`time curl -o /dev/null -sS -w "%{http_code}\\n" http://httpbin.org/delay/5`:
    the code curl printed and the elapsed time `time` reported (GNU time's format here)."""
    proc = sleep_exec(
        mesh,
        pod,
        "time",
        "curl",
        "-o",
        "/dev/null",
        "-sS",
        "-w",
        "%{http_code}\n",
        "http://httpbin.org/delay/5",
    )
    m = re.search(r"(\d+):(\d+\.\d+)elapsed", proc.stderr)
    assert m, proc.stderr
    return proc.stdout.strip(), int(m.group(1)) * 60 + float(m.group(2))


def test_accessing_external_services(mesh: Mesh) -> None:
    # Before you begin: "enable Envoy's access logging", the sleep sample, and SOURCE_POD.
    mesh.meshgate("install", "--set", "meshConfig.accessLogFile=/dev/stdout", "-y")
    mesh.meshgate("apply", "-f", str(SLEEP_YAML))
    pod = source_pod(mesh)

    # Envoy passthrough: the mode is ALLOW_ANY (or unset), and both HTTPS sites answer.
    mode = mesh.meshgate("get", "meshconfig").stdout
    assert "ALLOW_ANY" in mode, mode
    lines, codes, _ = _both_https(mesh, pod)
    assert lines == ["HTTP/2 200", "HTTP/2 200"], (lines, codes)

    # Change to the blocking-by-default policy (istioctl install --set ... ).
    out = mesh.meshgate(
        "install", "--set", "meshConfig.outboundTrafficPolicy.mode=REGISTRY_ONLY", "-y"
    ).stdout
    assert "meshConfig.outboundTrafficPolicy.mode: (unset) -> REGISTRY_ONLY" in out, out
    assert "Installation complete" in out, out
    # "It may take a while for the configuration change to propagate": retry.
    ok, (lines, codes, said) = retry(lambda: _both_https(mesh, pod), lambda r: r[1] == [35, 35], 20)
    # kubectl adds "command terminated with exit code 35"; meshgate exec only exits 35.
    assert ok and lines == [] and said == [], (lines, codes, said)

    # Access an external HTTP service.
    assert (
        apply_yaml(mesh, SE_HTTPBIN).strip()
        == "serviceentry.networking.istio.io/httpbin-ext created"
    )
    ok, proc = retry(
        lambda: sleep_exec(mesh, pod, "curl", "-sS", "http://httpbin.org/headers"),
        lambda p: p.stdout.startswith("{"),
        20,
    )
    assert ok, proc.stdout + proc.stderr
    headers = json.loads(proc.stdout)["headers"]
    assert headers["Accept"] == "*/*"
    assert headers["Host"] == "httpbin.org"
    # "Note the headers added by the Istio sidecar proxy: X-Envoy-Decorator-Operation."
    assert headers["X-Envoy-Decorator-Operation"] == "httpbin.org:80/*"
    # And Istio's metadata exchange: who the caller is.
    ip = mesh.meshgate("get", "pod", pod, "-o", "jsonpath={.status.podIP}").stdout.strip()
    assert headers["X-Envoy-Peer-Metadata-Id"] == (
        f"sidecar~{ip}~{pod}.default~default.svc.cluster.local"
    )
    node = struct_pb2.Struct()
    node.ParseFromString(base64.b64decode(headers["X-Envoy-Peer-Metadata"]))
    meta = json_format.MessageToDict(node)
    assert meta["NAME"] == pod and meta["NAMESPACE"] == "default"
    assert meta["WORKLOAD_NAME"] == "sleep" and meta["LABELS"]["app"] == "sleep"

    # The sidecar's log: the entry of that request.
    entry = wait_log(mesh, pod, {"path": "/headers", "authority": "httpbin.org"})
    assert entry["method"] == "GET" and entry["protocol"] == "HTTP/1.1"
    assert entry["response_code"] == 200
    assert entry["upstream_cluster"] == "outbound|80||httpbin.org"
    assert entry["upstream_host"] == "198.51.100.20:80"
    assert str(entry["user_agent"]).startswith("curl/")

    # Access an external HTTPS service.
    apply_yaml(mesh, SE_GOOGLE)
    ok, proc = retry(
        lambda: sleep_exec(mesh, pod, "curl", "-sSI", "https://www.google.com"),
        lambda p: status_lines(p.stdout) == ["HTTP/2 200"],
        20,
    )
    assert ok, proc.stdout + proc.stderr
    entry = wait_log(mesh, pod, {"upstream_cluster": "outbound|443||www.google.com"})
    assert entry["requested_server_name"] == "www.google.com"
    assert entry["upstream_host"] == "198.51.100.40:443"
    assert entry["method"] is None and entry["response_code"] == 0  # "- - -" 0: a TCP entry

    # Manage traffic to external services: 200 after about 5 s...
    code, took = _timed_delay(mesh, pod)
    assert code == "200" and 5.0 <= took < 8.0, (code, took)
    # ...then a 3 s timeout, and 504 after about 3 s ("wait a few seconds").
    apply_yaml(mesh, VS_TIMEOUT)
    ok, (code, took) = retry(lambda: _timed_delay(mesh, pod), lambda r: r[0] == "504", 30)
    assert ok, (code, took)
    assert 2.9 <= took < 4.5, took
    entry = wait_log(mesh, pod, {"path": "/delay/5", "response_code": 504})
    assert entry["response_flags"] == "UT"  # upstream request timeout

    # Cleanup the controlled access to external services.
    out = mesh.meshgate("delete", "serviceentry", "httpbin-ext", "google").stdout
    assert "httpbin-ext" in out and "google" in out, out
    mesh.meshgate("delete", "virtualservice", "httpbin-ext", "--ignore-not-found=true")

    # Direct access: the sidecar captures only the mesh's own ranges (pods and services).
    mesh.meshgate(
        "install", "--set", "values.global.proxy.includeIPRanges=10.34.0.0/16\\,10.96.0.0/16", "-y"
    )
    # "The bypass configuration only affects new deployments": redeploy sleep.
    mesh.meshgate("delete", "-f", str(SLEEP_YAML))
    ok, _ = retry(
        lambda: mesh.meshgate("get", "pod", pod, check=False).returncode,
        lambda rc: rc != 0,
        30,
    )
    assert ok, f"{pod} still there"
    mesh.meshgate("apply", "-f", str(SLEEP_YAML))
    pod = source_pod(mesh)
    before = len(access_log(mesh, pod))
    proc = sleep_exec(mesh, pod, "curl", "-s", "http://httpbin.org/headers")
    headers = json.loads(proc.stdout)["headers"]
    assert headers["Host"] == "httpbin.org" and headers["Accept"] == "*/*"
    # "You don't see any headers related to the Istio sidecar..."
    assert not [h for h in headers if h.lower().startswith("x-envoy")], headers
    # "...and the requests sent to external services do not appear in the log of the sidecar."
    time.sleep(1)
    assert [e for e in access_log(mesh, pod)[before:] if e.get("authority") == "httpbin.org"] == []

    # Cleanup of the direct access (istioctl install without the setting), and of sleep.
    mesh.meshgate("install", "--set", "values.global.proxy.includeIPRanges=*", "-y")
    mesh.meshgate("delete", "-f", str(SLEEP_YAML))
