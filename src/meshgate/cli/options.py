"""Flags several verbs share, spelled and abbreviated as kubectl spells them.

Rules: only typer and the standard library here (imported on every run); each flag is
declared once and reused, so ``-n``, ``-A``, ``-f``, ``-l``, ``-c`` and ``--dry-run`` mean the
same thing in every verb. Every option has help text and a kubectl-like metavar (``NS``,
``FORMAT``, ``N``), never the framework's type tags (``<str>``).
"""

from __future__ import annotations

from typing import Annotated

import typer

Namespace = Annotated[
    str | None,
    typer.Option("--namespace", "-n", metavar="NS", help="Namespace to use (default: default)."),
]
AllNamespaces = Annotated[
    bool,
    typer.Option("--all-namespaces", "-A", help="List across every namespace."),
]
Filenames = Annotated[
    list[str] | None,
    typer.Option(
        "--filename",
        "-f",
        metavar="PATH",
        help="File, directory or - (stdin) holding YAML/JSON documents; repeatable.",
    ),
]
Selector = Annotated[
    str | None,
    typer.Option(
        "--selector", "-l", metavar="SELECTOR", help="Label selector, e.g. app=sleep,tier!=db."
    ),
]
DryRun = Annotated[
    str,
    typer.Option(
        "--dry-run",
        metavar="[=none|client|server]",
        help="Only print what would change: --dry-run, --dry-run=client or --dry-run=server.",
    ),
]
Container = Annotated[
    str | None,
    typer.Option(
        "--container",
        "-c",
        metavar="CONTAINER",
        help="Container name; default: the pod's first app container (istio-proxy for a "
        "gateway pod).",
    ),
]
DRY_RUN_MODES = ("none", "client", "server")


# kubectl's boolean flags that also take ``=true``/``=false`` (``--ignore-not-found=true``
# in Istio's pages); click flags take no value, so the spelling is rewritten.
BOOL_FLAGS = ("--ignore-not-found", "--overwrite", "--all-namespaces", "--no-headers")


def bare_flags_with_values(args: list[str]) -> list[str]:
    """kubectl's bare ``--dry-run`` as ``--dry-run=client``, ``--FLAG=true`` as ``--FLAG`` and
    ``--FLAG=false`` as nothing (``BOOL_FLAGS``); arguments after ``--`` untouched.

    Click options take a value or none, never an optional one, so the bare spelling is
    rewritten before parsing; ``--dry-run client`` stays a flag and an argument, as kubectl.
    """
    if "--" in args:
        cut = args.index("--")
        return bare_flags_with_values(args[:cut]) + args[cut:]
    out = []
    for a in args:
        flag, eq, value = a.partition("=")
        if eq and flag in BOOL_FLAGS and value.lower() in ("true", "false"):
            if value.lower() == "true":
                out.append(flag)
            continue
        out.append("--dry-run=client" if a == "--dry-run" else a)
    return out


def split_files(values: list[str] | None) -> list[str]:
    """``-f a.yaml,b.yaml -f dir`` as one list, as kubectl accepts both spellings."""
    return [part for value in values or [] for part in value.split(",") if part]


def dry_run_mode(value: str) -> str:
    """``none``, ``client`` or ``server``; exits with kubectl's message on anything else."""
    from meshgate.cli.output import fail

    if value not in DRY_RUN_MODES:
        fail(f'Invalid dry-run value ({value}). Must be "none", "server", or "client".')
    return value


def dry_run_suffix(mode: str) -> str:
    return {"client": " (dry run)", "server": " (server dry run)"}.get(mode, "")
