"""The ``meshgate`` console script: registers the verbs, nothing else.

Rules: importing this module must stay cheap (typer and the verb modules, which import
only typer and ``meshgate.cli.options`` at module level); each verb's work, and its heavy
imports, happen inside the verb. ``run()`` is the console-script entry point.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import typer
from typer.core import TyperGroup

from meshgate.cli import (
    analyze,
    annotate,
    apply,
    ca,
    console,
    cp,
    create,
    delete,
    describe,
    egress,
    egress_dryrun,
    get,
    history,
    install,
    label,
    mesh_cmds,
    metrics,
    node_cmds,
    patch,
    pod_cmds,
    proxy_config,
    rollout,
    scale,
    top,
    trace,
    validate,
    version,
    wait,
)
from meshgate.cli.context import set_global_namespace
from meshgate.cli.helpfmt import Command
from meshgate.cli.options import Namespace, bare_flags_with_values


class _Group(TyperGroup):
    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, bare_flags_with_values(args))


app = typer.Typer(
    name="meshgate",
    cls=_Group,
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)


@app.callback()
def _global_options(namespace: Namespace = None) -> None:
    """meshgate controls a service mesh's egress: Istio/Kubernetes YAML in, Envoy out."""
    set_global_namespace(namespace)


app.command("apply", cls=Command, epilog=apply.EXAMPLES)(apply.command)
app.command("get", cls=Command, epilog=get.EXAMPLES)(get.command)
app.command("describe", cls=Command, epilog=describe.EXAMPLES)(describe.command)
app.command("delete", cls=Command, epilog=delete.EXAMPLES)(delete.command)
app.command("label", cls=Command, epilog=label.EXAMPLES)(label.command)
app.command("annotate", cls=Command, epilog=annotate.EXAMPLES)(annotate.command)
app.add_typer(create.app, name="create")
app.command("scale", cls=Command, epilog=scale.EXAMPLES)(scale.command)
app.command("patch", cls=Command, epilog=patch.EXAMPLES)(patch.command)
app.add_typer(rollout.app, name="rollout")
app.command("wait", cls=Command, epilog=wait.EXAMPLES)(wait.command)
app.command("validate", cls=Command, epilog=validate.EXAMPLES)(validate.command)
app.command("analyze", cls=Command, epilog=analyze.EXAMPLES)(analyze.command)
app.command("history", cls=Command, epilog=history.HISTORY_EXAMPLES)(history.history_command)
app.command("rollback", cls=Command, epilog=history.ROLLBACK_EXAMPLES)(history.rollback_command)
app.command("version", cls=Command)(version.command)
app.command("install", cls=Command, epilog=install.EXAMPLES, rich_help_panel="Mesh")(
    install.command
)
mesh_cmds.register(app)
node_cmds.register(app)
metrics.register(app)
pod_cmds.register(app)
cp.register(app)
top.register(app)
console.register(app)
app.add_typer(ca.app, name="ca", rich_help_panel="Mesh")
trace.register(app)
egress_dryrun.add_to(egress.app)  # egress discover (cli/egress.py) beside dry-run
app.add_typer(egress.app, name="egress", rich_help_panel="Mesh")
# One verb under two names, as istioctl has it; the alias is named in the listing instead
# of being listed twice.
app.command(
    "proxy-config",
    cls=Command,
    short_help="Show the Envoy configuration a proxy runs (alias: pc).",
    epilog=proxy_config.EXAMPLES,
)(proxy_config.command)
app.command("pc", cls=Command, hidden=True, epilog=proxy_config.EXAMPLES)(proxy_config.command)


def run() -> None:
    from meshgate.client import Unresponsive

    try:
        app()
    except Unresponsive as exc:
        # A busy control plane is a condition to report, never a traceback.
        if os.environ.get("MESHGATE_DEBUG"):
            raise
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    run()
