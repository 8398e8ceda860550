"""``meshgate ca``: the mesh CA's roots, and rotating the root without losing a request.

Rules: thin over the API (`/v1/ca`, `/v1/ca/rotate`); durations are spelled as `up`'s
(`30s`, `10m`, `24h`); a rotation already under way is refused with kubectl's wording for a
conflict and exit code 1.
"""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(
    help="The mesh CA: its roots, and root rotation.", no_args_is_help=True, add_completion=False
)


def _seconds(text: str, flag: str) -> float:
    from meshgate.cli.mesh_cmds import parse_duration

    try:
        return parse_duration(text, flag, minimum=0)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def _show(info: dict[str, object]) -> None:
    roots = info.get("roots") or []
    for root in roots:  # type: ignore[attr-defined]
        role = "signing" if root["signing"] else "trusted"
        typer.echo(f"root {root['serialNumber']}  {role:<8} not after {root['notAfter']}")
    rotation = info.get("rotation") or {}
    if rotation:
        for key, value in rotation.items():  # type: ignore[attr-defined]
            typer.echo(f"rotation {key}: {value}")


@app.command("status")
def status() -> None:
    """Show the roots every proxy trusts, which one signs, and any rotation under way."""
    from meshgate.cli.pod_cmds import call_api

    _show(call_api("GET", "/v1/ca"))


@app.command("rotate")
def rotate(
    activate_after: Annotated[
        str,
        typer.Option(
            "--activate-after",
            metavar="DURATION",
            help="How long the new root is only trusted before it signs (default 5s).",
        ),
    ] = "5s",
    overlap: Annotated[
        str | None,
        typer.Option(
            "--overlap",
            metavar="DURATION",
            help="How long the old root stays trusted once the new one signs "
            "(default: one workload certificate lifetime).",
        ),
    ] = None,
) -> None:
    """Rotate the mesh's root: trusted first, signing after --activate-after, the old root
    trusted for --overlap more. Every proxy's certificate is re-issued; nothing restarts."""
    from meshgate.cli.pod_cmds import call_api

    body: dict[str, object] = {"activateAfter": _seconds(activate_after, "--activate-after")}
    if overlap is not None:
        body["overlap"] = _seconds(overlap, "--overlap")
    info = call_api("POST", "/v1/ca/rotate", body, client_checks=True)
    typer.echo(f"root rotation started: new root {info['serialNumber']}")
    _show(info)
