"""Istio's NetworkPolicy recipe (egress-gateway task, "Additional security considerations"),
applied verbatim with egressEnforcement OFF: a namespace's pods reach the egress gateway
and DNS, and nothing else; and NetworkPolicy between pods, as a CNI plugin enforces it.
"""

from __future__ import annotations

import pytest

from tests.e2e.meshctl import WALKTHROUGH, Mesh, retry

pytestmark = pytest.mark.e2e

# `kubectl create namespace test-egress`.
TEST_EGRESS = """apiVersion: v1
kind: Namespace
metadata: {name: test-egress}
"""

# A pod that goes around its sidecar, as the task's sleep (not injected) does.
BARE = """apiVersion: v1
kind: Pod
metadata: {name: bare, namespace: test-egress, annotations: {sidecar.istio.io/inject: "false"}}
spec:
  containers: [{name: bare, image: curlimages/curl, command: [/bin/sleep, infinity]}]
"""

# Verbatim from the task.
RECIPE = """apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: allow-egress-to-istio-system-and-kube-dns
spec:
  podSelector: {}
  policyTypes:
  - Egress
  egress:
  - to:
    - namespaceSelector:
        matchLabels:
          kube-system: "true"
    ports:
    - protocol: UDP
      port: 53
  - to:
    - namespaceSelector:
        matchLabels:
          istio: system
"""

RECIPE_NAME = "allow-egress-to-istio-system-and-kube-dns"
GW = "istio-egressgateway.istio-system.svc.cluster.local"


def first_line(mesh: Mesh, pod: str, *curl: str, namespace: str = "test-egress") -> str:
    proc = mesh.meshgate(
        "exec", "-n", namespace, pod, "--", "curl", "-sS", "-I", "--max-time", "4", *curl,
        check=False,
    )  # fmt: skip
    lines = (proc.stdout or proc.stderr).splitlines()
    return lines[0] if lines else f"exit {proc.returncode}"


def test_istios_recipe_applies_verbatim_and_blocks_all_but_the_gateway(mesh: Mesh) -> None:
    for step in ("1-sleep.yaml", "3-serviceentry.yaml", "4-egress-gateway.yaml"):
        mesh.meshgate("apply", "-f", str(WALKTHROUGH / step))
    mesh.meshgate("apply", "-f", "-", input=TEST_EGRESS)
    mesh.meshgate("apply", "-n", "test-egress", "-f", str(WALKTHROUGH / "1-sleep.yaml"))
    mesh.meshgate("apply", "-f", "-", input=BARE)
    sleep = mesh.wait_pod("test-egress", "sleep-")
    mesh.wait_pod("test-egress", "bare")
    mesh.wait_pod("istio-system", "istio-egressgateway-")

    def seen() -> dict[str, str]:
        return {
            "no sidecar": first_line(mesh, "bare", "http://aliyun.com/"),
            "passthrough": first_line(mesh, sleep, "http://edition.cnn.com/"),
            "through the gateway": first_line(mesh, sleep, "http://aliyun.com/"),
        }

    # Before the policy (ALLOW_ANY): straight out, with or without the sidecar.
    ok, last = retry(seen, lambda s: all("301" in x for x in s.values()), 30)
    assert ok, last

    # The task's steps, each kubectl line with its meshgate twin.
    mesh.meshgate("label", "namespace", "istio-system", "istio=system")
    mesh.meshgate("label", "ns", "kube-system", "kube-system=true")
    applied = mesh.meshgate("apply", "-n", "test-egress", "-f", "-", input=RECIPE)
    assert "networkpolicy.networking.k8s.io/allow-egress-to-istio-system-and-kube-dns created" in (
        applied.stdout
    )
    got = mesh.meshgate("get", "netpol", "-n", "test-egress").stdout.split()
    assert got[:5] == ["NAME", "POD-SELECTOR", "AGE", RECIPE_NAME, "<none>"], got

    # Only the gateway's way is left: the world directly is refused at once (a reset, or
    # the sidecar's 503), DNS still answers.
    ok, last = retry(
        seen,
        lambda s: (
            "301" not in s["no sidecar"] + s["passthrough"] and "301" in s["through the gateway"]
        ),
        30,
    )
    assert ok, last
    assert "Couldn't connect" in last["no sidecar"] or "reset" in last["no sidecar"], last
    assert last["passthrough"].startswith("HTTP/1.1 503"), last
    names = mesh.meshgate(
        "exec", "-n", "test-egress", "bare", "--", "getent", "hosts", "aliyun.com"
    )
    assert "198.51.100.10" in names.stdout
    # The egress gateway (namespace istio-system), by its Service name: allowed.
    via_gateway = first_line(mesh, "bare", "-H", "Host: aliyun.com", f"http://{GW}/")
    assert via_gateway.startswith("HTTP/1.1 301"), via_gateway
    # Pods of other namespaces are not held back (pod-to-pod rules: the test below).
    default_sleep = mesh.wait_pod("default", "sleep-")
    default_out = first_line(mesh, default_sleep, "http://edition.cnn.com/", namespace="default")
    assert "301" in default_out, default_out

    # Without the kube-system label the recipe allows no DNS.
    mesh.meshgate("label", "ns", "kube-system", "kube-system-")
    ok, code = retry(
        lambda: (
            mesh.meshgate(
                "exec",
                "-n",
                "test-egress",
                "bare",
                "--",
                "getent",
                "hosts",
                "aliyun.com",
                check=False,
            ).returncode
        ),
        lambda code: code != 0,
        30,
    )
    assert ok, code

    # Deleting the policy opens the namespace again.
    mesh.meshgate("delete", "netpol", "-n", "test-egress", RECIPE_NAME)
    ok, last = retry(seen, lambda s: all("301" in x for x in s.values()), 30)
    assert ok, last


INGRESS = """apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-from-sleep, namespace: default}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: sleep}}}]
    ports: [{port: http}]
"""

WEB = """apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
  annotations: {sidecar.istio.io/inject: "false"}
spec:
  containers:
  - name: web
    image: python
    command: [python3, -m, http.server, "8080"]
    ports: [{name: http, containerPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata:
  name: other
  labels: {app: other}
  annotations: {sidecar.istio.io/inject: "false"}
spec:
  containers: [{name: other, image: curl, command: [/bin/sleep, infinity]}]
"""


def test_ingress_policy_between_pods_on_the_bridge(mesh: Mesh) -> None:
    mesh.meshgate("apply", "-f", str(WALKTHROUGH / "1-sleep.yaml"))
    mesh.meshgate("apply", "-f", "-", input=WEB)
    sleep = mesh.wait_pod("default", "sleep-")
    mesh.wait_pod("default", "web")
    mesh.wait_pod("default", "other")
    ip = mesh.meshgate("get", "pod", "web", "-o", "jsonpath={.status.podIP}").stdout
    url = f"http://{ip}:8080/"

    def both() -> tuple[str, str]:
        return (
            first_line(mesh, sleep, url, namespace="default"),
            first_line(mesh, "other", url, namespace="default"),
        )

    ok, seen = retry(both, lambda s: all("200" in x for x in s), 30)
    assert ok, seen
    mesh.meshgate("apply", "-f", "-", input=INGRESS)
    ok, seen = retry(both, lambda s: "200" in s[0] and "200" not in s[1], 30)
    assert ok, seen
