"""``meshgate console``: a one-time link that logs a browser into the web console.

Rules: thin over ``POST /v1/console`` (the API's socket and token: only who may drive the
mesh gets a link); prints the link and returns at once (the control plane serves the
console, nothing waits here). ``--open`` also hands the link to the desktop's browser; a
machine without one says so and still prints the link. Each run mints a new link, which
works once, within two minutes.
"""

from __future__ import annotations

from typing import Annotated

import typer

EXAMPLES = """Examples:

\b
  meshgate console            # prints http://127.0.0.1:PORT/login?code=...
  meshgate console --open     # and opens it in the default browser
  MESHGATE_CONSOLE_ADDR=127.0.0.1:15080 meshgate up   # a fixed port (loopback only)
"""


def register(app: typer.Typer) -> None:
    from meshgate.cli.helpfmt import Command

    @app.command(cls=Command, rich_help_panel="Mesh", epilog=EXAMPLES)
    def console(
        open_browser: Annotated[
            bool, typer.Option("--open", help="Also open the link in the default browser.")
        ] = False,
    ) -> None:
        """Print a one-time link to the web console (served by the control plane)."""
        from meshgate.client import ApiError, Client, NotRunning
        from meshgate.home import state_dir

        try:
            data = Client(state_dir()).call("POST", "/v1/console", {})
        except (NotRunning, ApiError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        url = str(data["url"])
        typer.echo(url)
        typer.echo(
            "(a one-time link, valid for 2 minutes; run `meshgate console` again for another)",
            err=True,
        )
        if open_browser:
            import webbrowser

            if not webbrowser.open(url):
                typer.echo("note: no browser found to open; open the link above", err=True)
