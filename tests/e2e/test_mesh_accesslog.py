"""One log for the whole mesh: every replica of the egress gateway streams its access log to
the control plane (ALS) and its own log is backfilled, so ``meshgate logs --gateway`` lists
every request once, whichever replica served it, and still after a replica's Envoy is
killed (SIGKILL, its in-memory stream buffer lost) in the middle of the run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.e2e.meshctl import WALKTHROUGH, Mesh, meshgate_argv, retry

pytestmark = pytest.mark.e2e

REQUESTS = 300
LOOP = (
    f"for i in $(seq {REQUESTS}); do curl -s -o /dev/null --max-time 5 -w '%{{http_code}}\\n'"
    " http://aliyun.com/; done"
)


def _gateway_pods(mesh: Mesh) -> list[str]:
    pods = json.loads(mesh.meshgate("get", "pods", "-n", "istio-system", "-o", "json").stdout)
    return sorted(
        p["metadata"]["name"]
        for p in pods["items"]
        if p["metadata"]["name"].startswith("istio-egressgateway-")
        and p["status"].get("phase") == "Running"
    )


def _envoy_pid(mesh: Mesh, pod: str) -> int:
    """The replica's Envoy, from the runtime's own record of the processes it started."""
    manifest = json.loads((mesh.home / "runtime" / "manifest.json").read_text())
    (pid,) = [
        p["pid"] for key, p in manifest["processes"].items() if pod in key and "istio-proxy" in key
    ]
    return int(pid)


def _merged(mesh: Mesh) -> list[dict[str, object]]:
    out = mesh.meshgate(
        "logs", "--gateway", "istio-egressgateway", "-n", "istio-system",
        "--host", "aliyun.com", "-o", "json",
    ).stdout  # fmt: skip
    return [json.loads(line) for line in out.splitlines()]


def _replica_ids(mesh: Mesh, pods: list[str]) -> list[str]:
    """Request ids in the replicas' own logs (and the killed one's previous run)."""
    ids = []
    for pod in pods:
        for extra in ((), ("-p",)):
            proc = mesh.meshgate(
                "-n", "istio-system", "logs", pod, "-c", "istio-proxy", *extra, check=False
            )
            for line in proc.stdout.splitlines():
                if line.startswith("{"):
                    e = json.loads(line)
                    if e["authority"] == "aliyun.com":
                        ids.append(str(e["request_id"]))
    return ids


def test_every_gateway_request_listed_once_even_when_a_replica_dies(
    mesh: Mesh, tmp_path: Path
) -> None:
    three = (
        (WALKTHROUGH / "4-egress-gateway.yaml")
        .read_text()
        .replace("replicaCount: 1", "replicaCount: 3")
    )
    (tmp_path / "gw.yaml").write_text(three)
    for step in ("1-sleep.yaml", "3-serviceentry.yaml"):
        mesh.meshgate("apply", "-f", str(WALKTHROUGH / step))
    mesh.meshgate("apply", "-f", str(tmp_path / "gw.yaml"))
    sleep = mesh.wait_pod("default", "sleep-")
    ok, pods = retry(lambda: _gateway_pods(mesh), lambda p: len(p) == 3, 60.0)
    assert ok, pods
    for pod in pods:
        mesh.wait_pod("istio-system", pod)
    ok, code = retry(
        lambda: (
            mesh.curl(sleep, "-o", "/dev/null", "-w", "%{http_code}", "http://aliyun.com/").stdout
        ),
        lambda c: c == "301",
        30.0,
    )
    assert ok, code
    time.sleep(2)  # the warm-up requests are logged before the run starts
    before = {str(e["request_id"]) for e in _merged(mesh)}

    # The run, with one replica's Envoy killed in its middle.
    run = subprocess.Popen(
        [*meshgate_argv(), "exec", sleep, "--", "/bin/sh", "-c", LOOP],
        env=mesh.env, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        time.sleep(3)
        os.kill(_envoy_pid(mesh, pods[1]), signal.SIGKILL)
        codes, _ = run.communicate(timeout=240)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    served = Counter(codes.split())
    assert sum(served.values()) == REQUESTS and served["301"] >= REQUESTS - 10, served

    # Each 301 passed one gateway replica once: the merged log has each once, and holds
    # every line of the replicas' own logs (the gateway gives each request its own id).
    def merged_ids() -> list[str]:
        return [str(e["request_id"]) for e in _merged(mesh) if e["request_id"] not in before]

    ok, got = retry(merged_ids, lambda g: len(g) >= served["301"], 30.0, interval=1.0)
    assert ok, f"{len(got)} entries for {served}\n{mesh.log_tail()}"
    assert len(got) == served["301"] and len(got) == len(set(got)), (len(got), served)
    own = set(_replica_ids(mesh, pods)) - before
    assert own <= set(got), f"{len(own - set(got))} lines of the replicas' logs missing"
    entries = [e for e in _merged(mesh) if e["request_id"] not in before]
    assert {e["pod"] for e in entries} == set(pods)  # every replica served some
    for e in entries:
        assert set(e) >= {"pod", "namespace", "reporter", "reason", "upstream_cluster"}
        assert len(e) == 28 and e["reporter"] == "gateway" and e["namespace"] == "istio-system"
        assert e["upstream_cluster"] == "outbound|80||aliyun.com" and e["reason"] is None
