"""``python -m meshgate.server``: the control-plane process (started by ``meshgate up``)."""

from __future__ import annotations

import argparse
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
        "--dns-upstream",
        default="",
        help="IP:PORT,... the DNS forwards other names to (with the uplink of the state "
        "directory's config)",
    )
    args = parser.parse_args()
    main(
        args.home.expanduser().resolve(),
        args.world,
        args.concurrency,
        cert_ttl=args.workload_cert_ttl,
        dns_upstreams=args.dns_upstream,
    )


if __name__ == "__main__":
    cli()
