"""How long a large configuration takes to reach every proxy, and what it costs at rest.

The mesh runs the walkthrough (``meshgate up --world demo``, examples/walkthrough/ 1-4: a
sleep sidecar and the egress gateway, REGISTRY_ONLY). One file of 500 ServiceEntries
(``svc-N.example.com``, ports 80 and 443, resolution DNS: names the demo world does not know,
so the mesh DNS answers NXDOMAIN) and 100 VirtualServices is applied through the CLI, and
``meshgate proxy-status`` is polled until every proxy is SYNCED for every type. Per round it
records, from ``apply`` returning: the first time LDS and RDS are SYNCED everywhere, the time
everything is SYNCED (CDS is the slow one: Envoy pauses CDS while new clusters warm, and a
STRICT_DNS cluster is warm after its first resolution), the mesh DNS's CPU during that
time and in 10 s at rest afterwards, and UDP datagrams the mesh DNS dropped for a full
receive buffer. Deleting the file is timed the same way.

Run as root: ``.venv/bin/python benchmarks/scale_sync.py [--rounds 3]``. Prints the figures
and writes ``benchmarks/results/scale_sync.json``. The mesh lives in its own state directory
under /tmp and is always brought down.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WALKTHROUGH = ROOT / "examples" / "walkthrough"
RESULTS = ROOT / "benchmarks" / "results" / "scale_sync.json"
CDS = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
LDS = "type.googleapis.com/envoy.config.listener.v3.Listener"
RDS = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def scale_file(entries: int, virtual_services: int) -> str:
    docs = []
    for i in range(entries):
        docs.append(
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
            f"metadata: {{name: svc-{i}, namespace: default}}\n"
            f"spec:\n  hosts: [svc-{i}.example.com]\n  location: MESH_EXTERNAL\n"
            "  ports:\n  - {number: 80, name: http, protocol: HTTP}\n"
            "  - {number: 443, name: https, protocol: HTTPS}\n  resolution: DNS"
        )
    for i in range(virtual_services):
        docs.append(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
            f"metadata: {{name: vs-{i}, namespace: default}}\n"
            f"spec:\n  hosts: [svc-{i}.example.com]\n  http:\n  - timeout: 5s\n"
            f"    route: [{{destination: {{host: svc-{i}.example.com, port: {{number: 80}}}}}}]"
        )
    return "\n---\n".join(docs) + "\n"


def meshgate_argv() -> list[str]:
    exe = Path(sys.executable).parent / "meshgate"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "meshgate.cli.main"]


class Bench:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = dict(os.environ, MESHGATE_HOME=str(home))

    def mg(self, *args: str, check: bool = True) -> str:
        proc = subprocess.run(
            meshgate_argv() + list(args), env=self.env, capture_output=True, text=True, timeout=300
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"meshgate {' '.join(args)}: {proc.stdout}{proc.stderr}")
        return proc.stdout

    def states(self) -> list[dict[str, str]]:
        return [
            {t: p["types"][t]["state"] for t in p["types"]}
            for p in json.loads(self.mg("proxy-status", "-o", "json"))
        ]

    def wait_synced(self, start: float, proxies: int, timeout: float = 120.0) -> dict[str, float]:
        """Seconds from ``start`` until LDS+RDS, and then every type, are SYNCED everywhere."""
        result: dict[str, float] = {}
        while time.monotonic() - start < timeout:
            states = self.states()
            now = time.monotonic() - start
            if len(states) >= proxies:
                if "lds_rds" not in result and all(
                    s.get(LDS) == "SYNCED" and s.get(RDS) == "SYNCED" for s in states
                ):
                    result["lds_rds"] = now
                if all(v == "SYNCED" for s in states for v in s.values()):
                    result.setdefault("lds_rds", now)
                    result["all"] = now
                    return result
            time.sleep(0.2)
        raise RuntimeError(f"not SYNCED after {timeout}s: {self.states()}")

    def dns_pid(self) -> int:
        needle = f"--zone-dir {self.home}/dns"
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if "meshgate.runtime.dns" in cmd and needle in cmd:
                return int(entry.name)
        raise RuntimeError("mesh DNS process not found")

    def node_namespace(self) -> str:
        from meshgate.home import mesh_id

        return f"mg-{mesh_id(self.home)}-node"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def udp_rcvbuf_errors(namespace: str) -> int:
    out = subprocess.run(
        ["ip", "netns", "exec", namespace, "cat", "/proc/net/snmp"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    header, values = [line.split() for line in out.splitlines() if line.startswith("Udp:")][:2]
    return int(values[header.index("RcvbufErrors")])


def measure(bench: Bench, scale: Path, verb: str, proxies: int) -> dict[str, float]:
    dns = bench.dns_pid()
    ns = bench.node_namespace()
    cpu0, drops0 = cpu_seconds(dns), udp_rcvbuf_errors(ns)
    t0 = time.monotonic()
    bench.mg(verb, "-f", str(scale))
    start = time.monotonic()
    synced = bench.wait_synced(start, proxies)
    row = {
        "cli_s": round(start - t0, 3),
        "lds_rds_synced_s": round(synced["lds_rds"], 2),
        "all_synced_s": round(synced["all"], 2),
        "dns_cpu_s_during_sync": round(cpu_seconds(dns) - cpu0, 2),
        "dns_udp_drops": udp_rcvbuf_errors(ns) - drops0,
    }
    cpu1 = cpu_seconds(dns)
    time.sleep(10)
    row["dns_cpu_s_per_10s_at_rest"] = round(cpu_seconds(dns) - cpu1, 2)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--entries", type=int, default=500)
    parser.add_argument("--virtual-services", type=int, default=100)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: pods are network namespaces")

    work = Path(tempfile.mkdtemp(prefix="mg-scale-sync-"))
    scale = work / "scale.yaml"
    scale.write_text(scale_file(args.entries, args.virtual_services))
    bench = Bench(work / "home")
    applies: list[dict[str, float]] = []
    deletes: list[dict[str, float]] = []
    try:
        bench.mg("up", "--world", "demo")
        for name in ("1-sleep.yaml", "2-registry-only.yaml", "3-serviceentry.yaml",
                     "4-egress-gateway.yaml"):  # fmt: skip
            bench.mg("apply", "-f", str(WALKTHROUGH / name))
        deadline = time.monotonic() + 120
        while len(bench.states()) < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
        bench.wait_synced(time.monotonic(), 2)
        for r in range(args.rounds):
            applies.append(measure(bench, scale, "apply", 2))
            deletes.append(measure(bench, scale, "delete", 2))
            print(f"round {r + 1}: apply {applies[-1]}\n         delete {deletes[-1]}")
    finally:
        bench.mg("down", "--force", check=False)

    def summary(rows: list[dict[str, float]]) -> dict[str, Any]:
        return {
            k: {"median": statistics.median(r[k] for r in rows), "max": max(r[k] for r in rows)}
            for k in rows[0]
        }

    result = {
        "benchmark": "scale_sync",
        "entries": args.entries,
        "virtual_services": args.virtual_services,
        "proxies": 2,
        "rounds": args.rounds,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "apply": {"rounds": applies, "summary": summary(applies)},
        "delete": {"rounds": deletes, "summary": summary(deletes)},
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({"apply": result["apply"]["summary"], "delete": result["delete"]["summary"]}))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
