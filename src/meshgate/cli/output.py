"""Writing to the terminal the way kubectl does.

Rules: stdout carries only results (tables, documents, ``kind/name verb`` lines) so that
it can be piped; errors go to stderr prefixed ``error: `` and end the command with exit
code 1; warnings go to stderr prefixed ``Warning: ``. Plain text only: no colour or box
drawing, so output is identical in a terminal, a pipe and a test.
"""

from __future__ import annotations

import sys
from typing import NoReturn

import typer


def out(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def err(text: str) -> None:
    sys.stderr.write(text if text.endswith("\n") else text + "\n")


def warn(text: str) -> None:
    err(f"Warning: {text}")


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``error: message`` to stderr and stop the command."""
    err(f"error: {message}")
    raise typer.Exit(code)
