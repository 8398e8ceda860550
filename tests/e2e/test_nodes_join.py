"""Nodes that join (kubeadm's way): a token, `meshgate join` from another state directory,
a sleep pod placed on the joined node reaching aliyun.com through the egress gateway on
the first node, over mutual TLS; wrong and expired tokens refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.meshctl import WALKTHROUGH, Mesh, proxy_certificates, retry
from tests.e2e.test_mesh_mtls import GATEWAY_443, RECIPE

pytestmark = pytest.mark.e2e

# Only the sleep pod's identity may use the gateway: a request it lets through proves the
# sidecar presented that identity over mTLS (a plaintext peer has no principal).
# Placed by nodeSelector on the label node-2 joined with; and one nothing matches.
PLACED = """apiVersion: v1
kind: Pod
metadata: {name: picked, annotations: {sidecar.istio.io/inject: "false"}}
spec:
  nodeSelector: {zone: b}
  containers: [{name: c, image: curl, command: [/bin/sleep, infinity]}]
---
apiVersion: v1
kind: Pod
metadata: {name: nowhere, annotations: {sidecar.istio.io/inject: "false"}}
spec:
  nodeSelector: {zone: z}
  containers: [{name: c, image: curl, command: [/bin/sleep, infinity]}]
"""

ONLY_SLEEP = """apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: only-sleep, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: egressgateway}}
  action: ALLOW
  rules:
  - from: [{source: {principals: [cluster.local/ns/default/sa/sleep]}}]
"""


def gateway_entry(mesh: Mesh, node: Mesh, sleep: str, gw: str) -> dict[str, Any]:
    """Curl aliyun.com from ``sleep`` (run in ``node``'s home) until it answers 301 and
    the gateway's access log has its line; that line."""

    def through_gateway() -> dict[str, Any] | None:
        out = node.curl(sleep, "-I", "http://aliyun.com/").stdout
        if not out.startswith("HTTP/1.1 301"):
            return None
        logs = mesh.meshgate("-n", "istio-system", "logs", gw, "-c", "istio-proxy").stdout
        lines = [x for x in logs.splitlines() if x.startswith("{") and "aliyun.com" in x]
        return dict(json.loads(lines[-1])) if lines else None

    ok, entry = retry(through_gateway, lambda e: e is not None, 45, 0.5)
    assert ok and entry is not None, node.curl(sleep, "-I", "http://aliyun.com/")
    return entry


def _join_args(line: str) -> list[str]:
    words = line.split()
    assert words[:2] == ["meshgate", "join"], line
    return words[1:]  # the verb and its arguments


def _with_token(args: list[str], token: str) -> list[str]:
    i = args.index("--token")
    return [*args[:i], "--token", token, *args[i + 2 :]]


def _netns_names() -> str:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


def test_pod_on_joined_node_reaches_aliyun_through_gateway_over_mtls(
    mesh: Mesh, tmp_path: Path
) -> None:
    from meshgate.home import mesh_id

    node = Mesh(tmp_path / "node-2")
    refused = Mesh(tmp_path / "refused")
    node_id, first_id = mesh_id(node.home), mesh_id(mesh.home)
    try:
        nodes = mesh.meshgate("get", "nodes").stdout.splitlines()
        assert nodes[0].split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
        assert nodes[1].split()[:3] == ["meshgate-node", "Ready", "control-plane"]

        line = mesh.meshgate("token", "create", "--print-join-command").stdout.strip()
        args = _join_args(line)
        token = args[args.index("--token") + 1]
        assert "--discovery-token-ca-cert-hash" in args and "sha256:" in line
        listed = mesh.meshgate("token", "list").stdout
        assert f"{token.split('.')[0]}.<secret>" in listed and token not in listed
        secret = json.loads(
            mesh.meshgate(
                "get", "secret", "-n", "kube-system", f"bootstrap-token-{token[:6]}", "-o", "json"
            ).stdout
        )
        assert secret["type"] == "bootstrap.kubernetes.io/token"

        # A wrong secret, and an expired token: refused, with the reason, nothing joins.
        wrong = refused.meshgate(
            *_with_token(args, token[:7] + "x" * 16), "--name", "bad", check=False
        )
        assert wrong.returncode == 1
        assert "refused the join" in wrong.stderr and "wrong secret" in wrong.stderr
        short = mesh.meshgate("token", "create", "--ttl", "1s").stdout.strip()
        time.sleep(2.1)
        expired = refused.meshgate(*_with_token(args, short), "--name", "bad", check=False)
        assert expired.returncode == 1 and "expired at" in expired.stderr, expired.stderr
        assert "bad" not in mesh.meshgate("get", "nodes").stdout
        assert f"mg-{mesh_id(refused.home)}" not in _netns_names()

        joined = node.meshgate(*args, "--name", "node-2", "--label", "zone=b")
        assert "node node-2 is Ready" in joined.stdout
        wide = mesh.meshgate("get", "nodes", "-o", "wide").stdout
        row = next(r.split() for r in wide.splitlines() if r.startswith("node-2 "))
        assert row[1] == "Ready" and "10.35.0.0/16" in row

        # The seed's sleep, placed on node-2; the mTLS egress recipe, the gateway on node 1.
        sleep_yaml = (WALKTHROUGH / "1-sleep.yaml").read_text()
        placed = sleep_yaml.replace(
            "      terminationGracePeriodSeconds: 0",
            "      nodeName: node-2\n      terminationGracePeriodSeconds: 0",
        )
        assert placed != sleep_yaml
        mesh.meshgate("apply", "-f", "-", input=placed)
        mesh.meshgate("apply", "-f", str(WALKTHROUGH / "3-serviceentry.yaml"))
        mesh.meshgate("apply", "-f", "-", input=GATEWAY_443 + "---\n" + RECIPE)
        mesh.meshgate("apply", "-f", "-", input=ONLY_SLEEP)
        sleep = mesh.wait_pod("default", "sleep-")
        gw = mesh.wait_pod("istio-system", "istio-egressgateway-")
        pods = mesh.meshgate("get", "pods", "-A", "-o", "wide").stdout
        rows = {r.split()[1]: r.split() for r in pods.splitlines()[1:]}
        assert rows[sleep][-1] == "node-2" and rows[sleep][-2].startswith("10.35."), pods
        assert rows[gw][-1] == "meshgate-node" and rows[gw][-2].startswith("10.34."), pods
        sleep_ip = rows[sleep][-2]

        entry = gateway_entry(mesh, node, sleep, gw)
        assert entry["response_code"] == 301
        assert entry["requested_server_name"] == "aliyun.com", entry  # the mTLS hop's SNI
        assert str(entry["downstream_local_address"]).endswith(":443"), entry
        assert str(entry["downstream_remote_address"]).split(":")[0] == sleep_ip, entry
        assert entry["upstream_cluster"] == "outbound|80||aliyun.com", entry

        # Its proxy fetched xDS over mTLS TCP: the control plane lists it, synced.
        status = mesh.meshgate("proxy-status").stdout
        assert any(r.startswith(sleep) and "SYNCED" in r for r in status.splitlines()), status

        # The sidecar's mesh identity (from the CA, over that stream), as istioctl shows it
        # in the node's home; the control plane's home says where the pod runs.
        dump = node.meshgate("proxy-config", "secret", sleep, "-o", "json").stdout
        sans = {san for _, names in proxy_certificates(dump)["default"] for san in names}
        assert sans == {"spiffe://cluster.local/ns/default/sa/sleep"}, sans
        elsewhere = mesh.meshgate("exec", sleep, "--", "true", check=False)
        assert elsewhere.returncode != 0 and "runs on node node-2" in elsewhere.stderr

        # A control plane restart (SIGTERM, then up): the agent keeps its pod running (the
        # same container start), its proxy reconnects over mTLS, the request goes through.
        started = mesh.meshgate(
            "get",
            "pod",
            sleep,
            "-o",
            "jsonpath={.status.containerStatuses[*].state.running.startedAt}",
        ).stdout
        cp = int((mesh.home / "control-plane.pid").read_text())
        os.kill(cp, signal.SIGTERM)
        ok, _ = retry(lambda: Path(f"/proc/{cp}").exists(), lambda alive: not alive, 20)
        assert ok, "the control plane did not stop"
        mesh.meshgate("up", "--world", "demo")
        entry = gateway_entry(mesh, node, sleep, gw)
        assert entry["requested_server_name"] == "aliyun.com"
        again = mesh.meshgate(
            "get",
            "pod",
            sleep,
            "-o",
            "jsonpath={.status.containerStatuses[*].state.running.startedAt}",
        ).stdout
        assert again == started and started, (started, again)

        # nodeSelector: onto node-2 (its --label), or nowhere, Pending with the reason.
        mesh.meshgate("apply", "-f", "-", input=PLACED)
        mesh.wait_pod("default", "picked")
        node_of = mesh.meshgate("get", "pod", "picked", "-o", "jsonpath={.spec.nodeName}")
        assert node_of.stdout == "node-2"
        why = mesh.meshgate(
            "get", "pod", "nowhere", "-o", "jsonpath={.status.conditions[0].message}"
        ).stdout
        assert (
            why == "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector."
        )
        # A pod on node 2 reaches a pod on node 1 by its IP (routed, no NAT): the
        # gateway's 443 answers its TCP handshake (the TLS after it wants a mesh identity).
        gw_ip = rows[gw][-2]
        ok, out = retry(
            lambda: node.curl(
                "picked", "-s", "-w", "%{remote_ip}", f"telnet://{gw_ip}:443", max_time=2
            ),
            lambda p: gw_ip in p.stdout,
            20,
        )
        assert ok, out.stdout + out.stderr
    finally:
        node.meshgate("down", check=False)
        refused.meshgate("down", check=False)
    left = _netns_names()
    assert f"mg-{node_id}" not in left, left
    link = subprocess.run(
        ["ip", "-n", f"mg-{first_id}-node", "link", "show", f"mgj{node_id}"],
        capture_output=True,
        text=True,
    )
    assert link.returncode != 0, link.stdout  # the link went with the node's namespace
    gone = mesh.meshgate("get", "nodes").stdout
    assert "node-2" not in gone, gone
    pending = mesh.meshgate("get", "pods", "-o", "wide").stdout
    assert "Pending" in pending and "node-2" in pending, pending


def test_pods_spread_over_nodes_and_reach_each_other(mesh: Mesh, tmp_path: Path) -> None:
    """Without nodeName, a Deployment's pods spread over the Ready nodes (fewest pods first);
    a Service reaches its endpoints on either node, from a pod without a sidecar (the
    first node's cluster-IP rules, routed) and from a sidecar on the joined node."""
    from meshgate.home import mesh_id

    node = Mesh(tmp_path / "node-2")
    try:
        args = _join_args(mesh.meshgate("token", "create", "--print-join-command").stdout)
        node.meshgate(*args, "--name", "node-2")
        mesh.meshgate("apply", "-f", str(Path(__file__).parent / "data" / "web.yaml"))
        mesh.wait_pod("default", "web-")
        mesh.wait_pod("default", "plain-")

        def placed() -> dict[str, tuple[str, str]]:
            out = mesh.meshgate("get", "pods", "-o", "wide").stdout
            rows = [r.split() for r in out.splitlines()[1:]]
            return {r[0]: (r[-2], r[-1]) for r in rows if r[2] == "Running"}

        ok, pods = retry(placed, lambda p: len(p) == 3, 60)
        assert ok, pods
        web = {name: where for name, where in pods.items() if name.startswith("web-")}
        assert {n for _, n in web.values()} == {"meshgate-node", "node-2"}, pods
        plain = next(name for name in pods if name.startswith("plain-"))
        for ip, _ in web.values():
            code = mesh.curl(
                plain, "-s", "-o", "/dev/null", "-w", "%{http_code}", f"http://{ip}:8080/"
            )
            assert code.stdout == "200", (ip, code.stdout, code.stderr)
        codes = [
            mesh.curl(plain, "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://web/").stdout
            for _ in range(4)
        ]
        assert codes == ["200"] * 4, codes

        # A sidecar pod on the joined node (nodeName) reaches the Service through its proxy.
        sleep_yaml = (
            (WALKTHROUGH / "1-sleep.yaml")
            .read_text()
            .replace(
                "      terminationGracePeriodSeconds: 0",
                "      nodeName: node-2\n      terminationGracePeriodSeconds: 0",
            )
        )
        mesh.meshgate("apply", "-f", "-", input=sleep_yaml)
        sleep = mesh.wait_pod("default", "sleep-")
        ok, out = retry(
            lambda: node.curl(sleep, "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://web/"),
            lambda p: p.stdout == "200",
            30,
        )
        assert ok, out.stdout + out.stderr
        codes = [
            node.curl(sleep, "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://web/").stdout
            for _ in range(4)
        ]
        assert codes == ["200"] * 4, codes
    finally:
        node.meshgate("down", check=False)
    assert f"mg-{mesh_id(node.home)}" not in _netns_names()


# Two replicas, spread over the nodes, tolerating an unreachable node for 2 s only.
TOLERATING = """apiVersion: apps/v1
kind: Deployment
metadata: {name: keep}
spec:
  replicas: 2
  selector: {matchLabels: {app: keep}}
  template:
    metadata:
      labels: {app: keep}
      annotations: {sidecar.istio.io/inject: "false"}
    spec:
      tolerations:
      - {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute,
         tolerationSeconds: 2}
      containers: [{name: c, image: curl, command: [/bin/sleep, infinity]}]
"""


def test_pods_of_a_silent_node_are_evicted_and_made_again(tmp_path: Path) -> None:
    """A joined node whose agent stops answering (SIGSTOP) goes NotReady after the node
    monitor's grace period (``up --node-monitor-grace-period 6s``); its pods go once their
    toleration runs out, and their Deployment makes them again on the Ready node. The
    agent resumed, the node is Ready again and nothing was made twice."""
    from meshgate.home import mesh_id, pid_file
    from tests.e2e.conftest import _skip_reason

    if reason := _skip_reason():
        pytest.skip(reason)
    mesh = Mesh(tmp_path / "home")
    node = Mesh(tmp_path / "node-2")
    agent = 0
    try:
        mesh.meshgate("up", "--node-monitor-grace-period", "6s")
        args = _join_args(mesh.meshgate("token", "create", "--print-join-command").stdout)
        node.meshgate(*args, "--name", "node-2")
        mesh.meshgate("apply", "-f", "-", input=TOLERATING)

        def placed() -> dict[str, str]:
            out = mesh.meshgate("get", "pods", "-o", "wide").stdout
            rows = [r.split() for r in out.splitlines()[1:]]
            return {r[0]: r[-1] for r in rows if r[0].startswith("keep-") and r[2] == "Running"}

        ok, before = retry(placed, lambda p: len(p) == 2, 60)
        assert ok and set(before.values()) == {"meshgate-node", "node-2"}, before
        (on_two,) = [name for name, where in before.items() if where == "node-2"]

        agent = int(pid_file(node.home).read_text())
        os.kill(agent, signal.SIGSTOP)  # the node stops reporting; its pods run on
        ok, after = retry(
            placed,
            lambda p: len(p) == 2 and set(p.values()) == {"meshgate-node"},
            60,
            interval=0.5,
        )
        assert ok, f"{after}\n{mesh.log_tail()}"
        assert on_two not in after
        nodes_out = mesh.meshgate("get", "nodes").stdout
        assert any(r.split()[:2] == ["node-2", "NotReady"] for r in nodes_out.splitlines()), (
            nodes_out
        )
        log = (mesh.home / "control-plane.log").read_text()
        assert f"evicting pod default/{on_two}: node node-2 has taint" in log, mesh.log_tail()

        os.kill(agent, signal.SIGCONT)
        agent = 0
        ok, out = retry(
            lambda: mesh.meshgate("get", "nodes").stdout,
            lambda o: any(r.split()[:2] == ["node-2", "Ready"] for r in o.splitlines()),
            30,
        )
        assert ok, out
        assert set(placed()) == set(after)  # nothing moved back, nothing made twice
    finally:
        if agent:
            os.kill(agent, signal.SIGCONT)
        node.meshgate("down", check=False)
        mesh.meshgate("down", "--force", check=False)
    left = _netns_names()
    assert f"mg-{mesh_id(node.home)}" not in left and f"mg-{mesh_id(mesh.home)}" not in left
