"""``python -m meshgate.nodeagent``: a joined node's agent (started by ``meshgate join``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from meshgate.home import state_dir
from meshgate.nodeagent.agent import main


def cli() -> None:
    parser = argparse.ArgumentParser(prog="meshgate-node-agent", description=__doc__)
    parser.add_argument("--home", type=Path, default=state_dir(), help="state directory")
    args = parser.parse_args()
    main(args.home.expanduser().resolve())


if __name__ == "__main__":
    cli()
