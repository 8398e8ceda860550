"""Istio's task "Egress using Wildcard Hosts", replayed on a local mesh.

The page: istio/istio.io ``content/en/docs/tasks/traffic-management/egress/
wildcard-egress-hosts/index.md`` at commit 34199a22213d0bbfe10ab1759d89242ee752ac12 (Istio
1.24; the Istio APIs tab). Its commands run in order with ``kubectl``/``istioctl`` replaced
by ``meshgate``, its YAML verbatim, Istio's ``samples/curl/curl.yaml`` as the source pod;
the demo world serves www., en. and de.wikipedia.org from one address, by Host header, as
Wikipedia's servers do. What the page shows is asserted: the two ``<title>`` lines, the
egress gateway's ``cx_total`` counter for ``outbound|443||www.wikipedia.org`` (and its access
log naming each SNI host).

Where meshgate differs, the test says so by name:
- ``pilot-agent request GET clusters``: gateways have no pilot-agent, and ``meshgate exec``
  in a gateway pod runs as its proxy, whose SSRF guard refuses loopback (so the page's older
  ``curl -s localhost:15000/clusters`` fails too); the same ``cx_total`` counter is read
  from the proxy's admin with ``meshgate proxy-config endpoint``.
- "Wildcard configuration for arbitrary domains" has no commands on the page (it points at
  an EnvoyFilter blog post); meshgate does it with what the YAML says: a gateway route to the
  wildcard host itself forwards to the SNI's host (``translate.dynamic_dns``), replayed last.
"""

from __future__ import annotations

import json

import pytest

from tests.e2e.meshctl import Mesh, retry

pytestmark = pytest.mark.e2e

# istio/istio samples/curl/curl.yaml (the page's @samples/curl/curl.yaml@), verbatim.
CURL_SAMPLE = """apiVersion: v1
kind: ServiceAccount
metadata:
  name: curl
---
apiVersion: v1
kind: Service
metadata:
  name: curl
  labels:
    app: curl
    service: curl
spec:
  ports:
  - port: 80
    name: http
  selector:
    app: curl
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: curl
spec:
  replicas: 1
  selector:
    matchLabels:
      app: curl
  template:
    metadata:
      labels:
        app: curl
    spec:
      terminationGracePeriodSeconds: 0
      serviceAccountName: curl
      containers:
      - name: curl
        image: curlimages/curl
        command: ["/bin/sleep", "infinity"]
        imagePullPolicy: IfNotPresent
        volumeMounts:
        - mountPath: /etc/curl/tls
          name: secret-volume
      volumes:
      - name: secret-volume
        secret:
          secretName: curl-secret
          optional: true
---
"""

DIRECT = """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: wikipedia
spec:
  hosts:
  - "*.wikipedia.org"
  ports:
  - number: 443
    name: https
    protocol: HTTPS
"""

GATEWAY = """apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: istio-egressgateway
spec:
  selector:
    istio: egressgateway
  servers:
  - port:
      number: 443
      name: https
      protocol: HTTPS
    hosts:
    - "*.wikipedia.org"
    tls:
      mode: PASSTHROUGH
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: egressgateway-for-wikipedia
spec:
  host: istio-egressgateway.istio-system.svc.cluster.local
  subsets:
    - name: wikipedia
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: direct-wikipedia-through-egress-gateway
spec:
  hosts:
  - "*.wikipedia.org"
  gateways:
  - mesh
  - istio-egressgateway
  tls:
  - match:
    - gateways:
      - mesh
      port: 443
      sniHosts:
      - "*.wikipedia.org"
    route:
    - destination:
        host: istio-egressgateway.istio-system.svc.cluster.local
        subset: wikipedia
        port:
          number: 443
      weight: 100
  - match:
    - gateways:
      - istio-egressgateway
      port: 443
      sniHosts:
      - "*.wikipedia.org"
    route:
    - destination:
        host: www.wikipedia.org
        port:
          number: 443
      weight: 100
"""

WWW = """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: www-wikipedia
spec:
  hosts:
  - www.wikipedia.org
  ports:
  - number: 443
    name: https
    protocol: HTTPS
  resolution: DNS
"""

# Beyond the page ("arbitrary domains"): the gateway forwards to the wildcard itself.
ARBITRARY = """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: wikipedia}
spec:
  hosts: ["*.wikipedia.org"]
  location: MESH_EXTERNAL
  ports:
  - {number: 443, name: tls, protocol: TLS}
  - {number: 80, name: http, protocol: HTTP}
  resolution: DYNAMIC_DNS
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: istio-egressgateway}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: 443, name: tls, protocol: TLS}
    hosts: ["*.wikipedia.org"]
    tls: {mode: PASSTHROUGH}
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*.wikipedia.org"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: wikipedia-through-egress-gateway}
spec:
  hosts: ["*.wikipedia.org"]
  gateways: [mesh, istio-egressgateway]
  http:
  - match: [{gateways: [mesh], port: 80}]
    route: [{destination: {host: istio-egressgateway.istio-system.svc.cluster.local, port: {number: 80}}}]
  - match: [{gateways: [istio-egressgateway], port: 80}]
    route: [{destination: {host: "*.wikipedia.org", port: {number: 80}}}]
  tls:
  - match: [{gateways: [mesh], port: 443, sniHosts: ["*.wikipedia.org"]}]
    route: [{destination: {host: istio-egressgateway.istio-system.svc.cluster.local, port: {number: 443}}}]
  - match: [{gateways: [istio-egressgateway], port: 443, sniHosts: ["*.wikipedia.org"]}]
    route: [{destination: {host: "*.wikipedia.org", port: {number: 443}}}]
"""  # noqa: E501

TITLES = (
    'curl -s https://en.wikipedia.org/wiki/Main_Page | grep -o "<title>.*</title>"; '
    'curl -s https://de.wikipedia.org/wiki/Wikipedia:Hauptseite | grep -o "<title>.*</title>"'
)
PAGE_SAYS = (
    "<title>Wikipedia, the free encyclopedia</title>\n"
    "<title>Wikipedia \u2013 Die freie Enzyklop\u00e4die</title>\n"
)
WIKIPEDIA_IP = "198.51.100.224"  # the demo world's; the page shows 208.80.154.224


def titles(mesh: Mesh, pod: str) -> str:
    """The page's command: ``kubectl exec "$SOURCE_POD" -c curl -- sh -c '...'``."""
    return mesh.meshgate("exec", pod, "-c", "curl", "--", "sh", "-c", TITLES, check=False).stdout


def until_titles(mesh: Mesh, pod: str) -> None:
    ok, seen = retry(lambda: titles(mesh, pod), lambda out: out == PAGE_SAYS, 30, 0.5)
    assert ok, f"the page's two titles never came; last:\n{seen}\n{mesh.log_tail()}"


def gateway_pod(mesh: Mesh) -> str:
    """``kubectl get pod -l istio=egressgateway -n istio-system -o jsonpath=...``."""
    out = mesh.meshgate(
        "get", "pod", "-l", "istio=egressgateway", "-n", "istio-system",
        "-o", "jsonpath={.items[0].metadata.name}",
    ).stdout  # fmt: skip
    assert out.strip(), "no egress gateway pod"
    return out.strip()


def cx_totals(mesh: Mesh, pod: str, cluster: str) -> list[str]:
    """The ``/clusters`` lines ``CLUSTER::IP:PORT::cx_total::N`` the page greps for."""
    out = mesh.meshgate(
        "proxy-config", "endpoint", pod, "-n", "istio-system", "--cluster", cluster, "-o", "json"
    ).stdout
    lines = []
    for status in json.loads(out)["cluster_statuses"]:
        if status["name"] != cluster:
            continue
        for host in status.get("host_statuses", []):
            sa = host["address"]["socket_address"]
            for stat in host.get("stats", []):
                if stat["name"] == "cx_total":
                    where = f"{sa['address']}:{sa['port_value']}"
                    lines.append(f"{status['name']}::{where}::cx_total::{stat.get('value', 0)}")
    return lines


def gateway_log(mesh: Mesh, pod: str) -> list[dict[str, object]]:
    out = mesh.meshgate("logs", pod, "-c", "istio-proxy", "-n", "istio-system").stdout
    entries = []
    for line in out.splitlines():
        if line.startswith("{"):
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return entries


def test_egress_using_wildcard_hosts(mesh: Mesh) -> None:
    # Before you begin: istioctl install --set profile=demo --set ...=REGISTRY_ONLY (it asks).
    done = mesh.meshgate(
        "install", "--set", "profile=demo",
        "--set", "meshConfig.outboundTrafficPolicy.mode=REGISTRY_ONLY", input="y\n",
    )  # fmt: skip
    assert "Proceed? (y/N)" in done.stdout
    mesh.meshgate("apply", "-f", "-", input=CURL_SAMPLE)
    mesh.wait_pod("default", "curl-")
    source_pod = mesh.meshgate(
        "get", "pod", "-l", "app=curl", "-o", "jsonpath={.items..metadata.name}"
    ).stdout.strip()
    assert source_pod.startswith("curl-")
    gw = mesh.wait_pod("istio-system", "istio-egressgateway-")
    # Blocking by default: nothing of Wikipedia's yet (as the page's test.sh checks first).
    assert titles(mesh, source_pod) == ""

    # Configure direct traffic to a wildcard host.
    applied = mesh.meshgate("apply", "-f", "-", input=DIRECT)
    assert applied.stdout.strip() == "serviceentry.networking.istio.io/wikipedia created"
    until_titles(mesh, source_pod)
    # Direct: the gateway saw none of it.
    assert not [e for e in gateway_log(mesh, gw) if "wikipedia" in str(e)]
    mesh.meshgate("delete", "serviceentry", "wikipedia")

    # Configure egress gateway traffic to a wildcard host (a single hosting server).
    mesh.meshgate("apply", "-f", "-", input=GATEWAY)
    mesh.meshgate("apply", "-f", "-", input=WWW)
    until_titles(mesh, source_pod)
    # Check the statistics of the egress gateway's proxy. The page runs
    # `pilot-agent request GET clusters`: meshgate's gateways have no pilot-agent, and an
    # exec in the gateway pod is the proxy's own (its SSRF guard refuses loopback), so the
    # same counters come from the proxy's admin through `proxy-config endpoint`.
    assert gateway_pod(mesh) == gw
    counters = cx_totals(mesh, gw, "outbound|443||www.wikipedia.org")
    # Two connections (en., then de.), both to www.wikipedia.org's one address.
    assert counters == [f"outbound|443||www.wikipedia.org::{WIKIPEDIA_IP}:443::cx_total::2"]
    # The gateway's log names each host the client asked for (its SNI).
    ok, entries = retry(
        lambda: gateway_log(mesh, gw),
        lambda es: (
            {"en.wikipedia.org", "de.wikipedia.org"}
            <= {str(e.get("requested_server_name")) for e in es}
        ),
        10,
    )
    assert ok, entries
    seen = [e for e in entries if str(e.get("requested_server_name", "")).endswith("wikipedia.org")]
    assert {str(e["upstream_cluster"]) for e in seen} == {"outbound|443||www.wikipedia.org"}
    assert {str(e["upstream_host"]) for e in seen} == {f"{WIKIPEDIA_IP}:443"}

    # Cleanup egress gateway traffic to a wildcard host.
    for kind, name in (
        ("serviceentry", "www-wikipedia"),
        ("gateway", "istio-egressgateway"),
        ("virtualservice", "direct-wikipedia-through-egress-gateway"),
        ("destinationrule", "egressgateway-for-wikipedia"),
    ):
        mesh.meshgate("delete", kind, name)
    ok, seen_after = retry(lambda: titles(mesh, source_pod), lambda out: out == "", 20, 0.5)
    assert ok, seen_after

    # Wildcard configuration for arbitrary domains: the page has no commands of its own
    # (an EnvoyFilter blog post); the gateway forwards to the host each client asked for.
    mesh.meshgate("apply", "-f", "-", input=ARBITRARY)
    until_titles(mesh, source_pod)
    head = mesh.curl(source_pod, "-I", "http://de.wikipedia.org/").stdout
    assert head.startswith("HTTP/1.1 301"), head
    assert "location: https://de.wikipedia.org/" in head

    # The gateway's logger flushes on a one-second timer: read until the lines are there.
    def wildcard_tls() -> list[dict[str, object]]:
        return [
            e
            for e in gateway_log(mesh, gw)
            if e.get("upstream_cluster") == "outbound|443||*.wikipedia.org"
        ]

    def snis(tls: list[dict[str, object]]) -> set[str]:
        return {str(e["requested_server_name"]) for e in tls}

    wanted = {"en.wikipedia.org", "de.wikipedia.org"}
    ok, tls = retry(wildcard_tls, lambda es: snis(es) >= wanted, 15)
    assert ok, snis(tls)
    assert {str(e["upstream_host"]) for e in tls} == {f"{WIKIPEDIA_IP}:443"}

    def http_seen(es: list[dict[str, object]]) -> list[tuple[str, str]]:
        return [
            (str(e["authority"]), str(e["response_code"]))
            for e in es
            if e.get("upstream_cluster") == "outbound|80||*.wikipedia.org"
        ]

    ok, entries = retry(lambda: gateway_log(mesh, gw), lambda es: bool(http_seen(es)), 10)
    assert http_seen(entries) == [("de.wikipedia.org", "301")], entries[-5:]
    (http,) = [e for e in entries if e.get("upstream_cluster") == "outbound|80||*.wikipedia.org"]
    assert http["upstream_host"] == f"{WIKIPEDIA_IP}:80"

    # Cleanup: kubectl delete -f @samples/curl/curl.yaml@
    mesh.meshgate("delete", "-f", "-", input=CURL_SAMPLE)
