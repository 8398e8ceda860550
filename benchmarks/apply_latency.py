"""How fast a configuration change reaches the data plane: ``meshgate apply`` returning ->
the sleep pod seeing the new behaviour.

A probe inside the sleep pod sends ``HEAD /`` to aliyun.com on a new connection every few
milliseconds and prints each change of status with its wall-clock time. The benchmark flips
the mesh between ALLOW_ANY (301 from the simulated host) and REGISTRY_ONLY (502 from the
sidecar) through the CLI, exactly as a user would, and records how long after ``apply``
returned the probe saw the flip. It also measures the same after a control-plane restart
(proxies keep their config meanwhile and must resync with the new process).

Run as root: ``.venv/bin/python benchmarks/apply_latency.py [--rounds 30]``. Prints the
figures and writes ``benchmarks/results/apply_latency.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WALKTHROUGH = ROOT / "examples" / "walkthrough"
RESULTS = ROOT / "benchmarks" / "results" / "apply_latency.json"

MESHCONFIG = """apiVersion: meshgate.io/v1alpha1
kind: MeshConfig
metadata:
  name: default
spec:
  outboundTrafficPolicy:
    mode: {mode}
"""
EXPECT = {"REGISTRY_ONLY": 502, "ALLOW_ANY": 301}

# Runs inside the pod: one new connection per request (a change to a listener drains old
# connections, so keep-alive would measure Envoy's drain, not our push).
PROBE = r"""
import http.client, socket, sys, time
ip = socket.gethostbyname("aliyun.com")
last = None
while True:
    try:
        c = http.client.HTTPConnection(ip, 80, timeout=2)
        c.request("HEAD", "/", headers={"Host": "aliyun.com"})
        status = c.getresponse().status
        c.close()
    except OSError:
        status = 0
    if status != last:
        print(f"{time.time():.6f} {status}", flush=True)
        last = status
    time.sleep(0.002)
"""


def meshgate_argv() -> list[str]:
    exe = Path(sys.executable).parent / "meshgate"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "meshgate.cli.main"]


class Bench:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = dict(os.environ, MESHGATE_HOME=str(home))
        self.changes: list[tuple[float, int]] = []
        self.cond = threading.Condition()
        self.probe: subprocess.Popen[str] | None = None

    def mg(self, *args: str, input: str | None = None) -> str:
        proc = subprocess.run(
            [*meshgate_argv(), *args], env=self.env, capture_output=True, text=True, input=input
        )
        if proc.returncode != 0:
            raise RuntimeError(f"meshgate {' '.join(args)}: {proc.stderr or proc.stdout}")
        return proc.stdout

    def wait_pod(self, namespace: str, prefix: str) -> str:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            pods = json.loads(self.mg("get", "pods", "-n", namespace, "-o", "json"))
            for p in pods["items"]:
                name = p["metadata"]["name"]
                if name.startswith(prefix) and p.get("status", {}).get("phase") == "Running":
                    return str(name)
            time.sleep(0.2)
        raise RuntimeError(f"pod {prefix}* did not start")

    def start_probe(self, pod: str) -> None:
        self.probe = subprocess.Popen(
            [*meshgate_argv(), "exec", pod, "--", sys.executable, "-u", "-c", PROBE],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.probe is not None and self.probe.stdout is not None
        for line in self.probe.stdout:
            t, status = line.split()
            with self.cond:
                self.changes.append((float(t), int(status)))
                self.cond.notify_all()

    def wait_status(self, status: int, after_index: int, timeout: float = 10.0) -> float:
        """Time of the first change to ``status`` recorded at index >= after_index."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for t, s in self.changes[after_index:]:
                    if s == status:
                        return t
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"probe never saw {status}: {self.changes[-5:]}")
                self.cond.wait(left)

    def flip(self, mode: str) -> tuple[float, float]:
        """Apply ``mode``; seconds from the apply command starting and from it returning to
        the probe seeing the new status (negative: seen before the CLI process had exited)."""
        with self.cond:
            index = len(self.changes)
        started = time.time()
        self.mg("apply", "-f", "-", input=MESHCONFIG.format(mode=mode))
        returned = time.time()
        seen = self.wait_status(EXPECT[mode], index)
        return seen - started, seen - returned

    def stop_probe(self) -> None:
        if self.probe is not None and self.probe.poll() is None:
            self.probe.kill()
            self.probe.wait()


def summary(samples: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples)
    q = statistics.quantiles(ms, n=100, method="inclusive") if len(ms) > 1 else ms * 99
    return {
        "count": len(ms),
        "min_ms": round(ms[0], 1),
        "p50_ms": round(statistics.median(ms), 1),
        "p90_ms": round(q[89], 1),
        "p99_ms": round(q[98], 1),
        "max_ms": round(ms[-1], 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30, help="flips to measure")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("apply_latency needs root (pods are network namespaces)", file=sys.stderr)
        return 2
    home = Path(tempfile.mkdtemp(prefix="meshgate-bench-"))
    bench = Bench(home)
    try:
        bench.mg("up", "--world", "demo")
        bench.mg("apply", "-f", str(WALKTHROUGH / "1-sleep.yaml"))
        sleep = bench.wait_pod("default", "sleep-")
        bench.start_probe(sleep)
        bench.wait_status(301, 0, timeout=30)

        from_start: list[float] = []
        from_return: list[float] = []
        for i in range(args.rounds):
            mode = "REGISTRY_ONLY" if i % 2 == 0 else "ALLOW_ANY"
            a, b = bench.flip(mode)
            from_start.append(a)
            from_return.append(b)
            time.sleep(0.3)

        # Restart: SIGTERM keeps pods and proxies; a new control plane must resync them.
        pid = int((home / "control-plane.pid").read_text())
        os.kill(pid, signal.SIGTERM)
        while (home / "control-plane.pid").exists():
            time.sleep(0.05)
        t0 = time.monotonic()
        bench.mg("up", "--world", "demo")
        up_s = time.monotonic() - t0
        mode = "REGISTRY_ONLY" if args.rounds % 2 == 0 else "ALLOW_ANY"
        _, after_restart = bench.flip(mode)
    finally:
        bench.stop_probe()
        subprocess.run([*meshgate_argv(), "down", "--force"], env=bench.env, capture_output=True)
        shutil.rmtree(home, ignore_errors=True)

    result = {
        "benchmark": "apply_latency",
        "what": "meshgate apply (CLI, MeshConfig mode flip) returning -> sleep pod sees new status",
        "target_ms": 1000,
        "apply_returned_to_effect": summary(from_return),
        "apply_started_to_effect": summary(from_start),
        "restart": {
            "up_s": round(up_s, 2),
            "first_change_after_restart_ms": round(after_restart * 1000, 1),
        },
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
