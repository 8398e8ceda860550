"""One changed ServiceEntry fanned out to N real Envoy sidecars, with M ServiceEntries loaded.

For each configuration (N proxies, M ServiceEntries, scoped or not) a fresh mesh is made
(``meshgate up --world demo``, REGISTRY_ONLY from the walkthrough), M STATIC ServiceEntries
(``fan-K.example.com``, port 80, one endpoint on a documentation address) are applied, and
a Deployment of N pods with sidecars (Envoy at ``--concurrency 1``, the control plane's
default) is scaled up. With ``--scoped`` a ``Sidecar`` in their namespace imports three of
the hosts only. Once every proxy is SYNCED it measures:

- ``cpu_rest_cores``: the control plane's CPU over ``--rest`` seconds with nothing changing;
- per change (``--changes`` of them, one ServiceEntry's endpoint address each time): from
  ``apply`` to every proxy having ACKed the new EDS version, p50/p99 over the changes;
  ``bytes_per_push``: xDS bytes sent per proxy per change (the control plane's own
  ``bytesSent`` counter); ``cpu_s_per_change``: the control plane's CPU per change;
- ``rss_mb``: the control plane's RSS; ``envoy_rss_mb``: the mean RSS of one sidecar Envoy;
  ``envoy_private_mb``: the mean of its anonymous (private) memory, what each further proxy
  costs: RSS also counts the pages of Envoy's binary it has touched (about 49 MB of this
  100 MB build, even for an Envoy with no config), which every Envoy shares.

ACK state is polled through the API's compact proxy listing in this process (no CLI
start-up per poll); what the polling itself costs the control plane is measured at rest
and reported as ``cpu_poll_cores`` beside the figures. ``mode`` is the proxies' ADS
flavour (MeshConfig ``xdsMode``): ``sotw`` (state of the world) or ``delta`` (incremental);
by default each configuration runs in both, ``--mode`` picks one. Each mesh is always
brought down (``meshgate down --force``).

Many proxies (``--clients N[,M]``): beside ``--proxies`` real sidecars (2 by default
then) run N simulated xDS clients (benchmarks/xds_clients.py: ADS streams that subscribe
and ACK as a sidecar's Envoy does, in a process of their own). Each borrows a real
sidecar's identity: that pod's node id with another IP, its own credential (the mesh's
key, as the runtime makes them), the same cluster and metadata, so the control plane
serves it as one more sidecar of that pod (no pod is faked in the store). Then:

- ``p50_ms``/``p99_ms``: per change, apply -> the last client ACKed it, taken on the
  clients' side (each records when it ACKed the ClusterLoadAssignment carrying the new
  address; CLOCK_MONOTONIC is shared by the processes), so nothing polls the control
  plane meanwhile; ``client_p50_ms``/``client_p99_ms`` over every client's ACK of every
  change. After the last change one proxy-status listing checks, by the control plane's
  own ACK state, that every proxy, real or simulated, is SYNCED.
- ``sync_s``: how long the clients took to connect and be ready (50 at a time);
  ``rss_peak_mb``: the control plane's peak RSS (VmHWM); ``load_avg``: the machine's load
  after the changes (the latencies of a busy machine are not the control plane's).

``--store sqlite|etcd`` is passed to ``meshgate up --store`` (etcd: one member started by
tests/etcd_cluster.py on loopback). ``--replicas N`` (etcd only) starts N-1 more control
planes on that etcd once the mesh is up (each its own state directory, docs/replicas.md)
and spreads the simulated clients over the N replicas' xDS sockets, round robin; the
change is applied on the first, and the latencies are to the last client of any replica.
Then ``bytes_per_push`` and ``cpu_s_per_change`` are the replicas' together, and
``replica_rss_mb``/``replica_cpu_s_per_change`` list each replica's (the node owner first).
Rows carry ``clients``, ``store`` and ``replicas``.

Run as root: ``.venv/bin/python benchmarks/push_fanout.py`` (10, 25, 50, 100 proxies with
1000 ServiceEntries, unscoped, then 10 scoped), or ``--proxies 10,25 --service-entries
1000 [--scoped] [--mode delta]`` for chosen points, or ``--clients 300,1000
--service-entries 10000 --scoped --mode delta`` for many proxies; ``--json`` prints one
object per configuration. Its rows go into benchmarks/results/push_fanout.json, replacing
earlier rows of the same configuration (proxies, service entries, mode, scoped, clients,
store, replicas) and keeping the rest.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
WALKTHROUGH = ROOT / "examples" / "walkthrough"
RESULTS = ROOT / "benchmarks" / "results" / "push_fanout.json"
EDS = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
NAMESPACE = "fan"


def service_entry(i: int, octet: int = 10) -> dict[str, Any]:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "ServiceEntry",
        "metadata": {"name": f"fan-{i}", "namespace": NAMESPACE},
        "spec": {
            "hosts": [f"fan-{i}.example.com"],
            "location": "MESH_EXTERNAL",
            "ports": [{"number": 80, "name": "http", "protocol": "HTTP"}],
            "resolution": "STATIC",
            "endpoints": [{"address": f"198.51.100.{octet}"}],
        },
    }


def workload(replicas: int) -> list[dict[str, Any]]:
    labels = {"app": "fan"}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "fan", "namespace": NAMESPACE},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "terminationGracePeriodSeconds": 0,
                        "containers": [
                            {
                                "name": "sleep",
                                "image": "busybox",
                                "command": ["/bin/sleep", "infinity"],
                            }
                        ],
                    },
                },
            },
        },
    ]


def sidecar_scope() -> dict[str, Any]:
    hosts = [f"./fan-{i}.example.com" for i in range(3)]
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "Sidecar",
        "metadata": {"name": "default", "namespace": NAMESPACE},
        "spec": {"egress": [{"hosts": hosts}]},
    }


def meshgate_argv() -> list[str]:
    exe = Path(sys.executable).parent / "meshgate"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "meshgate.cli.main"]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mb(pid: int) -> float:
    pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return pages * PAGE / 2**20


def private_mb(pid: int) -> float:
    """Anonymous resident memory (heap, stacks): RSS less the shared binary's pages."""
    return _status_mb(pid, "RssAnon:")


def peak_rss_mb(pid: int) -> float:
    return _status_mb(pid, "VmHWM:")


def _status_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) / 1024
    return 0.0


class Mesh:
    def __init__(self, home: Path) -> None:
        from meshgate.client import Client

        self.home = home
        self.env = dict(os.environ, MESHGATE_HOME=str(home))
        self.client = Client(home, timeout=300)
        self.client.read_timeout = 60

    def mg(self, *args: str, check: bool = True) -> str:
        proc = subprocess.run(
            meshgate_argv() + list(args), env=self.env, capture_output=True, text=True, timeout=600
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"meshgate {' '.join(args)}: {proc.stdout}{proc.stderr}")
        return proc.stdout

    def apply(self, objects: list[dict[str, Any]]) -> None:
        self.client.call("POST", "/v1/apply", {"objects": objects, "dryRun": False})

    def proxies(self) -> list[dict[str, Any]]:
        listing: list[dict[str, Any]] = self.client.call("GET", "/v1/proxy-status")["proxies"]
        return [p for p in listing if p["connected"] and f".{NAMESPACE}~" in p["nodeId"]]

    def counters(self) -> dict[str, int]:
        xds: dict[str, int] = self.client.call("GET", "/v1/status")["xds"]
        return xds

    def pid(self) -> int:
        from meshgate.home import pid_file

        return int(pid_file(self.home).read_text())

    def envoy_pids(self) -> list[int]:
        from meshgate.home import mesh_id

        needle = f"/{mesh_id(self.home)}/".encode()
        out = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv and argv[0].endswith(b"envoy") and any(needle in a for a in argv):
                out.append(int(entry.name))
        return out

    def wait(self, done: Any, what: str, timeout: float, interval: float = 0.05) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            proxies = self.proxies()
            if done(proxies):
                return proxies
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}: {len(proxies)} proxies")
            time.sleep(interval)


def synced(n: int) -> Any:
    def check(proxies: list[dict[str, Any]]) -> bool:
        return len(proxies) >= n and all(
            t["state"] == "SYNCED" for p in proxies for t in p["types"].values()
        )

    return check


def eds_version(p: dict[str, Any], key: str) -> str | None:
    t = p["types"].get(EDS) or {}
    return t.get(key)


def mesh_config(mode: str) -> dict[str, Any]:
    """The walkthrough's MeshConfig (REGISTRY_ONLY) with the proxies' ADS flavour."""
    spec = yaml.safe_load((WALKTHROUGH / "2-registry-only.yaml").read_text())
    spec["spec"]["xdsMode"] = mode.upper()
    result: dict[str, Any] = spec
    return result


def prepare(
    mesh: Mesh, proxies: int, entries: int, scoped: bool, mode: str, up_args: list[str]
) -> float:
    """Bring the mesh up with M ServiceEntries and N real sidecars SYNCED; the scale-up time."""
    mesh.mg("up", "--world", "demo", *up_args)
    mesh.apply([mesh_config(mode)])
    mesh.apply(workload(0))
    for start in range(0, entries, 250):
        mesh.apply([service_entry(i) for i in range(start, min(entries, start + 250))])
    if scoped:
        mesh.apply([sidecar_scope()])
    t0 = time.monotonic()
    mesh.apply(workload(proxies)[1:])
    mesh.wait(synced(proxies), f"{proxies} proxies SYNCED", timeout=60 + 3 * proxies)
    scale_up_s = time.monotonic() - t0
    modes = {p.get("mode", "sotw") for p in mesh.proxies()}
    if modes != {mode}:
        raise RuntimeError(f"proxies run {sorted(modes)}, not {mode}")
    return scale_up_s


def run_one(
    proxies: int, entries: int, scoped: bool, changes: int, rest: float, mode: str = "sotw"
) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="mg-push-fanout-"))
    mesh = Mesh(work / "home")
    try:
        scale_up_s = prepare(mesh, proxies, entries, scoped, mode, [])
        cp = mesh.pid()
        time.sleep(3)  # let the last pod status writes settle

        c0, cpu0 = mesh.counters(), cpu_seconds(cp)
        time.sleep(rest)
        c1, cpu1 = mesh.counters(), cpu_seconds(cp)
        # The same time again, polling as the change measurements do: what polling costs.
        end = time.monotonic() + rest
        while time.monotonic() < end:
            mesh.proxies()
            time.sleep(0.05)
        cpu2 = cpu_seconds(cp)

        latencies, sent, cpu_changes = [], [], []
        for k in range(changes):
            # The hosts a scoped proxy imports are among the first three: change those.
            target = k % 3
            before = {p["nodeId"]: eds_version(p, "ackedVersion") for p in mesh.proxies()}
            bytes0, cpu_a = mesh.counters()["bytesSent"], cpu_seconds(cp)
            start = time.monotonic()
            mesh.apply([service_entry(target, octet=20 + k % 200)])

            def moved(listing: list[dict[str, Any]], before: dict[str, Any] = before) -> bool:
                return synced(proxies)(listing) and all(
                    eds_version(p, "ackedVersion") != before.get(p["nodeId"]) for p in listing
                )

            mesh.wait(moved, "the change ACKed everywhere", timeout=120, interval=0.01)
            latencies.append((time.monotonic() - start) * 1000)
            time.sleep(0.3)  # debounce tail: any later push of this change is counted too
            sent.append((mesh.counters()["bytesSent"] - bytes0) / proxies)
            cpu_changes.append(cpu_seconds(cp) - cpu_a)
        envoy_pids = mesh.envoy_pids()
        envoys = [rss_mb(pid) for pid in envoy_pids]
        private = [private_mb(pid) for pid in envoy_pids]
        latencies.sort()
        return {
            "proxies": proxies,
            "service_entries": entries,
            "mode": mode,
            "scoped": scoped,
            "p50_ms": round(statistics.median(latencies), 1),
            "p99_ms": round(latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 1),
            "bytes_per_push": round(statistics.median(sent)),
            "cpu_rest_cores": round((cpu1 - cpu0) / rest, 4),
            "cpu_poll_cores": round((cpu2 - cpu1) / rest, 4),
            "cpu_s_per_change": round(statistics.median(cpu_changes), 3),
            "rss_mb": round(rss_mb(cp), 1),
            "envoy_rss_mb": round(statistics.mean(envoys), 1) if envoys else None,
            "envoy_private_mb": round(statistics.mean(private), 1) if private else None,
            "pushes_at_rest": c1["pushes"] - c0["pushes"],
            "translations_at_rest": c1["translations"] - c0["translations"],
            "scale_up_s": round(scale_up_s, 1),
            "changes": changes,
        }
    finally:
        mesh.mg("down", "--force", check=False)
        # The state directory (store, logs) goes too: nothing of a run is left behind.
        shutil.rmtree(work, ignore_errors=True)


def store_args(store: str, replicas: int, stack: contextlib.ExitStack) -> list[str]:
    """``meshgate up`` arguments for the store (starting etcd when asked)."""
    if replicas < 1 or (replicas > 1 and store != "etcd"):
        raise SystemExit("--replicas N: 1, or more with --store etcd (replicas share an etcd)")
    if store == "sqlite":
        return []  # the embedded default
    up_help = subprocess.run(
        [*meshgate_argv(), "up", "--help"], capture_output=True, text=True, check=False
    ).stdout
    if "--store" not in up_help:
        raise SystemExit("--store etcd: this meshgate's `up` has no --store option yet")
    sys.path.insert(0, str(ROOT))
    from tests.etcd_cluster import etcd_cluster

    cluster = stack.enter_context(etcd_cluster(members=1))
    return ["--store", cluster.store_url]


def start_replicas(
    work: Path, replicas: int, up_args: list[str], stack: contextlib.ExitStack
) -> list[Mesh]:
    """The replicas beyond the node owner, on the same store; each is brought down at the
    end (before the node owner's ``down --force``, registered earlier, runs)."""
    others = []
    for i in range(1, replicas):
        replica = Mesh(work / f"replica-{i}")
        stack.callback(replica.mg, "down", check=False)
        replica.mg("up", *up_args)
        others.append(replica)
    return others


def xds_target(mesh: Mesh) -> str:
    """Where ``mesh``'s control plane serves xDS: its slot's socket in the node owner's
    runtime directory with etcd, else its own socket."""
    from meshgate.home import mesh_id
    from meshgate.runtime.names import xds_socket
    from meshgate.server.replicas import xds_slot_socket

    replica = mesh.client.call("GET", "/v1/status").get("replica")
    if not isinstance(replica, dict) or replica.get("xdsSlot") is None:
        return f"unix:{xds_socket(mesh_id(mesh.home))}"
    owner = str(replica["nodeOwner"]).split()[0]
    return f"unix:{xds_slot_socket(owner, int(replica['xdsSlot']))}"


def run_clients(
    real: int,
    clients: int,
    entries: int,
    scoped: bool,
    changes: int,
    rest: float,
    mode: str,
    store: str = "sqlite",
    replicas: int = 1,
) -> dict[str, Any]:
    """One configuration with ``clients`` simulated proxies beside ``real`` sidecars."""
    sys.path.insert(0, str(ROOT))  # run as a script: benchmarks/ is not on the path
    from benchmarks.xds_clients import Fleet, sidecar_identities

    work = Path(tempfile.mkdtemp(prefix="mg-push-fanout-"))
    mesh = Mesh(work / "home")
    fleets: list[Fleet] = []
    with contextlib.ExitStack() as stack:
        try:
            up_args = store_args(store, replicas, stack)
            stack.callback(mesh.mg, "down", "--force", check=False)
            scale_up_s = prepare(mesh, real, entries, scoped, mode, up_args)
            every = [mesh, *start_replicas(work, replicas, up_args, stack)]
            pids = [m.pid() for m in every]
            cp = pids[0]
            ids = sidecar_identities(mesh.home, mesh.proxies(), clients)
            # Round robin over the replicas' sockets, as Envoys spread over the slots.
            fleets = [Fleet(xds_target(m), ids[i :: len(every)], mode) for i, m in enumerate(every)]
            t0 = time.monotonic()
            ready = sum(f.start(batch=50, timeout=120)["ready"] for f in fleets)
            sync_s = time.monotonic() - t0
            if ready != clients:
                raise RuntimeError(f"simulated clients not ready: {ready} of {clients}")
            total = real + clients
            # proxy-status on any replica lists the mesh's proxies (each replica's, via etcd).
            mesh.wait(synced(total), f"{total} proxies SYNCED", timeout=120, interval=1.0)
            time.sleep(3)

            def sent_bytes() -> int:
                return sum(m.counters()["bytesSent"] for m in every)

            c0, cpu0 = mesh.counters(), cpu_seconds(cp)
            time.sleep(rest)
            c1, cpu1 = mesh.counters(), cpu_seconds(cp)

            latencies, per_client, sent, cpu_changes = [], [], [], []
            per_replica_cpu: list[list[float]] = [[] for _ in every]
            for k in range(changes):
                target, octet = k % 3, 20 + k % 200
                name = f"outbound|80||fan-{target}.example.com"
                bytes0, cpus_a = sent_bytes(), [cpu_seconds(p) for p in pids]
                start = time.monotonic()
                mesh.apply([service_entry(target, octet=octet)])
                times: list[float] = []
                for fleet in fleets:
                    seen = fleet.watch(EDS, name, f"198.51.100.{octet}", timeout=120)
                    if seen["missing"]:
                        raise RuntimeError(f"change {k}: {seen['missing']} clients never ACKed")
                    times += seen["times"]
                latencies.append((max(times) - start) * 1000)
                per_client += [(t - start) * 1000 for t in times]
                time.sleep(0.3)  # debounce tail: any later push of this change is counted
                sent.append((sent_bytes() - bytes0) / total)
                spent = [cpu_seconds(p) - a for p, a in zip(pids, cpus_a, strict=True)]
                for i, x in enumerate(spent):
                    per_replica_cpu[i].append(x)
                cpu_changes.append(sum(spent))
            # The control plane's own ACK state agrees: every proxy SYNCED on the last change.
            mesh.wait(synced(total), f"{total} proxies SYNCED", timeout=60, interval=1.0)
            envoys = [rss_mb(pid) for pid in mesh.envoy_pids()]
            latencies.sort()
            per_client.sort()
            return {
                "proxies": real,
                "clients": clients,
                "store": store,
                "replicas": replicas,
                "service_entries": entries,
                "mode": mode,
                "scoped": scoped,
                "p50_ms": round(statistics.median(latencies), 1),
                "p99_ms": round(_pct(latencies, 0.99), 1),
                "client_p50_ms": round(statistics.median(per_client), 1),
                "client_p99_ms": round(_pct(per_client, 0.99), 1),
                "bytes_per_push": round(statistics.median(sent)),
                "cpu_rest_cores": round((cpu1 - cpu0) / rest, 4),
                "cpu_s_per_change": round(statistics.median(cpu_changes), 3),
                "rss_mb": round(rss_mb(cp), 1),
                "rss_peak_mb": round(peak_rss_mb(cp), 1),
                "envoy_rss_mb": round(statistics.mean(envoys), 1) if envoys else None,
                "pushes_at_rest": c1["pushes"] - c0["pushes"],
                "translations_at_rest": c1["translations"] - c0["translations"],
                "scale_up_s": round(scale_up_s, 1),
                "sync_s": round(sync_s, 1),
                "changes": changes,
                # The machine's 1-minute load average after the changes: other work on the
                # machine shows in the latencies (they wait for a core), not in the CPU.
                "load_avg": round(os.getloadavg()[0], 2),
                "replica_rss_mb": [round(rss_mb(p), 1) for p in pids],
                "replica_cpu_s_per_change": [
                    round(statistics.median(c), 3) for c in per_replica_cpu
                ],
            }
        finally:
            for fleet in fleets:
                fleet.stop()
            stack.close()  # the replicas down, the node owner down, etcd stopped
            shutil.rmtree(work, ignore_errors=True)


def _pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proxies", default="10,25,50,100", help="comma-separated counts")
    parser.add_argument("--service-entries", type=int, default=1000)
    parser.add_argument("--scoped", action="store_true", help="only the scoped configuration")
    parser.add_argument("--changes", type=int, default=10)
    parser.add_argument("--rest", type=float, default=10.0, help="seconds measured at rest")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument(
        "--mode", choices=("sotw", "delta"), help="ADS flavour (default: both, one after other)"
    )
    parser.add_argument(
        "--clients",
        default="",
        help="comma-separated counts of simulated xDS clients beside --proxies real sidecars "
        "(2 unless --proxies is given)",
    )
    parser.add_argument(
        "--store", choices=("sqlite", "etcd"), default="sqlite", help="meshgate up --store"
    )
    parser.add_argument(
        "--replicas", type=int, default=1, help="control-plane replicas (more than 1: etcd)"
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: pods are network namespaces")
    if args.clients:
        _main_clients(args, parser.get_default("proxies"))
        return
    if args.store != "sqlite" or args.replicas != 1:
        sys.exit("--store and --replicas go with --clients")
    counts = [int(n) for n in args.proxies.split(",") if n]
    configs = [(n, args.scoped) for n in counts]
    if not args.scoped and args.proxies == parser.get_default("proxies"):
        configs.append((10, True))
    modes = [args.mode] if args.mode else ["sotw", "delta"]
    rows = []
    for n, scoped in configs:
        for mode in modes:
            row = run_one(n, args.service_entries, scoped, args.changes, args.rest, mode)
            rows.append(row)
            print(json.dumps(row) if args.json else _line(row), flush=True)
    _save(rows)
    if not args.json:
        print(f"wrote {RESULTS}")


def _main_clients(args: argparse.Namespace, default_proxies: str) -> None:
    real = 2 if args.proxies == default_proxies else int(args.proxies)
    modes = [args.mode] if args.mode else ["sotw", "delta"]
    rows = []
    for n in [int(c) for c in args.clients.split(",") if c]:
        for mode in modes:
            row = run_clients(
                real, n, args.service_entries, args.scoped, args.changes, args.rest, mode,
                args.store, args.replicas,
            )  # fmt: skip
            rows.append(row)
            print(json.dumps(row) if args.json else _line(row), flush=True)
    _save(rows)
    if not args.json:
        print(f"wrote {RESULTS}")


def _save(rows: list[dict[str, Any]]) -> None:
    """Merge rows into the results file: a configuration measured again replaces its row."""

    def key(row: dict[str, Any]) -> tuple[Any, ...]:
        return (
            row["proxies"],
            row["service_entries"],
            row.get("mode", "sotw"),
            row["scoped"],
            row.get("clients", 0),
            row.get("store", "sqlite"),
            row.get("replicas", 1),
        )

    try:
        result: dict[str, Any] = json.loads(RESULTS.read_text())
    except (OSError, ValueError):
        result = {"benchmark": "push_fanout"}
    result["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version()}
    fresh = {key(r) for r in rows}
    result["rows"] = [r for r in result.get("rows", []) if key(r) not in fresh] + rows
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")


def _line(row: dict[str, Any]) -> str:
    clients = (
        f" + {row['clients']} clients ({row['store']}, {row['replicas']} replica(s))"
        if row.get("clients")
        else ""
    )
    return (
        f"{row['proxies']:>4} proxies{clients} {row['service_entries']} SE {row['mode']}"
        f"{' scoped' if row['scoped'] else ''}: change->all ACKed p50 {row['p50_ms']} ms "
        f"p99 {row['p99_ms']} ms, {row['bytes_per_push']} B/proxy/push, "
        f"cpu rest {row['cpu_rest_cores']} cores (polling {row.get('cpu_poll_cores', '-')}), "
        f"{row['cpu_s_per_change']} s/change, cp rss {row['rss_mb']} MB, "
        f"envoy rss {row['envoy_rss_mb']} MB (private {row.get('envoy_private_mb')} MB)"
    )


if __name__ == "__main__":
    main()
