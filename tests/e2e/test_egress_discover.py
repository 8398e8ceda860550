"""``meshgate egress discover`` on a real mesh (issue 19, part 5).

Under ALLOW_ANY the sleep pod reaches three world hosts: httpbin.org over HTTP, www.google.com
over HTTPS, and tcp.example.org on port 9000, a port no service declares, so the sidecar has
no listener of its own for it and tcp_proxies the connection as raw TCP (Istio's catch-all
chain). ``egress discover --emit yaml`` writes ServiceEntries that pass ``meshgate validate``;
applied with REGISTRY_ONLY they keep those three working while never.example.org, never
reached before, is refused: 502 over HTTP, a reset over TLS. Before the switch,
``egress dry-run --mode REGISTRY_ONLY`` predicts the three refused (502, reset, reset), and
with the emitted file as ``-f`` none; ``trace`` predicts the never-seen host's 502 and reset
under the new config, as curl then gets them.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import _skip_reason
from tests.e2e.meshctl import WALKTHROUGH, Mesh, retry

pytestmark = pytest.mark.e2e

WORLD = """\
hosts:
- names: [httpbin.org]
  address: 198.51.100.20
  ports:
  - port: 80
    response: {status: 404}
    paths:
    - exact: /get
      response: {status: 200, body: "{\\"url\\": \\"http://httpbin.org/get\\"}\\n"}
- names: [www.google.com]
  address: 198.51.100.40
  ports:
  - {port: 443, protocol: https, response: {status: 200, body: "google\\n"}}
- names: [tcp.example.org]
  address: 198.51.100.50
  ports:
  - {port: 9000, response: {status: 200, body: "tcp-ok\\n"}}
- names: [never.example.org]
  address: 198.51.100.60
  ports:
  - {port: 80, response: {status: 200, body: "never\\n"}}
  - {port: 443, protocol: https, response: {status: 200, body: "never\\n"}}
"""

MESH = """\
apiVersion: meshgate.io/v1alpha1
kind: MeshConfig
metadata:
  name: default
spec:
  accessLogFile: {log}
  outboundTrafficPolicy:
    mode: {mode}
"""


@pytest.fixture
def world_mesh(tmp_path: Path) -> Iterator[Mesh]:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    world = tmp_path / "world.yaml"
    world.write_text(WORLD)
    m = Mesh(tmp_path / "home")
    m.meshgate("up", "--world", str(world))
    try:
        yield m
    finally:
        m.meshgate("down", "--force", check=False)
        from meshgate.home import mesh_id

        left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert f"mg-{mesh_id(m.home)}" not in left, f"namespaces left behind: {left}"


def _mesh(log: str, mode: str) -> str:
    return MESH.format(log=f'"{log}"', mode=mode)


def _three(mesh: Mesh, pod: str) -> list[str]:
    """What each of the three destinations answers: body, or curl's error."""
    out = []
    for url in (
        "http://httpbin.org/get",
        "https://www.google.com/",
        "http://tcp.example.org:9000/",
    ):
        proc = mesh.curl(pod, url)
        out.append(proc.stdout.strip() if proc.returncode == 0 else f"exit {proc.returncode}")
    return out


NEVER = "http://never.example.org/"
EXPECTED = ['{"url": "http://httpbin.org/get"}', "google", "tcp-ok"]


def _discovered(mesh: Mesh) -> dict[tuple[str, int, str], dict[str, Any]]:
    out = mesh.meshgate("egress", "discover", "-n", "default", "-o", "json").stdout
    return {(r["host"], r["port"], r["protocol"]): r for r in json.loads(out)["destinations"]}


class DryRun(subprocess.CompletedProcess[str]):
    data: dict[str, Any]


def _dry_run(mesh: Mesh, *args: str) -> DryRun:
    proc = mesh.meshgate(
        "egress", "dry-run", "--mode", "REGISTRY_ONLY", "-n", "default", "-o", "json", *args,
        check=False,
    )  # fmt: skip
    assert proc.returncode in (0, 3), proc
    out = DryRun(proc.args, proc.returncode, proc.stdout, proc.stderr)
    out.data = json.loads(proc.stdout)
    return out


def _verdicts(groups: list[dict[str, Any]]) -> dict[tuple[str, str, int], tuple[str, Any]]:
    """Dry-run groups as (protocol, host, port) -> the changed config's (verdict, status)."""
    return {
        (g["protocol"], g["host"], g["port"]): (g["after"]["verdict"], g["after"]["status"])
        for g in groups
    }


def _trace(mesh: Mesh, pod: str, target: str) -> tuple[str, Any, str]:
    """trace's verdict, status and reason for one request of ``pod``."""
    data = json.loads(mesh.meshgate("trace", pod, target, "-o", "json").stdout)
    return data["verdict"], data["status"], data["reason"]


def test_discovered_service_entries_keep_seen_traffic_under_registry_only(
    world_mesh: Mesh, tmp_path: Path
) -> None:
    mesh = world_mesh
    mesh.meshgate("apply", "-f", str(WALKTHROUGH / "1-sleep.yaml"))
    mesh.meshgate("apply", "-f", "-", input=_mesh("", "ALLOW_ANY"))
    sleep = mesh.wait_pod("default", "sleep-")

    # Sidecars do not log without accessLogFile: discover says so, and lists nothing.
    assert _three(mesh, sleep) == EXPECTED
    silent = mesh.meshgate("egress", "discover")
    assert silent.stdout == ""
    assert silent.stderr.startswith("no sidecar access logs recorded in the last 1h: "), silent
    assert "accessLogFile" in silent.stderr

    mesh.meshgate("apply", "-f", "-", input=_mesh("/dev/stdout", "ALLOW_ANY"))

    # Until the sidecar logs (its next config), then each destination is reached 2 times more.
    def probe() -> dict[tuple[str, int, str], dict[str, Any]]:
        mesh.curl(sleep, "http://httpbin.org/get")
        return _discovered(mesh)

    ok, seen = retry(probe, lambda d: ("httpbin.org", 80, "HTTP") in d, 30.0, interval=0.5)
    assert ok, f"{seen}\n{mesh.log_tail()}"
    before = seen[("httpbin.org", 80, "HTTP")]["requests"]
    for _ in range(2):
        assert _three(mesh, sleep) == EXPECTED

    found = _discovered(mesh)
    tcp = ("198.51.100.50", 9000, "TCP")
    assert found[("httpbin.org", 80, "HTTP")]["requests"] == before + 2, found
    assert found[tcp]["requests"] == 2, found
    # HTTPS: the catch-all chain reads no SNI under ALLOW_ANY (as Istio's), so the sidecar
    # logs the address dialed and the host is listed as TCP to that address and port.
    https = ("198.51.100.40", 443, "TCP")
    assert set(found) == {("httpbin.org", 80, "HTTP"), https, tcp}, found
    assert found[https]["requests"] == 2, found
    for row in found.values():
        assert (row["workload"], row["workloadKind"], row["serviceAccount"]) == (
            "sleep", "Deployment", "sleep"
        ), row  # fmt: skip
        assert row["pods"] == [sleep] and row["lastSeen"].endswith("Z")
    assert not any(k[0] == "never.example.org" for k in found)

    table = mesh.meshgate("egress", "discover", "-n", "default").stdout.splitlines()
    assert table[0].split() == [
        "NAMESPACE", "WORKLOAD", "SERVICE", "ACCOUNT", "HOST", "PORT", "PROTOCOL", "REQUESTS",
        "LAST", "SEEN",
    ]  # fmt: skip
    assert any(line.split()[:6] == ["default", "deployment/sleep", "sleep", "httpbin.org",
                                    "80", "HTTP"] for line in table), table  # fmt: skip

    emitted = mesh.meshgate("egress", "discover", "-n", "default", "--emit", "yaml")
    path = tmp_path / "egress.yaml"
    path.write_text(emitted.stdout)
    hosts = [doc["spec"]["hosts"] for doc in yaml.safe_load_all(emitted.stdout)]
    assert hosts == [
        ["ip-198-51-100-40.discovered.external"],
        ["ip-198-51-100-50.discovered.external"],
        ["httpbin.org"],
    ], emitted.stdout
    mesh.meshgate("validate", "-f", str(path))

    # Before the switch, dry-run predicts it: REGISTRY_ONLY alone refuses all three ...
    alone = _dry_run(mesh)
    assert alone.returncode == 3, alone
    by_http, by_https = ("http", "httpbin.org", 80), ("tcp", "198.51.100.40", 443)
    by_tcp = ("tcp", "198.51.100.50", 9000)
    assert _verdicts(alone.data["refused"]) == {
        by_http: ("blocked", 502), by_https: ("reset", "reset"), by_tcp: ("reset", "reset")
    }, alone.data  # fmt: skip
    assert alone.data["unchanged"] == [], alone.data
    text = mesh.meshgate("egress", "dry-run", "--mode", "REGISTRY_ONLY", check=False).stdout
    assert "3 kind(s) of recent request would now be refused:" in text, text
    assert "GET http://httpbin.org:80/get x" in text and "-> blocked, HTTP 502" in text, text
    assert "why: blocked: the outbound traffic policy" in text, text
    assert "no ServiceEntry registers httpbin.org" in text, text
    assert "TCP 198.51.100.50:9000 x" in text and "-> reset, the connection is reset" in text
    # ... and with the discovered entries (not applied yet) it refuses none of them.
    kept = _dry_run(mesh, "-f", str(path))
    assert kept.returncode == 0 and kept.data["refused"] == [], kept
    assert _verdicts(kept.data["unchanged"]) == {
        by_http: ("allowed", None), by_https: ("allowed", None), by_tcp: ("allowed", None)
    }, kept.data  # fmt: skip
    text = mesh.meshgate("egress", "dry-run", "--mode", "REGISTRY_ONLY", "-f", str(path)).stdout
    assert "with the 3 given resource(s)" in text and "No recent request would be refused." in text
    nothing = json.loads(mesh.meshgate("get", "se", "-A", "-o", "json").stdout)
    assert nothing["items"] == [], "dry-run -f applied something"
    # The never-seen host has no record to dry-run: trace it (under ALLOW_ANY it goes out).
    assert _trace(mesh, sleep, NEVER)[:2] == ("allowed", None)

    mesh.meshgate("apply", "-f", str(path))
    mesh.meshgate("apply", "-f", "-", input=_mesh("/dev/stdout", "REGISTRY_ONLY"))

    # Until the never-seen host is refused (REGISTRY_ONLY reached the sidecar).
    def never() -> str:
        return mesh.curl(sleep, "-o", "/dev/null", "-w", "%{http_code}", NEVER).stdout

    ok, code = retry(
        never,
        lambda c: c == "502",
        30.0,
        interval=0.5,
    )
    assert ok, f"{code}\n{mesh.log_tail()}"
    assert _three(mesh, sleep) == EXPECTED
    reset = mesh.curl(sleep, "https://never.example.org/")
    assert reset.returncode == 35, reset  # SSL connect error: the connection was reset
    # What trace predicts for the never-seen host under the new config is what curl got.
    assert _trace(mesh, sleep, NEVER)[:2] == ("blocked", 502)
    verdict, status, reason = _trace(mesh, sleep, "https://never.example.org/")
    assert (verdict, status) == ("reset", "reset") and "BlackHoleCluster" in reason
    # The three discovered ones: allowed, as dry-run said.
    for url in ("http://httpbin.org/get", "https://www.google.com/", "tcp.example.org:9000"):
        assert _trace(mesh, sleep, url)[:2] == ("allowed", None), url
    # The switch is done: the same dry-run now finds nothing more to refuse.
    assert _dry_run(mesh).data["refused"] == []
    after = _discovered(mesh)
    assert not any(k[0] == "never.example.org" for k in after), after
