"""Verbs that reach into pods: ``exec`` and ``logs``, as kubectl does them.

Rules: ``exec`` replaces this process with the command run inside the pod's network
namespace (so ``-it`` shells, exit codes and signals behave as the user expects); ``logs``
reads the container's bounded log file and can follow it. Both need a running control
plane, which knows where each pod lives.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Annotated

import typer

from meshgate.cli.context import namespace_flag
from meshgate.cli.options import Container, Namespace


def call_api(
    method: str, path: str, body: object = None, *, client_checks: bool = False
) -> dict[str, object]:
    """Call the control plane's API; a missing mesh or a refused call ends the CLI with
    kubectl's message and exit code 1. With ``client_checks``, a refused request (400) is
    one kubectl would have refused itself, so it reads ``error: ...``."""
    from meshgate.client import ApiError, Client, NotRunning
    from meshgate.home import state_dir

    try:
        result: dict[str, object] = Client(state_dir()).call(method, path, body)
        return result
    except NotRunning as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    except ApiError as exc:
        if client_checks and exc.status == 400:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        reason = exc.body.get("reason")
        typer.echo(f"Error from server{f' ({reason})' if reason else ''}: {exc}", err=True)
        raise typer.Exit(1) from None


def pod_name(target: str, namespace: str) -> str:
    """``NAME``, ``pod/NAME`` or ``deploy/NAME`` (the deployment's first running pod), as
    kubectl accepts them for exec and logs."""
    if "/" not in target:
        return target
    kind_text, name = target.split("/", 1)
    from meshgate.cli.context import backend_errors, get_backend
    from meshgate.cli.kindargs import resolve_kind

    with backend_errors():
        kind = resolve_kind(kind_text)
    if kind.kind == "Pod":
        return name
    if kind.kind != "Deployment":
        typer.echo(f"error: cannot exec into or read logs of a {kind.kind}", err=True)
        raise typer.Exit(1)
    from meshgate.server.workloads import owned_by

    with backend_errors():
        deployments = get_backend().get(kind, namespace, name, None)
        pods = get_backend().get(resolve_kind("pod"), namespace, None, None)
    # Owned by uid: never a pod of a same-named Deployment deleted before this one.
    owned = [p for p in pods if any(owned_by(p, d) for d in deployments)]
    # Running pods first, then by name: stable, and what kubectl would pick.
    owned.sort(
        key=lambda p: ((p.get("status") or {}).get("phase") != "Running", p["metadata"]["name"])
    )
    if not owned:
        typer.echo(f'error: no pods found for deployment "{name}" in {namespace}', err=True)
        raise typer.Exit(1)
    return str(owned[0]["metadata"]["name"])


Pod = Annotated[
    str,
    typer.Argument(
        metavar="POD",
        help="Pod name (as `meshgate get pods` shows it), pod/NAME or deploy/NAME (the "
        "deployment's first running pod).",
    ),
]

EXEC_EXAMPLES = """Examples:

\b
  meshgate exec -it deploy/sleep -- /bin/sh
  meshgate exec sleep-5d8f7c9b6-abcde -- curl -sI aliyun.com
  meshgate -n istio-system exec deploy/istio-egressgateway -- curl -s 127.0.0.1:15000/ready
"""

LOGS_EXAMPLES = """Examples:

\b
  meshgate logs deploy/sleep
  meshgate -n istio-system logs deploy/istio-egressgateway -c istio-proxy --tail 20
  meshgate logs sleep-5d8f7c9b6-abcde -c istio-proxy -f
  meshgate logs -l istio=egressgateway -c istio-proxy -n istio-system   # last 10 lines of each

The whole mesh's access log, every replica of a gateway at once (docs/observability.md):

\b
  meshgate logs --gateway istio-egressgateway -n istio-system --host aliyun.com -o json
  meshgate logs --gateway istio-egressgateway -n istio-system --status 5xx --since 5m -f
"""


def register(app: typer.Typer) -> None:
    from meshgate.cli.helpfmt import Command, ExecCommand

    @app.command(
        "exec",
        cls=ExecCommand,
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
        rich_help_panel="Pods",
        epilog=EXEC_EXAMPLES,
    )
    def exec_(
        ctx: typer.Context,
        pod: Pod,
        namespace: Namespace = None,
        stdin: Annotated[
            bool, typer.Option("-i", "--stdin", help="Pass stdin to the command.")
        ] = False,
        tty: Annotated[
            bool, typer.Option("-t", "--tty", help="Run the command in a terminal (TTY).")
        ] = False,
        container: Container = None,
    ) -> None:
        """Run a command in a pod's container (as its user, in the pod's network)."""
        command = list(ctx.args)
        if command and command[0] == "--":
            command = command[1:]
        if not command:
            typer.echo("error: you must specify a command after --", err=True)
            raise typer.Exit(1)
        ns = namespace_flag(namespace) or "default"
        body: dict[str, object] = {
            "namespace": ns,
            "name": pod_name(pod, ns),
            "command": command,
            "container": container,
        }
        if tty and os.environ.get("TERM"):
            body["term"] = os.environ["TERM"]  # the one variable a terminal session needs
        data = call_api("POST", "/v1/exec", body, client_checks=True)
        argv = [str(a) for a in data["argv"]]  # type: ignore[attr-defined]
        from meshgate.cli import execio

        # The operator's terminal never reaches the pod (``execio``).
        raise typer.Exit(execio.run(argv, stdin=stdin, tty_wanted=tty))

    @app.command(cls=Command, rich_help_panel="Pods", epilog=LOGS_EXAMPLES)
    def logs(
        ctx: typer.Context,
        pod: Annotated[
            str | None,
            typer.Argument(
                metavar="POD",
                help="Pod name (as `meshgate get pods` shows it), pod/NAME or deploy/NAME (the "
                "deployment's first running pod). Not with --gateway.",
            ),
        ] = None,
        namespace: Namespace = None,
        container: Container = None,
        selector: Annotated[
            str | None,
            typer.Option(
                "-l",
                "--selector",
                metavar="SELECTOR",
                help="Every pod with these labels, one after the other (then --tail defaults "
                "to 10, as kubectl's).",
            ),
        ] = None,
        follow: Annotated[
            bool,
            typer.Option("-f", "--follow", help="Keep printing new output until interrupted."),
        ] = False,
        tail: Annotated[
            int,
            typer.Option(
                "--tail", metavar="N", help="Print only the last N lines (-1: every line)."
            ),
        ] = -1,
        previous: Annotated[
            bool,
            typer.Option(
                "-p", "--previous", help="Print the output of the container's previous run."
            ),
        ] = False,
        gateway: Annotated[
            str | None,
            typer.Option(
                "--gateway",
                metavar="NAME",
                help="The mesh-wide access log of gateway NAME: every replica's requests, "
                "each once, from the control plane's store.",
            ),
        ] = None,
        host: Annotated[
            str | None,
            typer.Option("--host", metavar="H", help="With --gateway: only requests for host H."),
        ] = None,
        status: Annotated[
            str | None,
            typer.Option(
                "--status", metavar="CODE", help="With --gateway: only 5xx, 403, ... responses."
            ),
        ] = None,
        since: Annotated[
            str | None,
            typer.Option(
                "--since", metavar="D", help="With --gateway: only requests of the last D (5m)."
            ),
        ] = None,
        output: Annotated[
            str | None,
            typer.Option(
                "-o",
                "--output",
                metavar="FORMAT",
                help="With --gateway: json prints one object per line.",
            ),
        ] = None,
    ) -> None:
        """Print a container's output (the proxy's, with its access log, is `-c istio-proxy`),
        or with --gateway the mesh-wide access log of a gateway's every replica."""
        ns = namespace_flag(namespace) or "default"
        if gateway is not None:
            from meshgate.cli.accesslog import print_gateway_log

            if pod is not None or container or previous or selector is not None:
                typer.echo("error: --gateway takes no POD, -l, -c or -p", err=True)
                raise typer.Exit(1)
            print_gateway_log(
                call_api, gateway=gateway, namespace=ns, host=host, status=status,
                since=since, tail=tail, output=output, follow=follow,
            )  # fmt: skip
            return
        if host or status or since or output:
            typer.echo("error: --host, --status, --since and -o go with --gateway", err=True)
            raise typer.Exit(1)
        if selector is not None:
            if pod is not None or follow:
                typer.echo("error: -l takes no POD and no -f", err=True)
                raise typer.Exit(1)
            names = _pods_by_selector(ns, selector)
            if not names:
                typer.echo(f"No resources found in {ns} namespace.", err=True)
            for name in names:
                _print_log(ns, name, name, container, previous, 10 if tail == -1 else tail, False)
            return
        if pod is None:
            typer.echo("error: a POD is required (or -l SELECTOR, or --gateway NAME)", err=True)
            raise typer.Exit(1)
        _print_log(ns, pod_name(pod, ns), pod, container, previous, tail, follow)


def _pods_by_selector(namespace: str, selector: str) -> list[str]:
    from meshgate.cli.context import backend_errors, get_backend
    from meshgate.cli.kindargs import resolve_kind

    with backend_errors():
        pods = get_backend().get(resolve_kind("pod"), namespace, None, selector)
    return sorted(str(p["metadata"]["name"]) for p in pods)


def _print_log(
    ns: str,
    name: str,
    pod: str,
    container: str | None,
    previous: bool,
    tail: int,
    follow: bool,
) -> None:
    """One container's output; ``pod`` as the user named it, for messages."""
    from urllib.parse import urlencode

    params = {"namespace": ns, "name": name, "container": container or ""}
    if previous:
        params["previous"] = "1"
    data = call_api("GET", f"/v1/log?{urlencode(params)}", client_checks=True)
    path = str(data["path"])
    try:
        fh = open(path, "rb")  # noqa: SIM115 - kept open while following
    except FileNotFoundError:
        if previous:
            shown = os.path.basename(path).removesuffix(".previous.log")
            msg = f'previous terminated container "{shown}" in pod "{name}" not found'
            typer.echo(f"error: {msg}", err=True)
        else:
            typer.echo(f"error: no logs yet for {ns}/{pod} ({path})", err=True)
        raise typer.Exit(1) from None
    with fh:
        content = fh.read()
        lines = content.splitlines(keepends=True)
        if tail >= 0:
            lines = lines[-tail:] if tail else []
        out = sys.stdout.buffer
        out.writelines(lines)
        out.flush()
        while follow:
            chunk = fh.read()
            if chunk:
                out.write(chunk)
                out.flush()
            else:
                time.sleep(0.2)
