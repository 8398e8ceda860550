"""How long ``meshgate delete -f`` takes for a large file, next to ``apply -f`` of it.

Two paths are measured on the same objects (``config_scale.make_yaml``: 500 ServiceEntries
and 100 VirtualServices by default):
- ``store``: ``SqliteStore.apply`` / ``delete`` in-process, the floor of both verbs;
- ``api``: the CLI as a user runs it (a fresh ``meshgate`` process per verb) against the
  control plane's real HTTP API served on its Unix socket by uvicorn, with a stand-in
  control plane that has a real store but no pods or proxies (pushes are not measured).

Run: ``.venv/bin/python benchmarks/delete_latency.py [--se 500 --vs 100 --runs 3]``. Prints
the figures (best of the runs) and writes ``benchmarks/results/delete_latency.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from config_scale import make_yaml

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "delete_latency.json"
MESHGATE = [sys.executable, "-m", "meshgate.cli.main"]


class StubControlPlane:
    """What the API handlers use of a control plane: a store, and a kick that does nothing."""

    def __init__(self, home: Path) -> None:
        from meshgate.store import open_store

        self.home = home
        self.store = open_store(home)

    def kick(self) -> None:
        pass


def store_figures(text: str) -> dict[str, float]:
    from meshgate.api.decode import decode_text
    from meshgate.api.meta import to_wire_all
    from meshgate.store import open_store

    wire = to_wire_all(decode_text(text, "bench.yaml").resources)
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(Path(tmp))
        try:
            t0 = time.perf_counter()
            keys = [c.key for c in store.apply(wire)]
            applied = time.perf_counter() - t0
            t0 = time.perf_counter()
            store.delete(keys, missing_ok=True)
            deleted = time.perf_counter() - t0
        finally:
            store.close()
    return {"store_apply_s": applied, "store_delete_s": deleted}


def _serve(home: Path) -> tuple[Any, threading.Thread, StubControlPlane]:
    import uvicorn

    from meshgate.home import api_socket, token_file
    from meshgate.server.api import build_app

    cp = StubControlPlane(home)
    token_file(home).write_text("bench-token")
    sock = api_socket(home)
    sock.parent.mkdir(parents=True, exist_ok=True)
    app = build_app(cp, "bench-token")  # type: ignore[arg-type]
    config = uvicorn.Config(app, uds=str(sock), log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    return server, thread, cp


def _timed(args: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    done = subprocess.run([*MESHGATE, *args], env=env, capture_output=True, text=True)
    took = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"meshgate {' '.join(args)} failed: {done.stderr[-2000:]}")
    return took


def api_figures(text: str) -> dict[str, float]:
    from meshgate.home import run_dir

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        path = Path(tmp) / "scale.yaml"
        path.write_text(text)
        server, thread, cp = _serve(home)
        env = {**os.environ, "MESHGATE_HOME": str(home)}
        try:
            applied = _timed(["apply", "-f", str(path)], env)
            deleted = _timed(["delete", "-f", str(path)], env)
            assert not cp.store.list(), "delete left objects behind"
            version = _timed(["version", "--short"], env)
        finally:
            server.should_exit = True
            thread.join(timeout=10)
            cp.store.close()
            shutil.rmtree(run_dir(home), ignore_errors=True)
    return {"cli_apply_s": applied, "cli_delete_s": deleted, "cli_startup_s": version}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--se", type=int, default=500)
    parser.add_argument("--vs", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    text = make_yaml(args.se, args.vs)
    runs = [{**store_figures(text), **api_figures(text)} for _ in range(args.runs)]
    best = {k: min(r[k] for r in runs) for k in runs[0]}
    for key, value in best.items():
        print(f"{key:16} {value * 1000:9.1f} ms")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "objects": args.se + args.vs,
                "runs": args.runs,
                "best": best,
                "all": runs,
                "python": platform.python_version(),
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
