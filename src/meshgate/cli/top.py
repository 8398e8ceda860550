"""``meshgate top``: external hosts by request rate, error rate and p50/p99 latency, live.

Rules of this module:
- Thin over ``GET /v1/top``: the control plane aggregates its access-log store over the
  window (``telemetry/top.py`` has the rules: which host, what an error is), this prints.
- ``--once`` prints one table (kubectl's plain layout) and exits; ``-o json`` prints the
  API's object, one per line, once or every interval. Otherwise the table is redrawn in
  place with ``rich.live`` every ``--interval`` until Ctrl-C, which exits cleanly (status 0,
  the terminal restored); when stdout is not a terminal each refresh prints a new table.
- No ``-n``: every namespace. ``-n``/``--gateway``/``--reporter`` filter by the pod that
  reported the request. No traffic in the window says so (on stderr for a table), as
  ``kubectl get`` says "No resources found".
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import urlencode

import typer

Api = Callable[[str, str], Any]

HEADER = ("HOST", "REPORTER", "PROTO", "REQ/S", "ERRORS", "P50", "P99", "REQUESTS")

EXAMPLES = """Examples:

\b
  meshgate top                                  # every namespace, last minute, live
  meshgate top --gateway istio-egressgateway -n istio-system --window 5m
  meshgate top --reporter sidecar -n default --interval 5s
  meshgate top --once -o json                   # one JSON object, then exit
"""


def _quantity(value: float) -> str:
    return f"{value:g}ms"


def rows_of(data: dict[str, Any]) -> list[tuple[str, ...]]:
    return [
        (
            str(h["host"]),
            str(h["reporter"]),
            str(h["protocol"]),
            f"{float(h['requestsPerSecond']):.2f}",
            f"{100 * float(h['errorRate']):.1f}%",
            _quantity(float(h["p50Ms"])),
            _quantity(float(h["p99Ms"])),
            str(h["requests"]),
        )
        for h in data["hosts"]
    ]


def is_terminal() -> bool:
    return sys.stdout.isatty()


def window_text(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def no_traffic(window: float, namespace: str | None, gateway: str | None) -> str:
    scope = f" of gateway {gateway}" if gateway else ""
    scope += f" in namespace {namespace}" if namespace else ""
    return (
        f"No traffic{scope} in the last {window_text(window)}: the mesh-wide access log has no "
        "requests yet (gateways always log; sidecars only when the MeshConfig sets "
        "accessLogFile)."
    )


def plain_table(data: dict[str, Any]) -> str:
    from meshgate.cli.tabular import format_table

    return format_table([HEADER, *rows_of(data)])


def rich_table(data: dict[str, Any], title: str) -> Any:
    from rich.table import Table

    table = Table(title=title, title_justify="left", box=None, header_style="bold")
    for i, name in enumerate(HEADER):
        table.add_column(name, justify="left" if i < 3 else "right", no_wrap=i == 0)
    for row in rows_of(data):
        err = row[4] != "0.0%"
        table.add_row(*row[:4], f"[red]{row[4]}[/red]" if err else row[4], *row[5:])
    return table


def run_top(
    call_api: Api,
    *,
    window: str,
    interval: str,
    namespace: str | None,
    gateway: str | None,
    reporter: str | None,
    once: bool,
    output: str | None,
) -> None:
    from meshgate.cli.accesslog import parse_since, print_notes

    if output not in (None, "json"):
        typer.echo(f"error: unknown output format {output!r} (json)", err=True)
        raise typer.Exit(1)
    seconds = parse_since(window)
    pause = parse_since(interval)
    if seconds <= 0 or pause < 0.1:
        typer.echo("error: --window must be above 0 and --interval at least 0.1s", err=True)
        raise typer.Exit(1)
    params = {"window": f"{seconds:g}"}
    for key, value in (("namespace", namespace), ("gateway", gateway), ("reporter", reporter)):
        if value:
            params[key] = value
    path = f"/v1/top?{urlencode(params)}"

    def fetch() -> dict[str, Any]:
        data: dict[str, Any] = call_api("GET", path)
        return data

    live = not once and output is None and is_terminal()
    try:
        if live:
            _live(fetch, pause, seconds, namespace, gateway)
            return
        noted: set[str] = set()
        while True:
            data = fetch()
            print_notes(data, noted)  # on stderr; not part of the JSON object
            data.pop("notes", None)
            if output == "json":
                typer.echo(json.dumps(data))
            elif data["hosts"]:
                typer.echo(plain_table(data))
            else:
                typer.echo(no_traffic(seconds, namespace, gateway), err=True)
            if once:
                return
            sys.stdout.flush()
            time.sleep(pause)
            if output is None:
                typer.echo("")
    except KeyboardInterrupt:
        # Ctrl-C is how live mode ends: no traceback, no "Aborted!", status 0.
        return


def _live(
    fetch: Callable[[], dict[str, Any]],
    pause: float,
    window: float,
    namespace: str | None,
    gateway: str | None,
) -> None:
    from rich.console import Console
    from rich.live import Live
    from rich.text import Text

    scope = f"namespace {namespace}" if namespace else "every namespace"
    if gateway:
        scope = f"gateway {gateway}, {scope}"
    console = Console()
    with Live(Text("waiting for the control plane..."), console=console, auto_refresh=False) as lv:
        while True:
            data = fetch()
            title = (
                f"meshgate top: external hosts, last {window_text(window)}, {scope}"
                f" (every {pause:g}s at {time.strftime('%H:%M:%S')}; Ctrl-C quits)"
            )
            if data["hosts"]:
                lv.update(rich_table(data, title), refresh=True)
            else:
                lv.update(
                    Text(f"{title}\n\n{no_traffic(window, namespace, gateway)}"), refresh=True
                )
            time.sleep(pause)


def register(app: typer.Typer) -> None:
    from meshgate.cli.helpfmt import Command

    @app.command(cls=Command, rich_help_panel="Mesh", epilog=EXAMPLES)
    def top(
        window: Annotated[
            str,
            typer.Option(
                "--window",
                metavar="D",
                help="Aggregate the requests that started in the last D (30s, 1m, 5m, 1h).",
            ),
        ] = "1m",
        gateway: Annotated[
            str | None,
            typer.Option(
                "--gateway", metavar="NAME", help="Only requests logged by gateway NAME's replicas."
            ),
        ] = None,
        reporter: Annotated[
            str | None,
            typer.Option(
                "--reporter",
                metavar="KIND",
                help="Only requests logged by a gateway or a sidecar (gateway|sidecar).",
            ),
        ] = None,
        namespace: Annotated[
            str | None,
            typer.Option(
                "--namespace",
                "-n",
                metavar="NS",
                help="Only requests reported by pods in NS (default: every namespace).",
            ),
        ] = None,
        interval: Annotated[
            str,
            typer.Option("--interval", metavar="D", help="Refresh every D (live mode)."),
        ] = "2s",
        once: Annotated[
            bool, typer.Option("--once", help="Print one table (or JSON object) and exit.")
        ] = False,
        output: Annotated[
            str | None,
            typer.Option(
                "-o",
                "--output",
                metavar="FORMAT",
                help="json: the aggregation as one JSON object per refresh (one with --once).",
            ),
        ] = None,
    ) -> None:
        """Show external hosts by request rate, error rate and p50/p99 latency, live.

        From the mesh-wide access log: one row per host (the request's authority, else the
        TLS SNI), reporter (gateway or sidecar) and protocol. Errors are 5xx, 403 and other
        refusals (REGISTRY_ONLY's 502 included), and failed TCP connections. No -n: every
        namespace (the reporting pod's)."""
        from meshgate.cli.context import namespace_flag
        from meshgate.cli.pod_cmds import call_api

        def api(method: str, path: str) -> Any:
            return call_api(method, path, client_checks=True)

        run_top(
            api, window=window, interval=interval, namespace=namespace_flag(namespace),
            gateway=gateway, reporter=reporter, once=once, output=output,
        )  # fmt: skip
