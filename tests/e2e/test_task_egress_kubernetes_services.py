"""Istio's task "Kubernetes Services for Egress Traffic", replayed step by step.

Source: istio/istio.io, ``content/en/docs/tasks/traffic-management/egress/
egress-kubernetes-services/``: the commands and YAML of ``snips.sh`` at commit
dcdd5c899b7023a84f0dfbfb010460b44636dbd4 (generated from ``index.md``; the text read is
``index.md`` at 2a56574575ec275bbdf724b630db4949db402227, what it checks is ``test.sh`` at
2ca1db8d80ba142c8381db6193a8620a97571a74), with the ``sleep`` sample of istio/istio
(``samples/sleep/sleep.yaml`` at 09f1475faa933eab8d3404afc545ee3da1cbc7ac), verbatim.

Each ``kubectl`` is ``meshgate``; each check is what the page says the user sees. Where
meshgate differs, the step says so and docs/istio-tasks.md lists it:

- ``kubectl create namespace without-istio`` is followed by ``meshgate label namespace
  without-istio istio-injection=disabled``: Istio injects only into labelled namespaces,
  meshgate into every namespace unless told not to.
- The Endpoints of ``my-wikipedia`` name the world's two ``en.wikipedia.org`` hosts
  (198.51.100.96, 192.0.2.224) instead of Wikipedia's real 198.35.26.96 and
  208.80.153.224: nothing leaves the machine, and world hosts live in documentation ranges.
- The sidecar's request to the ExternalName Service carries no ``X-Envoy-Decorator-
  Operation`` (the alias takes the passthrough route): the test ends as an xfail naming
  that step,
  after every other step has passed (and passes once the sidecar adds them).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.meshctl import Mesh, retry

pytestmark = pytest.mark.e2e

# istio/istio samples/sleep/sleep.yaml @ 09f1475faa933eab8d3404afc545ee3da1cbc7ac
# The same file as the other task pages replay (tests/e2e/data/istio-sleep.yaml).
SLEEP_YAML = (Path(__file__).parent / "data" / "istio-sleep.yaml").read_text()

# The page's hosts: httpbin.org as the real httpbin, en.wikipedia.org over HTTPS at two
# addresses (the page's Endpoints name two of Wikipedia's), answering its Main_Page.
WIKI_PAGE = (
    "<!DOCTYPE html>\n<html><head><title>Wikipedia, the free encyclopedia</title></head>"
    "<body>Main Page</body></html>\n"
)
WORLD = {
    "hosts": [
        {"names": ["httpbin.org"], "address": "198.51.100.20", "backend": {"kind": "httpbin"}},
        *(
            {
                "names": ["en.wikipedia.org"],
                "address": address,
                "ports": [
                    {
                        "port": 443,
                        "protocol": "https",
                        "response": {
                            "headers": {"content-type": "text/html; charset=UTF-8"},
                            "body": WIKI_PAGE,
                        },
                    }
                ],
            }
            for address in ("198.51.100.96", "192.0.2.224")
        ),
    ]
}
# The page's Endpoints addresses -> the world's (see the module docstring).
WIKIPEDIA_IPS = {"198.35.26.96": "198.51.100.96", "208.80.153.224": "192.0.2.224"}

EXTERNALNAME_1 = """\
kind: Service
apiVersion: v1
metadata:
  name: my-httpbin
spec:
  type: ExternalName
  externalName: httpbin.org
  ports:
  - name: http
    protocol: TCP
    port: 80
"""

EXTERNALNAME_4 = """\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: my-httpbin
spec:
  host: my-httpbin.default.svc.cluster.local
  trafficPolicy:
    tls:
      mode: DISABLE
"""

ENDPOINTS_1 = """\
kind: Service
apiVersion: v1
metadata:
  name: my-wikipedia
spec:
  ports:
  - protocol: TCP
    port: 443
    name: tls
"""

ENDPOINTS_2 = """\
kind: Endpoints
apiVersion: v1
metadata:
  name: my-wikipedia
subsets:
  - addresses:
      - ip: 198.35.26.96
      - ip: 208.80.153.224
    ports:
      - port: 443
        name: tls
"""

ENDPOINTS_5 = """\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: my-wikipedia
spec:
  host: my-wikipedia.default.svc.cluster.local
  trafficPolicy:
    tls:
      mode: DISABLE
"""

OUT_OF_MESH = ["-n", "without-istio", "-c", "sleep"]
TITLE = "<title>Wikipedia, the free encyclopedia</title>"


@pytest.fixture
def task_mesh(tmp_path: Path) -> Iterator[Mesh]:
    """A mesh whose world holds the page's hosts; torn down even on failure."""
    from tests.e2e.conftest import _skip_reason

    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    if shutil.which("gunicorn") is None:
        pytest.skip("gunicorn and python3-httpbin not installed (make deps installs them)")
    world = tmp_path / "world.yaml"
    world.write_text(json.dumps(WORLD))
    m = Mesh(tmp_path / "home")
    m.meshgate("up", "--world", str(world))
    try:
        yield m
    finally:
        m.meshgate("down", "--force", check=False)
        from meshgate.home import mesh_id

        left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert f"mg-{mesh_id(m.home)}" not in left, f"namespaces left behind: {left}"


def _lines(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return proc.stdout.splitlines()


def _pod_name(mesh: Mesh, *ns: str) -> str:
    """``$(kubectl get pod [-n NS] -l app=sleep -o jsonpath={.items..metadata.name})``,
    once the Deployment's pod runs."""
    namespace = ns[1] if ns else "default"
    mesh.wait_pod(namespace, "sleep-", timeout=90)
    args = ["get", "pod", *ns, "-l", "app=sleep", "-o", "jsonpath={.items..metadata.name}"]
    return mesh.meshgate(*args).stdout.strip()


def _exec(
    mesh: Mesh, pod: str, flags: list[str], argv: list[str], want: str
) -> subprocess.CompletedProcess[str]:
    """``kubectl exec POD FLAGS -- ARGV``, retried while the mesh settles (a sidecar gets a
    new Service or DestinationRule within a push) until ``want`` is in its output."""
    ok, proc = retry(
        lambda: mesh.meshgate("exec", pod, *flags, "--", *argv, check=False),
        lambda p: p.returncode == 0 and want in p.stdout + p.stderr,
        30,
        interval=0.5,
    )
    assert ok, f"{argv}: no {want!r} in:\n{proc.stdout}\n{proc.stderr}\n{mesh.log_tail()}"
    return proc


def test_kubernetes_services_for_egress_traffic(task_mesh: Mesh) -> None:
    mesh = task_mesh
    endpoints_yaml = ENDPOINTS_2
    for page_ip, world_ip in WIKIPEDIA_IPS.items():
        endpoints_yaml = endpoints_yaml.replace(page_ip, world_ip)

    # Before you begin: the sleep sample in the default namespace, with a sidecar.
    mesh.meshgate("apply", "-f", "-", input=SLEEP_YAML)
    source_pod = _pod_name(mesh)
    assert source_pod.startswith("sleep-")

    # snip__1: a namespace for a source pod without Istio control...
    out = mesh.meshgate("create", "namespace", "without-istio")
    assert out.stdout == "namespace/without-istio created\n"
    # ...which meshgate injects unless told otherwise (docs/istio-tasks.md).
    mesh.meshgate("label", "namespace", "without-istio", "istio-injection=disabled")

    # snip__2 and snip__3: sleep in without-istio, its name in SOURCE_POD_WITHOUT_ISTIO.
    out = mesh.meshgate("apply", "-f", "-", "-n", "without-istio", input=SLEEP_YAML)
    assert "deployment.apps/sleep created" in _lines(out)
    without_istio = _pod_name(mesh, "-n", "without-istio")

    # snip__4: the pod has one container: 1/1 Running.
    table = _lines(mesh.meshgate("get", "pod", without_istio, "-n", "without-istio"))
    assert table[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert table[1].split()[:4] == [without_istio, "1/1", "Running", "0"], table

    # ExternalName 1 and 2: the Service has no cluster IP; EXTERNAL-IP is httpbin.org.
    out = mesh.meshgate("apply", "-f", "-", input=EXTERNALNAME_1)
    assert out.stdout == "service/my-httpbin created\n"
    table = _lines(mesh.meshgate("get", "svc", "my-httpbin"))
    assert table[0].split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert table[1].split()[:5] == ["my-httpbin", "ExternalName", "<none>", "httpbin.org", "80/TCP"]

    # ExternalName 3: from the pod without a sidecar, httpbin.org echoes exactly the three
    # headers curl sent, Host being the Service's name.
    url = "my-httpbin.default.svc.cluster.local/headers"
    proc = _exec(mesh, without_istio, OUT_OF_MESH, ["curl", "-sS", url], want='"Host"')
    headers = json.loads(proc.stdout)["headers"]
    assert sorted(headers) == ["Accept", "Host", "User-Agent"], headers
    assert headers["Host"] == "my-httpbin.default.svc.cluster.local"
    assert headers["Accept"] == "*/*" and headers["User-Agent"].startswith("curl/")

    # ExternalName 4: the DestinationRule (TLS mode DISABLE).
    out = mesh.meshgate("apply", "-f", "-", input=EXTERNALNAME_4)
    assert out.stdout == "destinationrule.networking.istio.io/my-httpbin created\n"

    # ExternalName 5: from the pod with a sidecar; the Host is still the Service's name.
    proc = _exec(mesh, source_pod, ["-c", "sleep"], ["curl", "-sS", url], want='"Host"')
    sidecar_headers = json.loads(proc.stdout)["headers"]
    assert sidecar_headers["Host"] == "my-httpbin.default.svc.cluster.local"
    assert sidecar_headers["Accept"] == "*/*"
    istio_added = ("X-Envoy-Decorator-Operation", "X-Envoy-Peer-Metadata")
    missing = [h for h in istio_added if h not in sidecar_headers]

    # Cleanup of the ExternalName service.
    out = mesh.meshgate("delete", "destinationrule", "my-httpbin")
    assert out.stdout == 'destinationrule.networking.istio.io "my-httpbin" deleted\n'
    assert mesh.meshgate("delete", "service", "my-httpbin").stdout == (
        'service "my-httpbin" deleted\n'
    )

    # Endpoints 1 to 3: a Service without selector, its Endpoints, and its cluster IP.
    out = mesh.meshgate("apply", "-f", "-", input=ENDPOINTS_1)
    assert out.stdout == "service/my-wikipedia created\n"
    out = mesh.meshgate("apply", "-f", "-", input=endpoints_yaml)
    assert out.stdout == "endpoints/my-wikipedia created\n"
    table = _lines(mesh.meshgate("get", "svc", "my-wikipedia"))
    name, kind, cluster_ip, external, ports = table[1].split()[:5]
    assert (name, kind, external, ports) == ("my-wikipedia", "ClusterIP", "<none>", "443/TCP")
    jsonpath = mesh.meshgate("get", "service", "my-wikipedia", "-o", "jsonpath={.spec.clusterIP}")
    assert jsonpath.stdout.strip() == cluster_ip and re.fullmatch(r"[\d.]+", cluster_ip)
    resolve = f"en.wikipedia.org:443:{cluster_ip}"
    main_page = "https://en.wikipedia.org/wiki/Main_Page"

    # Endpoints 4: HTTPS by the cluster IP from the pod without a sidecar (| grep -o title).
    proc = _exec(
        mesh,
        without_istio,
        OUT_OF_MESH,
        ["curl", "-sS", "--resolve", resolve, main_page],
        want=TITLE,
    )
    assert re.findall("<title>.*</title>", proc.stdout) == [TITLE]

    # Endpoints 5 and 6: the DestinationRule, then the same from the pod with a sidecar.
    out = mesh.meshgate("apply", "-f", "-", input=ENDPOINTS_5)
    assert out.stdout == "destinationrule.networking.istio.io/my-wikipedia created\n"
    proc = _exec(
        mesh,
        source_pod,
        ["-c", "sleep"],
        ["curl", "-sS", "--resolve", resolve, main_page],
        want=TITLE,
    )
    assert re.findall("<title>.*</title>", proc.stdout) == [TITLE]

    # Endpoints 7: curl -v says it connected to the cluster IP.
    proc = _exec(
        mesh,
        source_pod,
        ["-c", "sleep"],
        ["curl", "-sS", "-v", "--resolve", resolve, main_page, "-o", "/dev/null"],
        want="Connected to",
    )
    verbose = proc.stderr
    assert f"* Added en.wikipedia.org:443:{cluster_ip} to DNS cache" in verbose
    assert f"* Connected to en.wikipedia.org ({cluster_ip}) port 443" in verbose

    # Cleanup of the Service with endpoints, then of everything else, as the page does.
    assert mesh.meshgate("delete", "destinationrule", "my-wikipedia").stdout == (
        'destinationrule.networking.istio.io "my-wikipedia" deleted\n'
    )
    assert mesh.meshgate("delete", "endpoints", "my-wikipedia").stdout == (
        'endpoints "my-wikipedia" deleted\n'
    )
    assert mesh.meshgate("delete", "service", "my-wikipedia").stdout == (
        'service "my-wikipedia" deleted\n'
    )
    for ns in ([], ["-n", "without-istio"]):
        out = mesh.meshgate("delete", "-f", "-", *ns, input=SLEEP_YAML)
        assert _lines(out) == [
            'serviceaccount "sleep" deleted',
            'service "sleep" deleted',
            'deployment.apps "sleep" deleted',
        ]
    out = mesh.meshgate("delete", "namespace", "without-istio")
    assert out.stdout == 'namespace "without-istio" deleted\n'
    ok, pods = retry(
        lambda: mesh.meshgate("get", "pods", "-A", check=False),
        lambda p: "sleep-" not in p.stdout,
        60,
    )
    assert ok, pods.stdout

    if missing:
        pytest.xfail(
            "step 'ExternalName service 5' (kubectl exec $SOURCE_POD -- curl my-httpbin...): "
            f"meshgate's sidecar adds no {', '.join(missing)}: the ExternalName Service is "
            "an alias (Istio 1.21+), so the request takes the allow_any route to "
            "PassthroughCluster, not the my-httpbin virtual host (and its decorator) of the "
            "page's older Istio"
        )
