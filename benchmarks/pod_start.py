"""What a pod costs to start: the runtime alone, and the seed's first step as a user sees it.

Two figures, each over several rounds (median and best):
- ``runtime``: ``Runtime.start_pod`` of a plain pod (one container, no proxy) until a command
  runs in it through ``exec_argv`` (so a sandbox counts only once it can be entered), then
  ``stop_pod``. This is the per-pod cost of the sandbox, without the control plane.
- ``walkthrough``: ``meshgate apply -f examples/walkthrough/1-sleep.yaml`` on a running mesh
  (``up --world demo``) until ``get pods`` shows the sleep pod ``2/2 Running``, then
  ``delete`` and wait until it is gone: the seed's "apply, then the pod runs".

Run as root: ``.venv/bin/python benchmarks/pod_start.py [--rounds 10] [--label NAME]``.
Prints the figures and writes ``benchmarks/results/pod_start.json`` (keyed by label, so a
run of an older tree, e.g. ``PYTHONPATH=<old checkout>/src ... --label before``, lands
beside the current one).
"""

from __future__ import annotations

import argparse
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=10, help="rounds of each figure")
    ap.add_argument("--label", default="current", help="key of this run in the results file")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("pod_start.py needs root: pods are network namespaces")
    rev = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    import meshgate

    figures = {
        "runtime": summary(runtime_rounds(args.rounds)),
        "walkthrough": summary(walkthrough_rounds(args.rounds)),
        "code": str(Path(meshgate.__file__).resolve().parent),
        "commit": rev,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    for name in ("runtime", "walkthrough"):
        f = figures[name]
        med, best = f["median_ms"], f["best_ms"]
        print(f"{args.label:>8} {name:<12} median {med:8.1f} ms  best {best:8.1f} ms")
    results: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results[args.label] = figures
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
