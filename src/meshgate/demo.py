"""``make demo``: the seed walkthrough on a fresh local mesh, step by step.

Rules: the demo only types what a user would type (``meshgate ...`` commands), prints
each command and what it printed, and waits for a step's effect the way a user would
(retrying the request for a few seconds). It runs in its own state directory and tears
everything down at the end, even when a step fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve()
WALKTHROUGH = HERE.parents[2] / "examples" / "walkthrough"
BOLD, DIM, GREEN, RED, RESET = "\033[1m", "\033[2m", "\033[32m", "\033[31m", "\033[0m"


def _meshgate() -> list[str]:
    exe = Path(sys.executable).parent / "meshgate"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "meshgate.cli.main"]


class Demo:
    def __init__(self, home: Path) -> None:
        self.env = dict(os.environ, MESHGATE_HOME=str(home))
        self.color = sys.stdout.isatty()

    def say(self, text: str, style: str = BOLD) -> None:
        print(f"{style}{text}{RESET}" if self.color else text, flush=True)

    def run(self, *args: str, show: bool = True, check: bool = True) -> str:
        cmd = ["meshgate", *args]
        if show:
            self.say("$ " + " ".join(cmd), DIM)
        proc = subprocess.run(
            _meshgate() + list(args), env=self.env, capture_output=True, text=True
        )
        out = proc.stdout + proc.stderr
        if show and out.strip():
            print(out.rstrip(), flush=True)
        if check and proc.returncode != 0:
            raise RuntimeError(f"`{' '.join(cmd)}` failed with status {proc.returncode}")
        return proc.stdout

    def wait_for(self, what: str, probe: Callable[[], bool], timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if probe():
                return
            time.sleep(0.25)
        raise RuntimeError(f"timed out waiting for {what}")

    def pod(self, namespace: str, prefix: str) -> str:
        out = self.run("get", "pods", "-n", namespace, "-o", "name", show=False, check=False)
        for line in out.split():
            name = line.split("/", 1)[-1]
            if name.startswith(prefix):
                return name
        return ""

    def running(self, namespace: str, prefix: str) -> bool:
        out = self.run("get", "pods", "-n", namespace, show=False, check=False)
        for line in out.splitlines():
            cols = line.split()
            if len(cols) >= 3 and cols[0].startswith(prefix) and cols[2] == "Running":
                ready, _, total = cols[1].partition("/")
                return ready == total
        return False

    def curl(self, pod: str, expect: str, timeout: float = 15.0) -> None:
        """Run the seed's request in the sleep pod until the expected status shows."""
        args = ["exec", pod, "--", "curl", "-sS", "-I", "--max-time", "5", "aliyun.com"]
        last = ""

        def probe() -> bool:
            nonlocal last
            last = self.run(*args, show=False, check=False)
            return last.startswith(f"HTTP/1.1 {expect}")

        try:
            self.wait_for(f"HTTP {expect}", probe, timeout)
        finally:
            self.say(f"$ meshgate exec -it {pod} -- /bin/sh", DIM)
            self.say("/ $ curl aliyun.com -I", DIM)
            print(last.rstrip(), flush=True)

    def step(self, title: str) -> None:
        print()
        self.say(f"== {title}")

    def walkthrough(self) -> None:
        files = WALKTHROUGH
        self.step("Start a local mesh with the simulated internet (aliyun.com lives there)")
        self.run("up", "--world", "demo")

        self.step("Step 1: deploy the sleep app; ALLOW_ANY lets it reach aliyun.com")
        self.run("apply", "-f", str(files / "1-sleep.yaml"))
        self.wait_for("the sleep pod", lambda: self.running("default", "sleep-"))
        self.run("get", "pods", "-n", "default")
        sleep = self.pod("default", "sleep-")
        self.curl(sleep, "301")

        self.step("Step 2: REGISTRY_ONLY blocks hosts without a ServiceEntry")
        self.run("apply", "-f", str(files / "2-registry-only.yaml"))
        self.curl(sleep, "502")

        self.step("Step 3: a ServiceEntry registers aliyun.com")
        self.run("apply", "-f", str(files / "3-serviceentry.yaml"))
        self.curl(sleep, "301")

        self.step("Step 4: the egress gateway becomes the single exit")
        self.run("apply", "-f", str(files / "4-egress-gateway.yaml"))
        self.wait_for(
            "the egress gateway pod", lambda: self.running("istio-system", "istio-egressgateway-")
        )
        self.run("get", "pods", "-n", "istio-system")
        gw = self.pod("istio-system", "istio-egressgateway-")
        self.curl(sleep, "301")
        self.say(
            f"$ meshgate -n istio-system logs {gw} -c istio-proxy | grep aliyun.com | tail -n 1",
            DIM,
        )
        line = ""

        def logged() -> bool:
            nonlocal line
            out = self.run("logs", "-n", "istio-system", gw, "-c", "istio-proxy", show=False)
            hits = [x for x in out.splitlines() if "aliyun.com" in x]
            line = hits[-1] if hits else ""
            return bool(line)

        self.wait_for("the gateway's access-log line", logged, timeout=10)
        print(line, flush=True)


def main() -> int:
    if os.geteuid() != 0:
        print("make demo needs root: pods are Linux network namespaces", file=sys.stderr)
        return 2
    home = Path(tempfile.mkdtemp(prefix="meshgate-demo-"))
    demo = Demo(home)
    ok = False
    try:
        demo.walkthrough()
        ok = True
    except RuntimeError as exc:
        demo.say(f"demo failed: {exc}", RED)
        log = home / "control-plane.log"
        if log.exists():
            print("--- control-plane.log (tail) ---")
            print("\n".join(log.read_text(errors="replace").splitlines()[-30:]))
    finally:
        demo.step("Tear everything down")
        demo.run("down", check=False)
        shutil.rmtree(home, ignore_errors=True)
    if ok:
        demo.say("The seed walkthrough ran end to end.", GREEN)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
