"""MeshConfig ``accessLogEncoding``: ``TEXT`` makes the sidecar's and the gateway's own log
lines Istio's default text line, the mesh-wide log (the gRPC stream) keeps its structured
entries, and ``JSON`` brings the seed's 24-key line back."""

from __future__ import annotations

import json
import re
import time
import uuid

import pytest

from tests.e2e.meshctl import WALKTHROUGH, Mesh

pytestmark = pytest.mark.e2e

GATEWAY = "istio-egressgateway"
# Istio's default text line (pilot's EnvoyTextLogFormat) for the seed's request: start,
# request, code, flags, code details, termination details, "transport failure", bytes
# received and sent, duration, upstream service time, "x-forwarded-for", "user agent",
# "request id", "authority", "upstream host", cluster, upstream local, downstream local,
# downstream remote, SNI, route name.
TEXT_LINE = re.compile(
    r'^\[20\d\d-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\] "GET / HTTP/1\.1" 301 - via_upstream - "-" '
    r'\d+ \d+ \d+ \d+ "[^"]*" "(?P<ua>[^"]+)" "[-0-9a-f]+" "aliyun\.com" "(?P<upstream>[^"]+)" '
    r"(?P<cluster>\S+) \S+ \S+ \S+ \S+ \S+$"
)


def _curl(mesh: Mesh, sleep: str, agent: str) -> str:
    out = mesh.curl(sleep, "-o", "/dev/null", "-w", "%{http_code}", "-A", agent, "aliyun.com")
    return out.stdout


def _lines(mesh: Mesh, namespace: str, pod: str, agent: str) -> list[str]:
    out = mesh.meshgate("logs", "-n", namespace, pod, "-c", "istio-proxy").stdout
    return [line for line in out.splitlines() if agent in line]


def _wait_line(mesh: Mesh, sleep: str, namespace: str, pod: str, text: bool) -> str:
    """Send requests with a fresh user agent until ``pod``'s proxy logs one in the
    wanted shape (a configuration push takes a moment to reach the proxies)."""
    agent = f"mg-{uuid.uuid4().hex[:12]}"
    deadline = time.monotonic() + 30
    seen: list[str] = []
    while time.monotonic() < deadline:
        assert _curl(mesh, sleep, agent) == "301"
        seen = _lines(mesh, namespace, pod, agent)
        for line in seen:
            if line.startswith("[") == text:
                return line
        time.sleep(0.3)
    raise AssertionError(f"no {'text' if text else 'JSON'} line in {pod}'s log: {seen}")


def test_text_encoding_and_back_to_json(mesh: Mesh) -> None:
    for step in ("1-sleep.yaml", "2-registry-only.yaml", "3-serviceentry.yaml"):
        mesh.meshgate("apply", "-f", str(WALKTHROUGH / step))
    mesh.meshgate("apply", "-f", str(WALKTHROUGH / "4-egress-gateway.yaml"))
    sleep = mesh.wait_pod("default", "sleep-")
    gateway = mesh.wait_pod("istio-system", f"{GATEWAY}-")
    out = mesh.meshgate(
        "install",
        "--set", "meshConfig.accessLogFile=/dev/stdout",
        "--set", "meshConfig.accessLogEncoding=TEXT",
        "-y",
    )  # fmt: skip
    assert "meshConfig.accessLogEncoding: (unset) -> TEXT" in out.stdout

    # The sidecar's line and the gateway's: Istio's text line.
    line = _wait_line(mesh, sleep, "default", sleep, text=True)
    match = TEXT_LINE.match(line)
    assert match, line
    assert match["cluster"] == f"outbound|80||{GATEWAY}.istio-system.svc.cluster.local", line
    line = _wait_line(mesh, sleep, "istio-system", gateway, text=True)
    assert line.startswith("[20") and '"GET / HTTP/1.1" 301' in line, line
    match = TEXT_LINE.match(line)
    assert match, line
    assert match["cluster"] == "outbound|80||aliyun.com", line

    # The mesh-wide log still has that request's structured entry (the gRPC stream).
    agent = match["ua"]
    entries: list[dict[str, object]] = []
    for _ in range(50):
        out = mesh.meshgate("logs", "--gateway", GATEWAY, "-n", "istio-system", "-o", "json")
        entries = [json.loads(x) for x in out.stdout.splitlines() if agent in x]
        if entries:
            break
        time.sleep(0.2)
    assert entries, f"no structured entry for {agent} in the mesh-wide log"
    assert entries[0]["response_code"] == 301 and entries[0]["method"] == "GET"
    assert entries[0]["upstream_cluster"] == "outbound|80||aliyun.com"

    # Back to JSON: the seed's 24 keys, on both proxies.
    out = mesh.meshgate("install", "--set", "meshConfig.accessLogEncoding=JSON", "-y")
    assert "meshConfig.accessLogEncoding: TEXT -> JSON" in out.stdout
    for namespace, pod, cluster in (
        ("default", sleep, f"outbound|80||{GATEWAY}.istio-system.svc.cluster.local"),
        ("istio-system", gateway, "outbound|80||aliyun.com"),
    ):
        entry = json.loads(_wait_line(mesh, sleep, namespace, pod, text=False))
        assert len(entry) == 24 and entry["response_code"] == 301 and entry["method"] == "GET"
        assert entry["upstream_cluster"] == cluster
