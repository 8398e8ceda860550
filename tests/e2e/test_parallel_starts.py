"""Pods start in parallel (issue 14 part 6): a Deployment of 8 sidecar pods becomes Ready
together, each pod with its own address, and every proxy is given its configuration
(``proxy-status`` SYNCED for every type; none waited out Envoy's initial-fetch timeout)."""

from __future__ import annotations

import json
from typing import Any

from tests.e2e.meshctl import Mesh, retry

REPLICAS = 8
DEPLOYMENT = f"""\
apiVersion: v1
kind: ServiceAccount
metadata: {{name: par}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: par}}
spec:
  replicas: {REPLICAS}
  selector: {{matchLabels: {{app: par}}}}
  template:
    metadata: {{labels: {{app: par}}}}
    spec:
      terminationGracePeriodSeconds: 0
      serviceAccountName: par
      containers:
      - name: app
        image: curlimages/curl
        command: ["/bin/sleep", "infinity"]
"""


def _pods(mesh: Mesh) -> list[dict[str, Any]]:
    items = json.loads(mesh.meshgate("get", "pods", "-o", "json").stdout)["items"]
    return [p for p in items if p["metadata"]["name"].startswith("par-")]


def _ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def _synced(mesh: Mesh) -> list[dict[str, Any]]:
    statuses = json.loads(mesh.meshgate("proxy-status", "-o", "json").stdout)
    return [s for s in statuses if "~par-" in s["nodeId"]]


def test_a_deployment_of_eight_starts_in_parallel_and_every_proxy_is_synced(
    mesh: Mesh,
) -> None:
    mesh.meshgate("apply", "-f", "-", input=DEPLOYMENT)
    ok, pods = retry(
        lambda: _pods(mesh),
        lambda ps: len(ps) == REPLICAS and all(_ready(p) for p in ps),
        timeout=60,
        interval=0.5,
    )
    table = mesh.meshgate("get", "pods").stdout
    assert ok, f"not all {REPLICAS} pods Ready:\n{table}\n{mesh.log_tail()}"
    for line in table.splitlines():
        if line.startswith("par-"):
            assert line.split()[1:3] == ["2/2", "Running"], line
    ips = [p["status"]["podIP"] for p in pods]
    assert len(set(ips)) == REPLICAS, f"pod addresses not unique: {ips}"

    ok, statuses = retry(
        lambda: _synced(mesh),
        lambda ss: len(ss) == REPLICAS
        and all(ss_["types"] and all(t["state"] == "SYNCED" for t in ss_["types"].values())
                for ss_ in ss),
        timeout=30,
        interval=0.5,
    )  # fmt: skip
    assert ok, json.dumps(
        [{s["nodeId"]: {u: t["state"] for u, t in s["types"].items()}} for s in statuses],
        indent=1,
    )
    assert sorted(s["nodeId"].split("~")[1] for s in statuses) == sorted(ips)
    # No Envoy waited out its initial fetch (15 s): each was answered when it asked.
    for p in pods:
        log = mesh.home / "logs" / "pods" / "default" / p["metadata"]["name"] / "istio-proxy.log"
        assert "initial fetch timed out" not in log.read_text(errors="replace"), log
