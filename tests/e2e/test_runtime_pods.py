"""E2E: node, simulated world, pods with a sidecar Envoy and capture, DNS, crash loops, teardown.

Rules: real Envoy in real network namespaces (root only; skipped with the reason otherwise);
each test builds its own mesh in its own state directory and tears it down in a finally block.
No timing assertions: loops wait for a state with a generous deadline and fail if it never comes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from meshgate.runtime import names, netns, procs
from meshgate.runtime.dns import write_zone
from meshgate.runtime.envoy import executable_by, setpriv_argv
from meshgate.runtime.manifest import Manifest, teardown
from meshgate.runtime.node import Node
from meshgate.runtime.pods import (
    Backoff,
    ContainerSpec,
    ContainerState,
    PodError,
    PodSpec,
    PodState,
    ProxySpec,
    Runtime,
)
from meshgate.runtime.world import load_world
from tests.e2e.test_runtime_support import (
    requires_netns,
    router_bootstrap,
    sleep_pod,
    start_running,
    state_dir,
)

pytestmark = [pytest.mark.e2e, requires_netns]
T = TypeVar("T")


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def _envoy_uid(pid: int) -> int:
    """The uid Envoy runs as: the container's recorded process is its sandbox (bwrap, as
    root), Envoy a descendant of it."""
    todo = [pid]
    while todo:
        p = todo.pop()
        if os.path.basename(os.readlink(f"/proc/{p}/exe")) == "envoy":
            return os.stat(f"/proc/{p}").st_uid
        for task in os.listdir(f"/proc/{p}/task"):
            todo += [int(k) for k in Path(f"/proc/{p}/task/{task}/children").read_text().split()]
    raise AssertionError(f"no envoy under pid {pid}")


def headers(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines()[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            out[k.strip().lower()] = v.strip()
    return out


def assert_gone(state: Path, pids: list[procs.ProcId]) -> None:
    mid = names.mesh_id(state)
    assert netns.list_names(names.netns_prefix(mid)) == []
    etc = Path("/etc/netns")
    leftovers = [p for p in etc.iterdir() if p.name.startswith(f"mg-{mid}")] if etc.exists() else []
    assert leftovers == []
    assert not names.runtime_dir(mid).exists()
    assert [p for p in pids if procs.is_alive(p)] == []


def recorded_pids(state: Path) -> list[procs.ProcId]:
    data = Manifest(state).read()
    return [procs.ProcId(p["pid"], p["start_time"]) for p in data["processes"].values()]


def test_world_answers_like_aliyun() -> None:
    with state_dir() as state:
        node = Node(state)
        node.up(load_world("demo"))
        res = run([*netns.exec_prefix(node.netns), "curl", "-sI", "http://198.51.100.10/"])
        assert res.stdout.startswith("HTTP/1.1 301 Moved Permanently"), res
        h = headers(res.stdout)
        assert h["server"] == "Tengine"
        assert h["location"] == "https://aliyun.com/"
        assert h["content-length"] == "239"
        assert h["content-type"] == "text/html"
        assert h["timing-allow-origin"] == "*"
        assert h["eagleeye-traceid"]
        body = run([*netns.exec_prefix(node.netns), "curl", "-s", "http://198.51.100.10/x"])
        assert len(body.stdout.encode()) == 239
        teapot = run(
            [*netns.exec_prefix(node.netns), "curl", "-s", "-o", "/dev/null", "-w",
             "%{http_code}", "http://198.51.100.20/status/418"]
        )  # fmt: skip
        assert teapot.stdout == "418"


def test_sidecar_capture_reproduces_seed_step_1() -> None:
    with state_dir() as state:
        Node(state).up(load_world("demo"))
        rt = Runtime(state)
        st = start_running(rt, sleep_pod())
        assert st.ip.startswith("10.34.")
        assert [c.name for c in st.containers] == ["istio-proxy", "sleep"]
        res = run(rt.exec_argv("default", "sleep-1", ["curl", "-sI", "http://aliyun.com/"]))
        assert res.stdout.startswith("HTTP/1.1 301 Moved Permanently"), res
        h = headers(res.stdout)
        assert h["server"] == "envoy"  # the sidecar's HCM rewrote Tengine's header
        assert "x-envoy-upstream-service-time" in h
        assert h["location"] == "https://aliyun.com/"
        assert h["content-length"] == "239"
        # The proxy runs as 1337 with its bootstrap in the runtime dir.
        proxy = next(c for c in st.containers if c.name == "istio-proxy")
        assert proxy.pid is not None
        assert _envoy_uid(proxy.pid) == 1337


def test_pod_without_capture_reaches_world_directly() -> None:
    with state_dir() as state:
        Node(state).up(load_world("demo"))
        rt = Runtime(state)
        rt.start_pod(sleep_pod("plain-1", proxy=False))
        res = run(rt.exec_argv("default", "plain-1", ["curl", "-sI", "http://aliyun.com/"]))
        h = headers(res.stdout)
        assert h["server"] == "Tengine"
        assert "x-envoy-upstream-service-time" not in h


DNS_PROBE = """
import json, socket, sys
from dnslib import DNSRecord
out = {}
for q, t in [("aliyun.com", "A"), ("aliyun.com", "AAAA"), ("nope.invalid", "A"),
             ("sleep.default.svc.cluster.local", "A")]:
    r = DNSRecord.parse(DNSRecord.question(q, t).send("10.34.0.1", 53, timeout=2))
    out[q + "/" + t] = [r.header.rcode, [str(x.rdata) for x in r.rr]]
q = DNSRecord.question("aliyun.com", "A")
tcp = DNSRecord.parse(q.send("10.34.0.1", 53, tcp=True, timeout=2))
out["tcp"] = [str(x.rdata) for x in tcp.rr]
# glibc through resolv.conf: search domains, ndots:5, A and AAAA together.
out["glibc_short"] = sorted({a[4][0] for a in socket.getaddrinfo("sleep", 80)})
out["glibc_world"] = sorted({a[4][0] for a in socket.getaddrinfo("www.aliyun.com", 80)})
try:
    socket.getaddrinfo("nope.invalid", 80)
    out["glibc_nx"] = "resolved"
except socket.gaierror as e:
    out["glibc_nx"] = e.errno
print(json.dumps(out))
"""


def test_dns_answers_every_query_at_once() -> None:
    with state_dir() as state:
        Node(state).up(load_world("demo"))
        rt = Runtime(state)
        st = rt.start_pod(sleep_pod("sleep-dns", proxy=False))
        write_zone(state, {"sleep.default.svc.cluster.local": [st.ip]}, layer="mesh")
        time.sleep(0.3)  # the server re-reads the zone at most every 200 ms
        # The probe needs dnslib from this virtualenv, which no sandbox shows: it runs in
        # the pod's network namespace (and resolv.conf), outside the container's sandbox.
        pod_net = netns.exec_prefix(rt.netns_of("default", "sleep-dns"))
        res = run([*pod_net, sys.executable, "-c", DNS_PROBE])
        assert res.returncode == 0, res.stderr
        out = json.loads(res.stdout)
        assert out["aliyun.com/A"] == [0, ["198.51.100.10"]]
        assert out["aliyun.com/AAAA"] == [0, []]
        assert out["nope.invalid/A"][0] == 3  # NXDOMAIN
        assert out["sleep.default.svc.cluster.local/A"] == [0, [st.ip]]
        assert out["tcp"] == ["198.51.100.10"]
        assert out["glibc_short"] == [st.ip]
        assert out["glibc_world"] == ["198.51.100.10"]
        assert out["glibc_nx"] != "resolved"


def wait_for(cond: Callable[[], T | None], what: str, deadline: float = 30.0) -> T:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        value = cond()
        if value is not None:
            return value
        time.sleep(0.1)
    raise AssertionError(f"never reached: {what}")


def test_apps_held_until_the_proxy_listens() -> None:
    with state_dir() as state:
        Node(state).up(None)
        rt = Runtime(state, proxy_hold_max=3.0)
        spec = sleep_pod("held-1")
        assert spec.proxy is not None
        # A proxy that never listens on 15001 (as an xDS proxy before its first push).
        spec.proxy.bootstrap = router_bootstrap(15002, "x")
        st = rt.start_pod(spec)
        assert st.phase == "Pending"
        app = next(c for c in st.containers if c.name == "sleep")
        assert app.state == "waiting" and app.reason == "ContainerCreating"

        def running() -> PodState | None:
            rt.reconcile()
            cur = rt.pod_state("default", "held-1")
            return cur if cur is not None and cur.phase == "Running" else None

        st = wait_for(running, "apps started after the hold")
        # Its apps run, but the pod is not Ready: readiness follows the proxy's own, and
        # this one never got the listeners its configuration would give it.
        ready = {c.name: c.ready for c in st.containers}
        assert ready == {"istio-proxy": False, "sleep": True} and not st.ready


def test_crash_loop_and_missing_command() -> None:
    with state_dir() as state:
        Node(state).up(None)
        # The kubelet's back-off (at once, 10 s, 20 s...) scaled down: the loop is tested.
        rt = Runtime(state, backoff=Backoff(start=0.5, cap=1.0))
        rt.start_pod(
            PodSpec(
                name="crash-1",
                namespace="default",
                containers=[ContainerSpec("crash", ["/bin/sh", "-c", "echo boom; exit 3"])],
            )
        )

        def looping() -> ContainerState | None:
            rt.reconcile()
            st = rt.pod_state("default", "crash-1")
            assert st is not None
            c = st.containers[0]
            return c if c.restart_count >= 2 and c.state == "waiting" else None

        c = wait_for(looping, "crash-1 restarted twice")
        assert c.reason == "CrashLoopBackOff"
        assert c.exit_code == 3
        # The first restart came at once; from the second on it backs off (0.5 s, 1 s...).
        assert c.message.startswith("back-off ")
        assert "s restarting failed container=crash pod=crash-1_default" in c.message
        # Each run has its own log (kubectl logs shows the current one), the last one kept.
        assert rt.log_path("default", "crash-1", "crash").read_text() in ("", "boom\n")
        assert rt.log_path("default", "crash-1", "crash", previous=True).read_text() == "boom\n"
        crash = rt.pod_state("default", "crash-1")
        assert crash is not None and crash.phase == "Running"

        # A missing command is retried with back-off, as the kubelet does...
        st = rt.start_pod(
            PodSpec(
                name="missing-1",
                namespace="default",
                containers=[ContainerSpec("app", ["no-such-command-mg"])],
            )
        )
        (app,) = st.containers
        assert app.state == "waiting" and app.reason == "CrashLoopBackOff"
        assert 'exec: "no-such-command-mg": executable file not found' in app.message
        assert app.exit_code == 127
        # ... except under restartPolicy Never: the pod fails with the reason.
        st = rt.start_pod(
            PodSpec(
                name="missing-2",
                namespace="default",
                containers=[ContainerSpec("app", ["no-such-command-mg"])],
                restart_policy="Never",
            )
        )
        assert st.phase == "Failed"
        assert st.reason == "StartError"
        assert "no-such-command-mg" in st.message
        rt.reconcile()
        missing = rt.pod_state("default", "missing-2")
        assert missing is not None and missing.phase == "Failed"


def test_refuses_proxy_uid_for_apps() -> None:
    with state_dir() as state:
        Node(state).up(None)
        rt = Runtime(state)
        with pytest.raises(PodError, match="1337"):
            rt.start_pod(
                PodSpec(
                    name="bad",
                    namespace="default",
                    containers=[ContainerSpec("app", ["/bin/true"], run_as_user=1337)],
                )
            )


def test_stop_pod_and_teardown_leave_nothing() -> None:
    with state_dir() as state:
        Node(state).up(load_world("demo"))
        rt = Runtime(state)
        st = start_running(rt, sleep_pod("sleep-a"))
        start_running(rt, sleep_pod("sleep-b"))
        before = recorded_pids(state)
        rt.stop_pod("default", "sleep-a")
        assert not netns.exists(st.netns)
        assert not Path("/etc/netns", st.netns).exists()
        assert [s.name for s in rt.pod_states()] == ["sleep-b"]
        pids = recorded_pids(state)
        assert len(pids) < len(before)
        teardown(state, force=True)
        assert_gone(state, before)


KILLED_OWNER = """
import sys, time
sys.path.insert(0, {root!r})
from meshgate.runtime.node import Node
from meshgate.runtime.pods import Runtime
from meshgate.runtime.world import load_world
from tests.e2e.test_runtime_support import sleep_pod, start_running
Node({state!r}).up(load_world("demo"))
start_running(Runtime({state!r}), sleep_pod("sleep-k"))
print("up", flush=True)
time.sleep(3600)
"""


def test_readopt_and_force_teardown_after_kill_9() -> None:
    with state_dir() as state:
        code = KILLED_OWNER.format(root=str(Path(__file__).parents[2]), state=str(state))
        owner = subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, start_new_session=True
        )
        try:
            assert owner.stdout is not None
            assert owner.stdout.readline().strip() == "up"
            with pytest.raises(RuntimeError, match="owned by live process"):
                teardown(state, force=False)
        finally:
            owner.kill()
            owner.wait()
        # A new Runtime re-adopts the pod that outlived its owner.
        rt = Runtime(state)
        st = rt.pod_state("default", "sleep-k")
        assert st is not None and st.phase == "Running"
        pids = recorded_pids(state)
        assert pids and all(procs.is_alive(p) for p in pids)
        res = run(rt.exec_argv("default", "sleep-k", ["curl", "-sI", "http://aliyun.com/"]))
        assert headers(res.stdout)["server"] == "envoy"
        del rt
        teardown(state, force=True)
        assert_gone(state, pids)


def test_router_pod_binds_port_80_as_proxy_uid() -> None:
    with state_dir() as state:
        Node(state).up(None)
        rt = Runtime(state)
        gw = rt.start_pod(
            PodSpec(
                name="gw-1",
                namespace="istio-system",
                containers=[ContainerSpec("pause", ["/bin/sleep", "infinity"])],
                proxy=ProxySpec(router_bootstrap(80, "from the gateway\n"), mode="router"),
            )
        )
        client = rt.start_pod(sleep_pod("client-1", proxy=False))
        url = f"http://{gw.ip}/"

        def answered() -> str | None:
            res = run(rt.exec_argv("default", "client-1", ["curl", "-s", url]))
            return res.stdout or None

        assert wait_for(answered, "the gateway answers on port 80") == "from the gateway\n"
        assert client.ip != gw.ip
        proxy = next(c for c in gw.containers if c.name == "istio-proxy")
        assert proxy.pid is not None and _envoy_uid(proxy.pid) == 1337


def test_world_can_be_removed_again() -> None:
    with state_dir() as state:
        node = Node(state)
        node.up(load_world("demo"))
        assert netns.exists(node.inet)
        node.up(None)
        assert not netns.exists(node.inet)
        res = run(
            [*netns.exec_prefix(node.netns), "curl", "-s", "-m", "2", "http://198.51.100.10/"]
        )
        assert res.returncode != 0  # nothing routes out of a node without a world


def test_binary_copied_when_proxy_uid_cannot_reach_it() -> None:
    private = Path(tempfile.mkdtemp(prefix="mg-rt-priv-"))
    shared = Path(tempfile.mkdtemp(prefix="mg-rt-shared-"))
    try:
        os.chmod(private, 0o700)
        os.chmod(shared, 0o755)
        src = private / "tool"
        shutil.copyfile("/bin/true", src)
        os.chmod(src, 0o755)
        got = executable_by(1337, 1337, src, shared / "copy")
        assert got == shared / "copy" / "tool"
        assert run([*setpriv_argv(1337, 1337), str(got)]).returncode == 0
        assert executable_by(1337, 1337, got, shared / "unused") == got
    finally:
        shutil.rmtree(private, ignore_errors=True)
        shutil.rmtree(shared, ignore_errors=True)
