"""Every joined node is a whole node: its own DNS, its own filter rules (NetworkPolicy and
the enforced exit) and its own cluster-IP NAT, installed in its namespace by its agent from
what the control plane renders for it.

On node 2: a pod's resolv.conf names node 2's DNS, which answers world and Service names
while the first node's DNS is frozen; a pod without a sidecar reaches a Service on node 1
by its cluster IP (node 2's own NAT rules count it); it reaches aliyun.com directly until
``egressEnforcement: GATEWAY_ONLY``, and is refused after, while the sleep pod's sidecar
still gets its 301 through the egress gateway on node 1.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from meshgate.runtime import dns
from tests.e2e.meshctl import WALKTHROUGH, Mesh, retry
from tests.e2e.test_egress_enforcement import MESH_CONFIG
from tests.e2e.test_mesh_mtls import GATEWAY_443, RECIPE
from tests.e2e.test_nodes_join import _join_args, _netns_names, gateway_entry

pytestmark = pytest.mark.e2e

# A pod without a sidecar on node 2; a web server and its Service on node 1.
PODS = """apiVersion: v1
kind: Pod
metadata: {name: bare2, annotations: {sidecar.istio.io/inject: "false"}}
spec:
  nodeName: node-2
  containers: [{name: c, image: curlimages/curl, command: [/bin/sleep, infinity]}]
---
apiVersion: v1
kind: Pod
metadata:
  name: web1
  labels: {app: web1}
  annotations: {sidecar.istio.io/inject: "false"}
spec:
  nodeName: meshgate-node
  containers:
  - name: web
    image: python:3
    command: [python3, -m, http.server, "8080"]
    ports: [{containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web1}
spec:
  selector: {app: web1}
  ports: [{name: http, port: 80, targetPort: 8080}]
"""


def _first_dns_pid(home: Path) -> int:
    from meshgate.runtime.manifest import Manifest

    return int(Manifest(home).read()["processes"]["node/dns"]["pid"])


def _nat_packets(netns: str, vip: str) -> int:
    listing = ["iptables", "-t", "nat", "-L", "MESHGATE-SERVICES", "-n", "-v", "-x"]
    out = subprocess.run(
        ["ip", "netns", "exec", netns, *listing],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sum(int(r.split()[0]) for r in out.splitlines() if vip in r.split())


def test_joined_node_has_its_own_dns_exit_rules_and_cluster_ip_nat(
    mesh: Mesh, tmp_path: Path
) -> None:
    from meshgate.home import mesh_id

    node = Mesh(tmp_path / "node-2")
    node_ns = f"mg-{mesh_id(node.home)}-node"
    frozen: int | None = None
    try:
        args = _join_args(mesh.meshgate("token", "create", "--print-join-command").stdout)
        node.meshgate(*args, "--name", "node-2")
        sleep_yaml = (WALKTHROUGH / "1-sleep.yaml").read_text()
        placed = sleep_yaml.replace(
            "      terminationGracePeriodSeconds: 0",
            "      nodeName: node-2\n      terminationGracePeriodSeconds: 0",
        )
        mesh.meshgate("apply", "-f", "-", input=placed)
        mesh.meshgate("apply", "-f", str(WALKTHROUGH / "3-serviceentry.yaml"))
        mesh.meshgate("apply", "-f", "-", input=GATEWAY_443 + "---\n" + RECIPE)
        mesh.meshgate("apply", "-f", "-", input=PODS)
        sleep = mesh.wait_pod("default", "sleep-")
        gw = mesh.wait_pod("istio-system", "istio-egressgateway-")
        mesh.wait_pod("default", "bare2")
        mesh.wait_pod("default", "web1")

        # DNS: the pod names its own node's server, which answers with node 1's frozen.
        resolv = node.meshgate("exec", "bare2", "--", "cat", "/etc/resolv.conf").stdout
        assert resolv.splitlines()[0] == "nameserver 10.35.0.1", resolv
        vip = mesh.meshgate("get", "svc", "web1", "-o", "jsonpath={.spec.clusterIP}").stdout
        frozen = _first_dns_pid(mesh.home)
        os.kill(frozen, signal.SIGSTOP)

        def direct() -> subprocess.CompletedProcess[str]:
            return node.curl("bare2", "-I", "http://aliyun.com/", max_time=3)

        ok, out = retry(direct, lambda p: p.stdout.startswith("HTTP/1.1 301"), 30, 0.5)
        assert ok, out.stdout + out.stderr  # resolved by node 2's DNS, routed via node 1

        # Cluster-IP NAT in node 2's own namespace: the Service's name and its VIP.
        before = _nat_packets(node_ns, vip)
        ok, out = retry(
            lambda: node.curl(
                "bare2", "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://web1/"
            ),
            lambda p: p.stdout == "200",
            30,
            0.5,
        )
        assert ok, out.stdout + out.stderr
        code = node.curl("bare2", "-s", "-o", "/dev/null", "-w", "%{http_code}", f"http://{vip}/")
        assert code.stdout == "200", code.stdout + code.stderr
        assert _nat_packets(node_ns, vip) >= before + 2
        os.kill(frozen, signal.SIGCONT)
        frozen = None

        # The enforced exit on node 2: the bare pod is refused, the sidecar goes through
        # the egress gateway on node 1, the cluster IP still answers.
        mesh.meshgate("apply", "-f", "-", input=MESH_CONFIG.format(mode="GATEWAY_ONLY"))
        ok, out = retry(direct, lambda p: p.returncode != 0, 30, 0.5)
        # Refused at once by node 2's exit (a reset), not left to time out.
        assert ok and "Couldn't connect" in out.stderr, out.stdout + out.stderr
        rules = subprocess.run(
            ["ip", "netns", "exec", node_ns, "iptables", "-S", "MESHGATE-EXIT"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "only gateways leave the mesh" in rules, rules

        entry = gateway_entry(mesh, node, sleep, gw)
        assert entry["response_code"] == 301
        code = node.curl("bare2", "-s", "-o", "/dev/null", "-w", "%{http_code}", f"http://{vip}/")
        assert code.stdout == "200", code.stdout + code.stderr
        # Back OFF: the direct path opens again (the rules follow the store both ways).
        mesh.meshgate("apply", "-f", "-", input=MESH_CONFIG.format(mode="OFF"))
        ok, out = retry(direct, lambda p: p.stdout.startswith("HTTP/1.1 301"), 30, 0.5)
        assert ok, out.stdout + out.stderr
    finally:
        if frozen is not None:
            os.kill(frozen, signal.SIGCONT)
        node.meshgate("down", check=False)
    assert node_ns not in _netns_names()


# The egress gateway, placed on node 2 by the IstioGateway's nodeSelector.
GATEWAY_ON_NODE_2 = """apiVersion: istio.alibabacloud.com/v1beta1
kind: IstioGateway
metadata: {name: istio-egressgateway, namespace: istio-system}
spec:
  gatewayType: egress
  replicaCount: 1
  nodeSelector: {kubernetes.io/hostname: node-2}
  ports:
  - {name: http-0, port: 80, protocol: TCP, targetPort: 80}
"""


def test_gateway_on_joined_node_has_its_ssrf_guard(mesh: Mesh, tmp_path: Path) -> None:
    """A gateway on node 2 gets its configuration (xDS on node 1, allowed by its guard),
    reaches an in-mesh Service it routes to, and is refused a name that resolves to its
    own admin port (node 2's DNS answers with node 1's zone), until the guard is off."""
    from meshgate.home import mesh_id
    from tests.e2e.test_gateway_ssrf import GUARD_OFF, REBOUND, SSRF_CONFIG, WEB

    node = Mesh(tmp_path / "node-2")
    try:
        args = _join_args(mesh.meshgate("token", "create", "--print-join-command").stdout)
        node.meshgate(*args, "--name", "node-2")
        dns.write_zone(mesh.home, REBOUND, layer="e2e-rebinding")
        mesh.meshgate("apply", "-f", str(WEB))
        mesh.meshgate("apply", "-f", "-", input=GATEWAY_ON_NODE_2 + "---\n" + SSRF_CONFIG)
        gw = mesh.wait_pod("istio-system", "istio-egressgateway-")
        plain = mesh.wait_pod("default", "plain-")
        mesh.wait_pod("default", "web-")
        wide = mesh.meshgate("-n", "istio-system", "get", "pod", gw, "-o", "wide").stdout
        row = wide.splitlines()[1].split()
        assert row[-1] == "node-2" and row[-2].startswith("10.35."), wide
        gw_ip = row[-2]
        home = mesh if "plain" in placed_on(mesh, "meshgate-node") else node

        def straight(host: str, path: str = "/") -> str:
            proc = home.curl(
                plain, "-o", "/dev/null", "-w", "%{http_code}",
                "--resolve", f"{host}:80:{gw_ip}", f"http://{host}{path}",
            )  # fmt: skip
            return proc.stdout.strip()

        ok, code = retry(lambda: straight("web.default.svc.cluster.local"), "200".__eq__, 45, 0.5)
        assert ok, code
        assert straight("admin.example", "/ready") == "503"

        def admin_entries() -> list[dict[str, object]]:
            logs = node.meshgate("-n", "istio-system", "logs", gw, "-c", "istio-proxy").stdout
            entries = [json.loads(x) for x in logs.splitlines() if x.startswith("{")]
            return [e for e in entries if e.get("authority") == "admin.example"]

        # The proxy's log is on node 2 (its home), flushed on a timer: a few seconds.
        ok, admin = retry(admin_entries, bool, 20, 0.5)
        assert ok and admin[-1]["upstream_host"] == "127.0.0.1:15000", admin
        assert admin[-1]["response_code"] == 503
        # What the guard stops: with it off, the gateway serves its own admin interface.
        mesh.meshgate("apply", "-f", "-", input=GUARD_OFF)
        ok, code = retry(lambda: straight("admin.example", "/ready"), "200".__eq__, 20, 0.5)
        assert ok, code
    finally:
        node.meshgate("down", check=False)
    assert f"mg-{mesh_id(node.home)}" not in _netns_names()


def placed_on(mesh: Mesh, node_name: str) -> str:
    """The names of the pods on ``node_name`` (all namespaces), one a line."""
    out = mesh.meshgate("get", "pods", "-A", "-o", "wide").stdout
    return "\n".join(r.split()[1] for r in out.splitlines()[1:] if r.split()[-1] == node_name)
