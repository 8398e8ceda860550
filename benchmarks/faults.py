"""Faults under a steady request loop: how many requests fail, and how long until the mesh
has fully recovered.

A loop in the sleep pod sends ``HEAD /`` to aliyun.com through its sidecar and the egress
gateway (the seed's walkthrough, steps 1 to 4), resolving the name and opening a new
connection for each request, ``--requests`` of them ``--interval`` seconds apart. A third of
the way in, one fault is injected:

- ``control-plane``: the control plane ``kill -9``, then ``meshgate up`` again;
- ``gateway-envoy``: the gateway's Envoy ``kill -9``, with ``replicaCount: 1``;
- ``sidecar-envoy``: the sleep pod's own Envoy ``kill -9``;
- ``dns``: the mesh's DNS server ``kill -9``;
- ``state-full``: the state directory's filesystem (a small tmpfs as ``MESHGATE_HOME``)
  filled up, then ``apply`` tried (it must be refused with a clear error), space freed:
  what the store held must be exactly what it held before;
- ``gateway-envoy-2``: the gateway's Envoy ``kill -9`` with ``replicaCount: 2``;
- ``gateway-pod-deleted``: one of the two gateway pods deleted.

Per fault it reports requests sent and failed, ``recovery_s`` (from the fault to the first
success after the last failure; 0 when nothing failed) and ``component_s`` (from the fault
until the component itself is back: a new Envoy Ready, the DNS server answering, every proxy
SYNCED after ``up``, ``apply`` accepted once space is freed), against a target of 2 s.

Run as root: ``.venv/bin/python benchmarks/faults.py [--requests 300] [--interval 0.02]
[--only NAME...] [--repeat N] [--json]``. Prints a table (``--json``: one JSON object per
fault) and, for a run of every fault, writes ``benchmarks/results/faults.json``. Everything
it makes (namespaces, processes, the tmpfs) is removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WALKTHROUGH = ROOT / "examples" / "walkthrough"
RESULTS = ROOT / "benchmarks" / "results" / "faults.json"
TARGET_S = 2.0
OK = 301

# Runs inside the sleep pod: one lookup and one new connection per request, as a loop of
# `curl aliyun.com -I` would; prints "start end status" per request (0: no answer).
LOOP = r"""
import http.client, socket, sys, time
n, interval = int(sys.argv[1]), float(sys.argv[2])
for _ in range(n):
    t = time.time()
    try:
        ip = socket.getaddrinfo("aliyun.com", 80, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
        c = http.client.HTTPConnection(ip, 80, timeout=2)
        c.request("HEAD", "/", headers={"Host": "aliyun.com"})
        status = c.getresponse().status
        c.close()
    except OSError:
        status = 0
    print(f"{t:.6f} {time.time():.6f} {status}", flush=True)
    time.sleep(interval)
"""

SE = """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: while-full, namespace: default}
spec:
  hosts: [full.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
"""


def meshgate_argv() -> list[str]:
    exe = Path(sys.executable).parent / "meshgate"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "meshgate.cli.main"]


def wait(what: str, check: Callable[[], bool], timeout: float = 60.0) -> float:
    """Poll `check` until it holds; the time it first held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return time.time()
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


class Mesh:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = dict(os.environ, MESHGATE_HOME=str(home))

    def mg(self, *args: str, input: str | None = None, check: bool = True) -> str:
        proc = subprocess.run(
            [*meshgate_argv(), *args], env=self.env, capture_output=True, text=True, input=input
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"meshgate {' '.join(args)}: {proc.stderr or proc.stdout}")
        return proc.stdout + proc.stderr

    def pods(self, namespace: str, prefix: str) -> list[dict[str, Any]]:
        items = json.loads(self.mg("get", "pods", "-n", namespace, "-o", "json"))["items"]
        return [p for p in items if p["metadata"]["name"].startswith(prefix)]

    def ready(self, namespace: str, prefix: str, count: int = 1) -> list[str]:
        names = [
            p["metadata"]["name"]
            for p in self.pods(namespace, prefix)
            if any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in p.get("status", {}).get("conditions", [])
            )
        ]
        return names if len(names) == count else []

    def manifest(self) -> dict[str, Any]:
        from meshgate.runtime.manifest import Manifest

        return Manifest(self.home).read()

    def proxy_pid(self, namespace: str, pod: str) -> int | None:
        pods = self.manifest()["sections"].get("pods", {})
        crec = pods.get(f"{namespace}/{pod}", {}).get("containers", {}).get("istio-proxy", {})
        return crec.get("pid") if crec.get("state") == "running" else None

    def stored(self) -> list[Any]:
        from meshgate.client import Client

        items = Client(self.home).call("GET", "/v1/objects")["items"]
        # Pods' status follows the runtime; everything else must be exactly as it was.
        return [o for o in items if o.get("kind") != "Pod"]

    def all_synced(self, proxies: int) -> bool:
        """Every one of `proxies` proxies connected, every type SYNCED."""
        from meshgate.client import Client

        try:
            items = Client(self.home).call("GET", "/v1/proxy-status")["proxies"]
        except Exception:  # the control plane is not up yet
            return False
        synced = [
            s
            for s in items
            if s.get("connected")
            and all(t.get("state") == "SYNCED" for t in s.get("types", {}).values())
        ]
        return len(synced) >= proxies


def envoy_of(leader: int) -> int:
    """The Envoy process itself, inside its container's sandbox."""
    todo = [leader]
    while todo:
        pid = todo.pop()
        if Path(f"/proc/{pid}/comm").read_text().strip() == "envoy":
            return pid
        for task in Path(f"/proc/{pid}/task").iterdir():
            todo.extend(int(c) for c in (task / "children").read_text().split())
    raise RuntimeError(f"no envoy under {leader}")


class Run:
    """The request loop of one fault, read as it goes."""

    def __init__(self, mesh: Mesh, pod: str, requests: int, interval: float) -> None:
        self.results: list[tuple[float, float, int]] = []
        self.cond = threading.Condition()
        self.proc = subprocess.Popen(
            # The pod's own python3 (the host's /usr, read-only in its sandbox).
            [*meshgate_argv(), "exec", pod, "--", "python3", "-u", "-c", LOOP,
             str(requests), str(interval)],
            env=mesh.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            start, end, status = line.split()
            with self.cond:
                self.results.append((float(start), float(end), int(status)))
                self.cond.notify_all()

    def wait_for(self, count: int) -> None:
        with self.cond:
            while len(self.results) < count and self.proc.poll() is None:
                self.cond.wait(1.0)

    def finish(self) -> list[tuple[float, float, int]]:
        assert self.proc.stderr is not None
        errors = self.proc.stderr.read()
        self.proc.wait(timeout=600)
        time.sleep(0.2)
        with self.cond:
            if not self.results:
                raise RuntimeError(f"the request loop printed nothing: {errors.strip()}")
            return list(self.results)


def summary(name: str, replicas: int, results: list[tuple[float, float, int]], fault_at: float,
            component_s: float | None, note: str = "") -> dict[str, Any]:  # fmt: skip
    failed = [start for start, _, s in results if s != OK]
    recovery = 0.0
    if failed:
        # Until the first success that started after the last failure had its answer.
        after = [end for start, end, s in results if s == OK and start > failed[-1]]
        recovery = (after[0] if after else results[-1][1]) - fault_at
    return {
        "fault": name,
        "replicas": replicas,
        "sent": len(results),
        "failed": len(failed),
        # What the failed requests got (0: no answer at all).
        "failed_statuses": dict(Counter(str(s) for _, _, s in results if s != OK)),
        "recovery_s": round(max(recovery, 0.0), 2),
        "recovered": not failed or any(s == OK and t > failed[-1] for t, _, s in results),
        "component_s": None if component_s is None else round(component_s, 2),
        "target_s": TARGET_S,
        "note": note,
    }


class Faults:
    def __init__(self, mesh: Mesh, mnt: Path, requests: int, interval: float) -> None:
        self.mesh, self.mnt = mesh, mnt
        self.requests, self.interval = requests, interval
        self.replicas = 1
        self.sleep = ""

    def healthy(self) -> None:
        m = self.mesh
        self.sleep = wait_name(lambda: m.ready("default", "sleep-"))
        wait_name(lambda: m.ready("istio-system", "istio-egressgateway-", self.replicas))
        wait("301 from the sleep pod", lambda: "301" in m.mg(
            "exec", self.sleep, "--", "curl", "-sI", "--max-time", "2", "aliyun.com", check=False
        ).split("\n")[0])  # fmt: skip

    def gateways(self) -> list[str]:
        return self.mesh.ready("istio-system", "istio-egressgateway-", self.replicas)

    def run(
        self, name: str, inject: Callable[[], tuple[float, float | None, str]]
    ) -> dict[str, Any]:
        self.healthy()
        loop = Run(self.mesh, self.sleep, self.requests, self.interval)
        loop.wait_for(self.requests // 3)
        out: dict[str, Any] = {}

        def act() -> None:
            out["fault_at"], out["component_s"], out["note"] = inject()

        worker = threading.Thread(target=act)
        worker.start()
        results = loop.finish()
        worker.join(timeout=300)
        return summary(name, self.replicas, results, out["fault_at"], out["component_s"],
                       out["note"])  # fmt: skip

    # -- the faults ----------------------------------------------------------------------

    def control_plane(self) -> tuple[float, float | None, str]:
        from meshgate.home import pid_file

        pid = int(pid_file(self.mesh.home).read_text())
        at = time.time()
        os.kill(pid, signal.SIGKILL)
        wait("the control plane to exit", lambda: not Path(f"/proc/{pid}").exists())
        self.mesh.mg("up", "--world", "demo")
        proxies = 1 + self.replicas  # the sleep pod's sidecar and the gateways
        done = wait("every proxy SYNCED", lambda: self.mesh.all_synced(proxies))
        return at, done - at, ""

    def kill_proxy(self, namespace: str, pod: str) -> tuple[float, float | None, str]:
        m = self.mesh
        old = m.proxy_pid(namespace, pod)
        assert old is not None
        at = time.time()
        os.kill(envoy_of(old), signal.SIGKILL)

        def back() -> bool:
            pid = m.proxy_pid(namespace, pod)
            return pid not in (None, old) and pod in m.ready(
                namespace, pod, 1
            )  # fmt: skip

        done = wait(f"{pod} ready again", back)
        return at, done - at, ""

    def gateway_envoy(self) -> tuple[float, float | None, str]:
        return self.kill_proxy("istio-system", self.gateways()[0])

    def sidecar_envoy(self) -> tuple[float, float | None, str]:
        return self.kill_proxy("default", self.sleep)

    def dns(self) -> tuple[float, float | None, str]:
        old = self.mesh.manifest()["processes"]["node/dns"]["pid"]
        at = time.time()
        os.kill(old, signal.SIGKILL)

        def answering() -> bool:
            rec = self.mesh.manifest()["processes"].get("node/dns", {})
            return rec.get("pid") not in (None, old) and "301" in self.mesh.mg(
                "exec", self.sleep, "--", "curl", "-sI", "--max-time", "1", "aliyun.com",
                check=False,
            )  # fmt: skip

        done = wait("the DNS server answering again", answering)
        return at, done - at, ""

    def state_full(self) -> tuple[float, float | None, str]:
        before = self.mesh.stored()
        filler = self.mnt / "filler"
        at = time.time()
        fill(filler)
        refused = self.mesh.mg("apply", "-f", "-", input=SE, check=False)
        intact = self.mesh.stored() == before
        freed = time.time()
        filler.unlink()
        after = self.mesh.stored() == before
        self.mesh.mg("apply", "-f", "-", input=SE)
        done = time.time()
        self.mesh.mg("delete", "-f", "-", input=SE)
        error = next((line for line in refused.splitlines() if "error" in line), refused.strip())
        ok = "filesystem is full" in refused and intact and after
        note = f"{'refused cleanly' if ok else 'NOT refused cleanly'}: {error}"
        return at, done - freed, note

    def scale(self, replicas: int) -> None:
        text = (WALKTHROUGH / "4-egress-gateway.yaml").read_text()
        scaled = text.replace("replicaCount: 1", f"replicaCount: {replicas}")
        self.mesh.mg("apply", "-f", "-", input=scaled)
        self.replicas = replicas
        self.healthy()

    def gateway_pod_deleted(self) -> tuple[float, float | None, str]:
        gone = self.gateways()[0]
        at = time.time()
        self.mesh.mg("delete", "pod", "-n", "istio-system", gone)

        def replaced() -> bool:
            ready = self.gateways()
            return len(ready) == self.replicas and gone not in ready

        done = wait("a new gateway pod ready", replaced, timeout=120)
        return at, done - at, ""


def wait_name(get: Callable[[], list[str]], timeout: float = 90.0) -> str:
    found: list[str] = []

    def check() -> bool:
        found[:] = get()
        return bool(found)

    wait("pods ready", check, timeout)
    return found[0]


def fill(path: Path) -> None:
    """Write to `path` until its filesystem is full."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 20, 65536, 512):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                continue
    finally:
        os.close(fd)


def report(row: dict[str, Any], as_json: bool) -> dict[str, Any]:
    if as_json:
        print(json.dumps(row), flush=True)
    else:
        comp = "-" if row["component_s"] is None else f"{row['component_s']:.2f}"
        statuses = ",".join(f"{k}x{v}" for k, v in row["failed_statuses"].items())
        print(
            f"{row['fault']:20} replicas={row['replicas']} sent={row['sent']:4} "
            f"failed={row['failed']:4}{' (' + statuses + ')' if statuses else ''} "
            f"recovery={row['recovery_s']:.2f}s component={comp}s (target {TARGET_S:g}s) "
            f"{row['note']}",
            flush=True,
        )
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--interval", type=float, default=0.02)
    parser.add_argument("--only", nargs="*", default=None, help="fault names to run")
    parser.add_argument("--json", action="store_true", help="one JSON object per fault")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each fault")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("faults.py needs root: pods are network namespaces", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="mg-faults-"))
    mnt = tmp / "state"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256m,mode=0700", "tmpfs", str(mnt)],
                   check=True)  # fmt: skip
    mesh = Mesh(mnt / "home")
    rows: list[dict[str, Any]] = []
    try:
        mesh.mg("up", "--world", "demo")
        for step in ("1-sleep.yaml", "2-registry-only.yaml", "3-serviceentry.yaml",
                     "4-egress-gateway.yaml"):  # fmt: skip
            mesh.mg("apply", "-f", str(WALKTHROUGH / step))
        f = Faults(mesh, mnt, args.requests, args.interval)
        plan: list[tuple[str, Callable[[], tuple[float, float | None, str]]]] = [
            ("control-plane", f.control_plane),
            ("gateway-envoy", f.gateway_envoy),
            ("sidecar-envoy", f.sidecar_envoy),
            ("dns", f.dns),
            ("state-full", f.state_full),
            ("scale-to-2", lambda: (0.0, None, "")),
            ("gateway-envoy-2", f.gateway_envoy),
            ("gateway-pod-deleted", f.gateway_pod_deleted),
        ]
        later = {"gateway-envoy-2", "gateway-pod-deleted"}
        for name, inject in plan:
            if name == "scale-to-2":
                if not args.only or later & set(args.only):
                    f.scale(2)
                continue
            if args.only and name not in args.only:
                continue
            for _ in range(args.repeat):
                rows.append(report(f.run(name, inject), args.json))
    finally:
        mesh.mg("down", "--force", check=False)
        subprocess.run(["umount", str(mnt)], check=False)
        for p in (mnt, tmp):
            with contextlib.suppress(OSError):
                p.rmdir()
    if args.only:  # a partial run does not replace the full run's figures
        return 0
    RESULTS.write_text(json.dumps({
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "requests": args.requests, "interval_s": args.interval, "target_s": TARGET_S,
        "faults": rows,
    }, indent=2) + "\n")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
