"""``meshgate version``: the client's version, without loading anything else.

Rules: answers from ``meshgate.__version__`` only, so it works with no state directory
and no control plane, and stays the fastest command.
"""

from __future__ import annotations

from typing import Annotated

import typer


def command(
    short: Annotated[bool, typer.Option("--short", help="Print just the version number.")] = False,
) -> None:
    """Print the client version."""
    from meshgate import __version__
    from meshgate.cli.output import out

    out(f"v{__version__}" if short else f"Client Version: v{__version__}")
