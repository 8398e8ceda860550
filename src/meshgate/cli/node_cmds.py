"""Verbs for nodes that join: ``token create|list|delete`` and ``join`` (kubeadm's).

Rules: ``token`` talks to the control plane of this state directory; ``join`` runs with
the joining node's own state directory (another ``MESHGATE_HOME``) and talks only to the
URL it is given. Errors are one line on stderr and exit 1.
"""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(
    no_args_is_help=True,
    help="Bootstrap tokens that let nodes join (kubeadm token).",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _call(method: str, body: dict[str, object] | None = None) -> dict[str, object]:
    from meshgate.client import ApiError, Client, NotRunning
    from meshgate.home import state_dir

    try:
        result: dict[str, object] = Client(state_dir()).call(method, "/v1/tokens", body)
    except NotRunning as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    except ApiError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    return result


def join_command(url: str, token: str, ca_hash: str) -> str:
    return f"meshgate join {url} --token {token} --discovery-token-ca-cert-hash {ca_hash}"


def register(root: typer.Typer) -> None:
    from meshgate.cli.helpfmt import Command

    @app.command("create", cls=Command)
    def create(
        ttl: Annotated[
            str,
            typer.Option(
                "--ttl",
                metavar="DURATION",
                help="How long the token lets nodes join (24h, 90m, 30s; 0: forever).",
            ),
        ] = "24h",
        description: Annotated[
            str, typer.Option("--description", metavar="TEXT", help="Why the token exists.")
        ] = "",
        print_join_command: Annotated[
            bool,
            typer.Option(
                "--print-join-command",
                help="Print the whole `meshgate join` line (URL, token, CA pin) instead of "
                "the token alone.",
            ),
        ] = False,
    ) -> None:
        """Create a bootstrap token ([a-z0-9]{6}.[a-z0-9]{16}), stored as the Secret
        bootstrap-token-<id> in kube-system, and print it.

        Example: meshgate token create --print-join-command
        Example: meshgate token create --ttl 1h
        """
        from meshgate.cli.mesh_cmds import parse_duration

        try:
            seconds = 0.0 if ttl.strip() == "0" else parse_duration(ttl, "--ttl", minimum=1)
        except ValueError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        got = _call("POST", {"ttlSeconds": seconds, "description": description})
        if print_join_command:
            typer.echo(join_command(str(got["url"]), str(got["token"]), str(got["caCertHash"])))
        else:
            typer.echo(str(got["token"]))

    @app.command("list", cls=Command)
    def list_() -> None:
        """List bootstrap tokens: TOKEN (the secret masked) TTL EXPIRES USAGES DESCRIPTION."""
        import datetime

        from meshgate.cli.tabular import format_table, human_duration

        tokens = _call("GET")["tokens"]
        assert isinstance(tokens, list)
        now = datetime.datetime.now(datetime.UTC)
        rows = []
        for t in tokens:
            expires = t.get("expires")
            if expires:
                left = datetime.datetime.fromisoformat(expires.replace("Z", "+00:00")) - now
                ttl = (
                    "<expired>"
                    if left.total_seconds() <= 0
                    else human_duration(left.total_seconds())
                )
            else:
                ttl, expires = "<forever>", "<never>"
            rows.append(
                [
                    f"{t['id']}.<secret>",
                    ttl,
                    expires,
                    ",".join(t.get("usages") or []),
                    t.get("description") or "<none>",
                ]
            )
        if not rows:
            typer.echo("No bootstrap tokens.", err=True)
            return
        typer.echo(format_table([["TOKEN", "TTL", "EXPIRES", "USAGES", "DESCRIPTION"], *rows]))

    @app.command("delete", cls=Command)
    def delete(
        tokens: Annotated[list[str], typer.Argument(metavar="TOKEN|ID...")],
    ) -> None:
        """Delete bootstrap tokens (nodes that joined with them stay)."""
        for token in tokens:
            got = _call("POST", {"delete": token})
            typer.echo(f'bootstrap token "{got["deleted"]}" deleted')

    root.add_typer(app, name="token", rich_help_panel="Mesh")

    @root.command("join", cls=Command, rich_help_panel="Mesh")
    def join(
        url: Annotated[str, typer.Argument(metavar="URL", help="The control plane's join URL.")],
        token: Annotated[str, typer.Option("--token", metavar="TOKEN", help="A bootstrap token.")],
        name: Annotated[str, typer.Option("--name", metavar="NODE", help="This node's name.")] = "",
        ca_hash: Annotated[
            list[str] | None,
            typer.Option(
                "--discovery-token-ca-cert-hash",
                metavar="sha256:HEX",
                help="The control plane's CA pin (sha256 of its public key), as "
                "`token create --print-join-command` prints it.",
            ),
        ] = None,
        unsafe_skip: Annotated[
            bool,
            typer.Option(
                "--discovery-token-unsafe-skip-ca-verification",
                help="Join without checking the CA against a pin (not recommended).",
            ),
        ] = False,
        label: Annotated[
            list[str] | None,
            typer.Option("--label", metavar="KEY=VALUE", help="A label of the Node (repeat)."),
        ] = None,
        timeout: Annotated[
            float, typer.Option(metavar="SECONDS", help="Seconds to wait for the node to be Ready.")
        ] = 60.0,
    ) -> None:
        """Join this state directory's node to a mesh: check the control plane's CA, present
        the token, get the node's certificates (CSR), start the node agent in the
        background and return once the node is Ready. `meshgate down` stops it.

        The whole line is printed by `meshgate token create --print-join-command`.
        Example: meshgate join URL --token T --discovery-token-ca-cert-hash H --name n2
        """
        import socket

        from meshgate.home import state_dir
        from meshgate.nodeagent.join import JoinFailed
        from meshgate.nodeagent.join import join as do_join

        labels = {}
        for item in label or []:
            key, sep, value = item.partition("=")
            if not sep or not key:
                typer.echo(f"error: --label {item!r}: want KEY=VALUE", err=True)
                raise typer.Exit(1)
            labels[key] = value
        node = name or socket.gethostname()
        home = state_dir()
        try:
            got = do_join(
                home,
                url,
                token,
                node,
                list(ca_hash or []),
                unsafe_skip_ca=unsafe_skip,
                labels=labels,
                timeout=timeout,
            )
        except JoinFailed as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        typer.echo(f"node {node} joined the mesh at {url} (pod range {got['podCIDR']})")
        typer.echo(f"node {node} is Ready (state directory {home}; `meshgate down` stops it)")
