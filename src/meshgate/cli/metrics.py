"""``meshgate metrics``: one scrape of the control plane's Prometheus metrics.

Rules: thin over ``GET /v1/metrics`` (the API's socket and token, so it works whatever
``MESHGATE_METRICS_ADDR`` is); prints the text exposition exactly as Prometheus would
receive it from the ``/metrics`` URL that ``meshgate status`` names.
"""

from __future__ import annotations

import sys

import typer

EXAMPLES = """Examples:

\b
  meshgate metrics
  meshgate metrics | grep '^istio_requests_total'
  meshgate status        # names the /metrics URL for Prometheus (docs/observability.md)
"""


def register(app: typer.Typer) -> None:
    from meshgate.cli.helpfmt import Command

    @app.command(cls=Command, rich_help_panel="Mesh", epilog=EXAMPLES)
    def metrics() -> None:
        """Print one scrape of the control plane's Prometheus metrics (Istio's names)."""
        from meshgate.client import Client, NotRunning
        from meshgate.home import state_dir

        try:
            data = Client(state_dir()).call("GET", "/v1/metrics")
        except NotRunning as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        sys.stdout.write(str(data["text"]))
        from meshgate.cli.accesslog import print_notes

        print_notes(data)
