"""Istio's task "Using an External HTTPS Proxy", replayed step by step.

Source: istio/istio.io, ``content/en/docs/tasks/traffic-management/egress/http-proxy/``:
the commands and YAML of ``snips.sh`` at commit 9140d5208c2c8b122af1fc3108f80da1f08880a4
(generated from ``index.md``; the text read is ``index.md`` at
d7bb9c17de49dd54f2df3c69cfcc5317a8796cd0, what it checks is ``test.sh`` at
aa31138040ec5ccd9b3a97278384b0db87d3a92b), with the ``sleep`` sample of istio/istio
(``samples/sleep/sleep.yaml`` at 09f1475faa933eab8d3404afc545ee3da1cbc7ac), verbatim.

Each ``kubectl`` is ``meshgate``; each check is what the page says the user sees: the
Wikipedia title through squid, squid's ``CONNECT en.wikipedia.org:443`` lines in its
access log, and the sidecar's access-log line for ``outbound|3128||my-company-proxy.com``.
Where meshgate differs, the step says so and docs/istio-tasks.md lists it:

- ``kubectl create namespace external`` is followed by ``meshgate label namespace external
  istio-injection=disabled``: Istio injects only into labelled namespaces, meshgate into
  every namespace unless told not to, and the page needs squid outside the mesh.
- "Enable Envoy's access logging" is Istio's ``istioctl install --set
  meshConfig.accessLogFile=/dev/stdout``; meshgate's twin is ``meshgate install``, with
  ``meshConfig.accessLogEncoding=TEXT`` added to get the page's line format (Istio's
  default encoding is TEXT, meshgate's JSON).
- ``--from-file=squid.conf=./proxy.conf`` names the file by its absolute path (the test
  does not change its working directory).
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

# The page's external service: en.wikipedia.org over HTTPS, answering its Main_Page.
WIKI_PAGE = (
    "<!DOCTYPE html>\n<html><head><title>Wikipedia, the free encyclopedia</title></head>"
    "<body>Main Page</body></html>\n"
)
WIKIPEDIA_IP = "198.51.100.96"
WORLD = {
    "hosts": [
        {
            "names": ["en.wikipedia.org"],
            "address": WIKIPEDIA_IP,
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
    ]
}

PROXY_CONF = """\
http_port 3128

acl SSL_ports port 443
acl CONNECT method CONNECT

http_access deny CONNECT !SSL_ports
http_access allow localhost manager
http_access deny manager
http_access allow all

coredump_dir /var/spool/squid
"""

SQUID_DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: squid
  namespace: external
spec:
  replicas: 1
  selector:
    matchLabels:
      app: squid
  template:
    metadata:
      labels:
        app: squid
    spec:
      volumes:
      - name: proxy-config
        configMap:
          name: proxy-configmap
      containers:
      - name: squid
        image: sameersbn/squid:3.5.27
        imagePullPolicy: IfNotPresent
        volumeMounts:
        - name: proxy-config
          mountPath: /etc/squid
          readOnly: true
"""

# The shell expands $PROXY_IP and $PROXY_PORT in the page's heredoc.
SERVICE_ENTRY = """\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: proxy
spec:
  hosts:
  - my-company-proxy.com # ignored
  addresses:
  - $PROXY_IP/32
  ports:
  - number: $PROXY_PORT
    name: tcp
    protocol: TCP
  location: MESH_EXTERNAL
"""

TITLE = "<title>Wikipedia, the free encyclopedia</title>"
MAIN_PAGE = "https://en.wikipedia.org/wiki/Main_Page"


@pytest.fixture
def task_mesh(tmp_path: Path) -> Iterator[Mesh]:
    """A mesh whose world holds the page's en.wikipedia.org; torn down even on failure."""
    from tests.e2e.conftest import _skip_reason

    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    if shutil.which("squid", path="/usr/sbin:/usr/bin") is None:
        pytest.skip("squid not installed (make deps installs it as root)")
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


def _jsonpath(mesh: Mesh, namespace: str, label: str, path: str) -> str:
    """``$(kubectl get pod -n NS -l LABEL -o jsonpath=PATH)``."""
    args = ["get", "pod", "-n", namespace, "-l", label, "-o", f"jsonpath={path}"]
    return mesh.meshgate(*args).stdout.strip()


def _through_proxy(mesh: Mesh, pod: str, flags: list[str], proxy: str) -> str:
    """``kubectl exec POD FLAGS -- sh -c "HTTPS_PROXY=PROXY curl MAIN_PAGE" | grep -o
    "<title>.*</title>"``, retried while the mesh settles (a new ServiceEntry reaches the
    sidecar within a push)."""
    command = f"HTTPS_PROXY={proxy} curl {MAIN_PAGE}"
    ok, proc = retry(
        lambda: mesh.meshgate("exec", pod, *flags, "--", "sh", "-c", command, check=False),
        lambda p: TITLE in p.stdout,
        30,
        interval=0.5,
    )
    assert ok, f"{command} in {pod}:\n{proc.stdout}\n{proc.stderr}\n{mesh.log_tail()}"
    return "\n".join(re.findall("<title>.*</title>", proc.stdout))


def _squid_log(mesh: Mesh) -> list[str]:
    """``kubectl exec "$(kubectl get pod -n external -l app=squid ...)" -n external --
    tail /var/log/squid/access.log``."""
    squid = _jsonpath(mesh, "external", "app=squid", "{.items..metadata.name}")
    argv = ["exec", squid, "-n", "external", "--", "tail", "/var/log/squid/access.log"]
    return mesh.meshgate(*argv).stdout.splitlines()


def _connect_line(client_ip: str) -> re.Pattern[str]:
    """squid's native access-log line for a CONNECT from ``client_ip`` tunnelled to the
    world's en.wikipedia.org, as on the page: ``1544160065.248    228 172.30.109.89
    TCP_TUNNEL/200 87633 CONNECT en.wikipedia.org:443 - HIER_DIRECT/91.198.174.192 -``."""
    return re.compile(
        rf"^\d+\.\d{{3}} +\d+ {re.escape(client_ip)} TCP_TUNNEL/200 \d+ "
        rf"CONNECT en\.wikipedia\.org:443 - HIER_DIRECT/{re.escape(WIKIPEDIA_IP)} -$"
    )


def _assert_connect_logged(mesh: Mesh, client_ip: str) -> None:
    """squid writes a line when the tunnel closes: wait a little for it."""
    pattern = _connect_line(client_ip)
    ok, log = retry(lambda: _squid_log(mesh), lambda lines: any(map(pattern.match, lines)), 10)
    assert ok, "\n".join(log)


# Istio's default TEXT access-log format, up to the fields the page's line shows.
TEXT_LINE = re.compile(
    r'^\[(?P<start>[^\]]+)\] "(?P<request>[^"]*)" (?P<code>\d+) (?P<flags>\S+) '
    r"(?:\S+ \S+ )?"  # response code and connection termination details (Istio 1.9+)
    r'(?:"[^"]*" )?'  # the upstream transport failure reason (Istio 1.9+)
    r"(?P<bytes_received>\d+) (?P<bytes_sent>\d+) (?P<duration>\d+) \S+ "
    r'"[^"]*" "[^"]*" "[^"]*" "[^"]*" "(?P<upstream_host>[^"]*)" (?P<cluster>\S+) '
    r"(?P<upstream_local>\S+) (?P<downstream_local>\S+) (?P<downstream_remote>\S+)"
)


def _tcp_log_fields(line: str) -> dict[str, str]:
    """The fields of the page's sidecar line, Istio's default TEXT format."""
    match = TEXT_LINE.match(line)
    assert match, f"not Istio's text access-log line: {line}"
    return match.groupdict()


def test_using_an_external_https_proxy(task_mesh: Mesh, tmp_path: Path) -> None:
    mesh = task_mesh

    # Before you begin: the sleep sample with a sidecar, and Envoy's access logging.
    mesh.meshgate("apply", "-f", "-", input=SLEEP_YAML)
    mesh.wait_pod("default", "sleep-", timeout=90)
    source_pod = _jsonpath(mesh, "default", "app=sleep", "{.items..metadata.name}")
    source_ip = _jsonpath(mesh, "default", "app=sleep", "{.items..status.podIP}")
    out = mesh.meshgate(
        "install",
        "--set",
        "meshConfig.accessLogFile=/dev/stdout",
        "--set",
        "meshConfig.accessLogEncoding=TEXT",
        "-y",
    )
    assert "meshConfig.accessLogFile: (unset) -> /dev/stdout" in out.stdout

    # Deploy an HTTPS proxy 1: the namespace, kept out of the mesh (see the docstring).
    assert mesh.meshgate("create", "namespace", "external").stdout == (
        "namespace/external created\n"
    )
    mesh.meshgate("label", "namespace", "external", "istio-injection=disabled")

    # 2 and 3: squid's configuration file, then the ConfigMap made from it.
    proxy_conf = tmp_path / "proxy.conf"
    proxy_conf.write_text(PROXY_CONF)
    out = mesh.meshgate(
        "create",
        "configmap",
        "proxy-configmap",
        "-n",
        "external",
        f"--from-file=squid.conf={proxy_conf}",
    )
    assert out.stdout == "configmap/proxy-configmap created\n"

    # 4 and 5: squid, and sleep in the external namespace; both without a sidecar.
    out = mesh.meshgate("apply", "-f", "-", input=SQUID_DEPLOYMENT)
    assert out.stdout == "deployment.apps/squid created\n"
    out = mesh.meshgate("apply", "-n", "external", "-f", "-", input=SLEEP_YAML)
    assert "deployment.apps/sleep created" in out.stdout
    for prefix in ("squid-", "sleep-"):
        name = mesh.wait_pod("external", prefix, timeout=90)
        row = mesh.meshgate("get", "pod", name, "-n", "external").stdout.splitlines()[1]
        assert row.split()[1] == "1/1", row

    # 6 and 7: PROXY_IP and PROXY_PORT.
    proxy_ip = _jsonpath(mesh, "external", "app=squid", "{.items..podIP}")
    assert re.fullmatch(r"\d+\.\d+\.\d+\.\d+", proxy_ip), proxy_ip
    proxy_port = "3128"
    proxy = f"{proxy_ip}:{proxy_port}"

    # 8: through the proxy from the sleep pod outside the mesh.
    external_sleep = _jsonpath(mesh, "external", "app=sleep", "{.items..metadata.name}")
    external_ip = _jsonpath(mesh, "external", "app=sleep", "{.items..status.podIP}")
    assert _through_proxy(mesh, external_sleep, ["-n", "external"], proxy) == TITLE

    # 9: squid's access log has the CONNECT, from that pod's address.
    _assert_connect_logged(mesh, external_ip)

    # Configure traffic to external HTTPS proxy 1: the TCP ServiceEntry for the proxy.
    service_entry = SERVICE_ENTRY.replace("$PROXY_IP", proxy_ip).replace("$PROXY_PORT", proxy_port)
    out = mesh.meshgate("apply", "-f", "-", input=service_entry)
    assert out.stdout == "serviceentry.networking.istio.io/proxy created\n"

    # 2: the same request from the pod with a sidecar.
    assert _through_proxy(mesh, source_pod, ["-c", "sleep"], proxy) == TITLE

    # 3: the sidecar's log shows the TCP connection to the proxy through its
    # ServiceEntry's cluster: [start] "- - -" 0 - sent received duration - "-" "-" "-" "-"
    # "upstream host" outbound|3128||my-company-proxy.com ...
    ok, logs = retry(
        lambda: mesh.meshgate("logs", source_pod, "-c", "istio-proxy").stdout,
        lambda text: "outbound|3128||my-company-proxy.com" in text,
        15,
    )
    assert ok, logs
    line = next(x for x in logs.splitlines() if "outbound|3128||my-company-proxy.com" in x)
    fields = _tcp_log_fields(line)
    assert fields["request"] == "- - -" and fields["code"] == "0", line  # TCP: no request
    assert fields["cluster"] == "outbound|3128||my-company-proxy.com", line
    assert fields["upstream_host"] == proxy and fields["downstream_local"] == proxy, line
    assert fields["downstream_remote"].startswith(f"{source_ip}:"), line
    assert fields["upstream_local"].startswith(f"{source_ip}:"), line
    assert int(fields["bytes_received"]) > 0 and int(fields["bytes_sent"]) > 0, line

    # 4: squid logged this CONNECT too, from the sleep pod of the mesh.
    _assert_connect_logged(mesh, source_ip)

    # Cleanup, as the page does it.
    for ns in ([], ["-n", "external"]):
        out = mesh.meshgate("delete", "-f", "-", *ns, input=SLEEP_YAML)
        assert out.stdout.splitlines() == [
            'serviceaccount "sleep" deleted',
            'service "sleep" deleted',
            'deployment.apps "sleep" deleted',
        ]
    out = mesh.meshgate("delete", "-n", "external", "deployment", "squid")
    assert out.stdout == 'deployment.apps "squid" deleted\n'
    out = mesh.meshgate("delete", "-n", "external", "configmap", "proxy-configmap")
    assert out.stdout == 'configmap "proxy-configmap" deleted\n'
    proxy_conf.unlink()
    assert mesh.meshgate("delete", "namespace", "external").stdout == (
        'namespace "external" deleted\n'
    )
    out = mesh.meshgate("delete", "serviceentry", "proxy")
    assert out.stdout == 'serviceentry.networking.istio.io "proxy" deleted\n'
    ok, pods = retry(
        lambda: mesh.meshgate("get", "pods", "-A", check=False),
        lambda p: "sleep-" not in p.stdout and "squid-" not in p.stdout,
        60,
    )
    assert ok, pods.stdout
