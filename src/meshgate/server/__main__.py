"""``python -m meshgate.server``: the control-plane process (started by ``meshgate up``).

Rules: the cyclic garbage collector runs far less often than Python's default (a young
generation of 100,000 objects instead of 700). The control plane holds a large, long-lived
heap (the decoded store, snapshots, translations) and allocates heavily per change; with
the default thresholds collections that walk that heap took about 40 % of the CPU of one
change at 1000 proxies. Its garbage is almost all acyclic, freed by reference counting
as before, so memory stays flat (``benchmarks/push_fanout.py`` reports it).
"""

from __future__ import annotations

import argparse
import gc
from pathlib import Path

from meshgate.home import state_dir
from meshgate.server.app import main


def cli() -> None:
    parser = argparse.ArgumentParser(prog="meshgate-server", description=__doc__)
    parser.add_argument("--home", type=Path, default=state_dir(), help="state directory")
    parser.add_argument("--world", default=None, help="simulated internet: 'demo' or a file")
    parser.add_argument("--concurrency", type=int, default=1, help="Envoy worker threads")
    parser.add_argument(
        "--workload-cert-ttl", type=float, default=86400.0, help="seconds a certificate lasts"
    )
    parser.add_argument(
        "--node-monitor-grace-period",
        type=float,
        default=None,
        help="seconds without a report before a joined node is NotReady",
    )
    parser.add_argument(
        "--dns-upstream",
        default="",
        help="IP:PORT,... the DNS forwards other names to (with the uplink of the state "
        "directory's config)",
    )
    args = parser.parse_args()
    gc.set_threshold(100_000, 50, 100)
    main(
        args.home.expanduser().resolve(),
        args.world,
        args.concurrency,
        cert_ttl=args.workload_cert_ttl,
        dns_upstreams=args.dns_upstream,
        node_grace=args.node_monitor_grace_period,
    )


if __name__ == "__main__":
    cli()
