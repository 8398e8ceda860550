"""The seed walkthrough as snapshot input: decoded YAML plus the pods a controller would run.

Rules: everything is fixed (pod names, IPs) so translated output is stable for golden files;
the gateway's Service comes from the workload controller's own pure function, as in the
control plane.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from meshgate.api.decode import decode_object, decode_text
from meshgate.model.proxy import Proxy
from meshgate.model.snapshot import Snapshot
from meshgate.server.workloads import gateway_labels, gateway_objects

WALKTHROUGH = Path(__file__).resolve().parents[2] / "examples" / "walkthrough"
STEPS = ("1-sleep.yaml", "2-registry-only.yaml", "3-serviceentry.yaml", "4-egress-gateway.yaml")
SLEEP_IP = "10.34.0.5"
GATEWAY_IP = "10.34.0.6"
SLEEP_POD = "sleep-6f8cb8f5d4-x7k2p"
GATEWAY_POD = "istio-egressgateway-7c9d5f6b8-q4wzt"


def decode(text: str, filename: str = "<test>") -> list[Any]:
    result = decode_text(text, filename)
    assert result.ok, result.problems
    return result.resources


def _object(obj: dict[str, Any]) -> Any:
    resource, problems = decode_object(obj)
    assert resource is not None, problems
    return resource


def pod(
    name: str,
    namespace: str,
    ip: str,
    labels: dict[str, str],
    *,
    router: bool = False,
    service_account: str = "default",
    ports: list[dict[str, Any]] | None = None,
    phase: str = "Running",
) -> Any:
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": labels}
    if router:
        meta["annotations"] = {"meshgate.io/proxy-type": "router"}
    container: dict[str, Any] = {"name": "main", "image": "example"}
    if ports:
        container["ports"] = ports
    return _object(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": meta,
            "spec": {"serviceAccountName": service_account, "containers": [container]},
            "status": {"phase": phase, "podIP": ip},
        }
    )


def step_resources(step: int) -> list[Any]:
    """Every resource present after applying walkthrough files 1..step, plus pods."""
    resources: list[Any] = []
    for filename in STEPS[:step]:
        resources.extend(decode((WALKTHROUGH / filename).read_text(), filename))
    resources.append(pod(SLEEP_POD, "default", SLEEP_IP, {"app": "sleep"}, service_account="sleep"))
    for r in list(resources):
        if r.kind == "IstioGateway":
            wire = r.to_wire()
            for obj in gateway_objects(wire):
                if obj["kind"] == "Service":
                    resources.append(_object(obj))
            resources.append(
                pod(
                    GATEWAY_POD,
                    r.namespace,
                    GATEWAY_IP,
                    gateway_labels(wire),
                    router=True,
                    service_account=f"{r.name}-service-account",
                )
            )
    return resources


def step_snapshot(step: int) -> Snapshot:
    return Snapshot.build(step_resources(step))


def sleep_proxy(snapshot: Snapshot) -> Proxy:
    proxy = snapshot.proxy_for(f"sidecar~{SLEEP_IP}~{SLEEP_POD}.default~default.svc.cluster.local")
    assert proxy is not None
    return proxy


def gateway_proxy(snapshot: Snapshot) -> Proxy:
    node = f"router~{GATEWAY_IP}~{GATEWAY_POD}.istio-system~istio-system.svc.cluster.local"
    proxy = snapshot.proxy_for(node)
    assert proxy is not None
    return proxy
