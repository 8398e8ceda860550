"""``meshgate top`` on a real mesh: the sleep pod's requests to aliyun.com, first refused by
REGISTRY_ONLY (the sidecar's 502), then through the seed's egress gateway (301), show up as
aliyun.com's rows: the sidecar's counts every request it sent with the refusals as errors,
the gateway's counts exactly what the gateway logged, without errors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e.meshctl import WALKTHROUGH, Mesh, retry

pytestmark = pytest.mark.e2e

REFUSED, OK = 4, 10
PROBE = "edition.cnn.com"  # makes sure the sidecar logs before aliyun.com is counted


def _top(mesh: Mesh) -> dict[tuple[str, str], dict[str, Any]]:
    out = mesh.meshgate("top", "--once", "-o", "json", "--window", "10m").stdout
    data = json.loads(out)
    assert data["window"] == 600.0
    return {(h["host"], h["reporter"]): h for h in data["hosts"] if h["protocol"] == "http"}


def _code(mesh: Mesh, pod: str, host: str) -> str:
    proc = mesh.curl(pod, "-o", "/dev/null", "-w", "%{http_code}", f"http://{host}/")
    return proc.stdout.strip() or "000"


def _gateway_lines(mesh: Mesh) -> int:
    out = mesh.meshgate(
        "logs", "--gateway", "istio-egressgateway", "-n", "istio-system",
        "--host", "aliyun.com", "-o", "json",
    ).stdout  # fmt: skip
    return len(out.splitlines())


def test_top_shows_aliyun_with_its_requests_and_refusals(mesh: Mesh) -> None:
    # Sidecars log when the mesh asks for access logs (as on Istio); gateways always do.
    registry_only = (WALKTHROUGH / "2-registry-only.yaml").read_text()
    logging = registry_only.replace("spec:\n", "spec:\n  accessLogFile: /dev/stdout\n")
    assert logging != registry_only
    mesh.meshgate("apply", "-f", str(WALKTHROUGH / "1-sleep.yaml"))
    sleep = mesh.wait_pod("default", "sleep-")
    empty = mesh.meshgate("top", "--once")
    assert empty.stdout == "" and empty.stderr.startswith("No traffic in the last 1m"), empty
    mesh.meshgate("apply", "-f", "-", input=logging)

    # Until a refusal of another host is in top, the sidecar may not log yet: from then on
    # every request to aliyun.com is counted, and each code curl saw is recorded.
    def probe() -> dict[tuple[str, str], dict[str, Any]]:
        _code(mesh, sleep, PROBE)
        return _top(mesh)

    ok, seen = retry(probe, lambda t: (PROBE, "sidecar") in t, 30.0, interval=0.5)
    assert ok, f"{seen}\n{mesh.log_tail()}"
    codes = [_code(mesh, sleep, "aliyun.com") for _ in range(REFUSED)]
    assert codes == ["502"] * REFUSED, codes

    mesh.meshgate("apply", "-f", str(WALKTHROUGH / "3-serviceentry.yaml"))
    mesh.meshgate("apply", "-f", str(WALKTHROUGH / "4-egress-gateway.yaml"))
    mesh.wait_pod("istio-system", "istio-egressgateway-")

    # Until a request is in the gateway's log: the route through the gateway is in place.
    def via_gateway() -> int:
        codes.append(_code(mesh, sleep, "aliyun.com"))
        return _gateway_lines(mesh)

    ok, _ = retry(via_gateway, lambda n: n >= 1, 40.0, interval=0.5)
    assert ok, f"{codes}\n{mesh.log_tail()}"
    sent = [_code(mesh, sleep, "aliyun.com") for _ in range(OK)]
    assert sent == ["301"] * OK, sent
    codes += sent

    errors = sum(1 for c in codes if c == "000" or c == "403" or c.startswith("5"))
    assert errors >= REFUSED

    def counted() -> tuple[dict[tuple[str, str], dict[str, Any]], int]:
        return _top(mesh), _gateway_lines(mesh)

    def right(seen: tuple[dict[tuple[str, str], dict[str, Any]], int]) -> bool:
        rows, gateway_lines = seen
        sidecar = rows.get(("aliyun.com", "sidecar"), {})
        gateway = rows.get(("aliyun.com", "gateway"), {})
        return (
            sidecar.get("requests") == len(codes)
            and sidecar.get("errors") == errors
            and gateway.get("requests") == gateway_lines
            and gateway_lines >= OK
        )

    ok, (rows, gateway_lines) = retry(counted, right, 30.0, interval=0.5)
    assert ok, f"codes {codes}, gateway lines {gateway_lines}: {rows}\n{mesh.log_tail()}"
    sidecar, gateway = rows[("aliyun.com", "sidecar")], rows[("aliyun.com", "gateway")]
    assert sidecar["errorRate"] == round(errors / len(codes), 4)
    assert sidecar["requestsPerSecond"] == round(len(codes) / 600, 4)
    assert gateway["errors"] == 0 and gateway["errorRate"] == 0.0
    assert 0 <= gateway["p50Ms"] <= gateway["p99Ms"]

    # Filters: the gateway alone counts each request once; the table names the same rows.
    only = json.loads(
        mesh.meshgate(
            "top", "--once", "-o", "json", "--window", "10m",
            "--gateway", "istio-egressgateway", "-n", "istio-system",
        ).stdout
    )  # fmt: skip
    assert [(h["host"], h["requests"]) for h in only["hosts"]] == [("aliyun.com", gateway_lines)]
    table = mesh.meshgate("top", "--once", "--window", "10m").stdout.splitlines()
    assert table[0].split() == ["HOST", "REPORTER", "PROTO", "REQ/S", "ERRORS", "P50", "P99",
                                "REQUESTS"]  # fmt: skip
    assert any(line.split()[:2] == ["aliyun.com", "gateway"] for line in table[1:]), table
