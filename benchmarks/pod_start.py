"""What a pod costs to start: the runtime alone, the seed's first step, and a scale-up.

Three figures; the first two over several rounds (median and best):
- ``runtime``: ``Runtime.start_pod`` of a plain pod (one container, no proxy) until a command
  runs in it through ``exec_argv`` (so a sandbox counts only once it can be entered), then
  ``stop_pod``. This is the per-pod cost of the sandbox, without the control plane.
- ``walkthrough``: ``meshgate apply -f examples/walkthrough/1-sleep.yaml`` on a running mesh
  (``up --world demo``) until ``get pods`` shows the sleep pod ``2/2 Running``, then
  ``delete`` and wait until it is gone: the seed's "apply, then the pod runs".
- ``scale``: on a running mesh, one Deployment of N replicas (``--replicas``, default
  10, 25 and 50, each applied to a mesh with none of them, then deleted), every pod with
  its sidecar. From ``apply`` returning, ``get pods -o json`` is polled (every 0.25 s)
  until every replica is Ready: the time to all Ready, p50/p99 of each pod's time to
  Ready, the control plane's CPU meanwhile (cores: CPU seconds over wall seconds), and how
  many sidecar Envoys logged Envoy's initial-fetch timeout ("initial fetch timed out": no
  configuration within 15 s of asking), read from their logs once all are Ready. Proxies
  SYNCED (``proxy-status``) are counted at the same moment.

Run as root: ``.venv/bin/python benchmarks/pod_start.py [--rounds 10] [--label NAME]
[--figures runtime,walkthrough,scale] [--replicas 10,25,50]``.
Prints the figures and writes ``benchmarks/results/pod_start.json`` (keyed by label, so a
run of an older tree, e.g. ``PYTHONPATH=<old checkout>/src ... --label before``, lands
beside the current one).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "pod_start.json"
MESHGATE = [sys.executable, "-m", "meshgate.cli.main"]


def runtime_rounds(rounds: int) -> list[float]:
    from meshgate.runtime.manifest import teardown
    from meshgate.runtime.node import Node
    from meshgate.runtime.pods import ContainerSpec, PodSpec, Runtime

    state = tempfile.mkdtemp(prefix="mg-bench-")
    times = []
    try:
        Node(state).up(None)
        rt = Runtime(state)
        for i in range(rounds):
            spec = PodSpec(
                name=f"bench-{i}",
                namespace="default",
                containers=[ContainerSpec("app", ["/bin/sleep", "infinity"])],
            )
            t0 = time.perf_counter()
            rt.start_pod(spec)
            while True:
                try:
                    argv = rt.exec_argv("default", spec.name, ["true"])
                except Exception:  # not enterable yet
                    argv = []
                if argv and subprocess.run(argv, capture_output=True).returncode == 0:
                    break
                time.sleep(0.001)
            times.append(time.perf_counter() - t0)
            rt.stop_pod("default", spec.name)
    finally:
        teardown(state, force=True)
        shutil.rmtree(state, ignore_errors=True)
    return times


def _cli(env: dict[str, str], *args: str) -> str:
    proc = subprocess.run(
        [*MESHGATE, *args], env=env, capture_output=True, text=True, check=True, timeout=120
    )
    return proc.stdout


def _sleep_pods(env: dict[str, str]) -> list[list[str]]:
    out = _cli(env, "get", "pods", "--no-headers")
    return [line.split() for line in out.splitlines() if line.startswith("sleep-")]


def walkthrough_rounds(rounds: int) -> list[float]:
    home = tempfile.mkdtemp(prefix="mg-bench-home-")
    env = dict(os.environ, MESHGATE_HOME=home)
    sleep_yaml = str(ROOT / "examples" / "walkthrough" / "1-sleep.yaml")
    times = []
    try:
        _cli(env, "up", "--world", "demo")
        for _ in range(rounds):
            t0 = time.perf_counter()
            _cli(env, "apply", "-f", sleep_yaml)
            while not any(r[1] == "2/2" and r[2] == "Running" for r in _sleep_pods(env)):
                time.sleep(0.02)
            times.append(time.perf_counter() - t0)
            _cli(env, "delete", "-f", sleep_yaml)
            while _sleep_pods(env):
                time.sleep(0.1)
    finally:
        subprocess.run([*MESHGATE, "down", "--force"], env=env, capture_output=True)
        shutil.rmtree(home, ignore_errors=True)
    return times


def summary(times: list[float]) -> dict[str, Any]:
    return {
        "rounds": len(times),
        "median_ms": round(statistics.median(times) * 1000, 1),
        "best_ms": round(min(times) * 1000, 1),
        "all_ms": [round(t * 1000, 1) for t in times],
    }


SCALE_YAML = """\
apiVersion: v1
kind: ServiceAccount
metadata: {{name: {name}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      terminationGracePeriodSeconds: 0
      serviceAccountName: {name}
      containers:
      - name: app
        image: curlimages/curl
        command: ["/bin/sleep", "infinity"]
"""
FETCH_TIMEOUT = "initial fetch timed out"  # Envoy's warning when a subscription's 15 s pass
CLK_TCK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _ready_pods(env: dict[str, str], prefix: str) -> tuple[int, set[str]]:
    """(how many pods named ``prefix``-... exist, the names of those Ready)."""
    items = json.loads(_cli(env, "get", "pods", "-o", "json"))["items"]
    mine = [p for p in items if p["metadata"]["name"].startswith(prefix + "-")]
    ready = {
        p["metadata"]["name"]
        for p in mine
        if any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in (p.get("status") or {}).get("conditions") or []
        )
    }
    return len(mine), ready


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def scale_round(env: dict[str, str], home: Path, replicas: int) -> dict[str, Any]:
    from meshgate.home import pid_file

    name = f"scale{replicas}"
    cp = int(pid_file(home).read_text())
    yaml_text = SCALE_YAML.format(name=name, replicas=replicas)
    cpu0 = _cpu_seconds(cp)
    t0 = time.monotonic()
    subprocess.run(
        [*MESHGATE, "apply", "-f", "-"], env=env, input=yaml_text, text=True, check=True,
        capture_output=True, timeout=120,
    )  # fmt: skip
    ready_at: dict[str, float] = {}
    deadline = t0 + 300
    while True:
        count, ready = _ready_pods(env, name)
        now = time.monotonic() - t0
        for pod in ready:
            ready_at.setdefault(pod, now)
        if count >= replicas and len(ready) >= replicas:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name}: {len(ready)}/{replicas} Ready after 300 s")
        time.sleep(0.25)
    total = time.monotonic() - t0
    cpu = _cpu_seconds(cp) - cpu0
    timeouts = 0
    for pod in ready_at:
        log = home / "logs" / "pods" / "default" / pod / "istio-proxy.log"
        with contextlib.suppress(OSError):
            timeouts += FETCH_TIMEOUT in log.read_text(errors="replace")
    statuses = json.loads(_cli(env, "proxy-status", "-o", "json"))
    synced = sum(
        1
        for st in statuses
        if f"~{name}-" in st["nodeId"]
        and st["types"]
        and all(t.get("state") == "SYNCED" for t in st["types"].values())
    )
    _cli(env, "delete", "deployment", name)
    _cli(env, "delete", "serviceaccount", name)
    while _ready_pods(env, name)[0]:
        time.sleep(0.5)
    per_pod = list(ready_at.values())
    return {
        "replicas": replicas,
        "all_ready_s": round(total, 2),
        "ready_p50_s": round(_percentile(per_pod, 0.5), 2),
        "ready_p99_s": round(_percentile(per_pod, 0.99), 2),
        "pods_per_s": round(replicas / total, 2),
        "initial_fetch_timeouts": timeouts,
        "proxies_synced": synced,
        "cp_cpu_cores": round(cpu / total, 2),
        "cp_cpu_s": round(cpu, 1),
    }


def scale_rounds(sizes: list[int]) -> list[dict[str, Any]]:
    home = Path(tempfile.mkdtemp(prefix="mg-bench-home-"))
    env = dict(os.environ, MESHGATE_HOME=str(home))
    rows = []
    try:
        _cli(env, "up", "--world", "demo")
        for n in sizes:
            rows.append(scale_round(env, home, n))
            print(json.dumps(rows[-1]), flush=True)
    finally:
        subprocess.run([*MESHGATE, "down", "--force"], env=env, capture_output=True)
        shutil.rmtree(home, ignore_errors=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=10, help="rounds of runtime and walkthrough")
    ap.add_argument("--label", default="current", help="key of this run in the results file")
    ap.add_argument(
        "--figures", default="runtime,walkthrough,scale", help="which figures (comma-separated)"
    )
    ap.add_argument("--replicas", default="10,25,50", help="scale: replica counts, in turn")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("pod_start.py needs root: pods are network namespaces")
    wanted = {f.strip() for f in args.figures.split(",") if f.strip()}
    unknown = wanted - {"runtime", "walkthrough", "scale"}
    if unknown:
        sys.exit(f"--figures: unknown figure(s) {', '.join(sorted(unknown))}")
    try:
        sizes = [int(n) for n in args.replicas.split(",") if n.strip()]
    except ValueError:
        sys.exit(f"--replicas: {args.replicas!r} is not a comma-separated list of numbers")
    rev = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    import meshgate

    figures: dict[str, Any] = {
        "code": str(Path(meshgate.__file__).resolve().parent),
        "commit": rev,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpus": os.cpu_count(),
    }
    if "runtime" in wanted:
        figures["runtime"] = summary(runtime_rounds(args.rounds))
    if "walkthrough" in wanted:
        figures["walkthrough"] = summary(walkthrough_rounds(args.rounds))
    for name in ("runtime", "walkthrough"):
        if name in figures:
            f = figures[name]
            med, best = f["median_ms"], f["best_ms"]
            print(f"{args.label:>8} {name:<12} median {med:8.1f} ms  best {best:8.1f} ms")
    if "scale" in wanted:
        figures["scale"] = scale_rounds(sizes)
        for row in figures["scale"]:
            print(
                f"{args.label:>8} scale {row['replicas']:>4} pods: all Ready"
                f" {row['all_ready_s']:6.1f} s (p50 {row['ready_p50_s']} s, p99"
                f" {row['ready_p99_s']} s), {row['initial_fetch_timeouts']} initial-fetch"
                f" timeouts, {row['proxies_synced']} SYNCED, control plane"
                f" {row['cp_cpu_cores']} cores"
            )
    results: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    # A run of some figures keeps the label's other figures from an earlier run.
    results[args.label] = {**results.get(args.label, {}), **figures}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
