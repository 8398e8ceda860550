"""``meshgate rollout restart|status``: kubectl rollout's twins for Deployments.

Rules (kubectl's):
- ``restart`` sets the pod template's ``kubectl.kubernetes.io/restartedAt`` annotation to
  the current time (RFC 3339, seconds), a template change like any other: the control
  plane replaces the Deployment's pods by its rollout rules (surge, unavailable,
  readiness), so no request is dropped. A paused Deployment is refused; a second restart
  within the same second is kubectl's "already been triggered" error. Without a name,
  every Deployment of the namespace (or ``-l``'s) restarts; one atomic write.
- ``status`` follows the Deployment until its rollout completes, printing kubectl's
  lines each time the state changes ("Waiting for deployment "x" rollout to finish: 0 of
  1 updated replicas are available...", then "deployment "x" successfully rolled out").
  ``--watch=false`` prints the current line once (exit 0 either way, as kubectl);
  ``--timeout`` (0: forever) ends the wait with kubectl's error and exit code 1.
- Only Deployments: other kinds get kubectl's "no status viewer"/"no restarter" errors.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from meshgate.cli.options import DryRun, Namespace, Selector

Obj = dict[str, Any]
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"

EXAMPLES = """Examples:

\b
  meshgate rollout restart deployment/sleep
  meshgate rollout restart deploy            # every Deployment in the namespace
  meshgate rollout status deployment/sleep --timeout=60s
"""

app = typer.Typer(
    help="Manage the rollout of a Deployment: restart it, follow its status.",
    no_args_is_help=True,
    add_completion=False,
    epilog=EXAMPLES,
)

Args = Annotated[list[str], typer.Argument(metavar="KIND [NAME]...", help="KIND NAME or KIND/NAME")]


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _deployments(
    args: list[str], namespace: str | None, selector: str | None, verb: str
) -> list[Obj]:
    from meshgate.cli.context import namespace_flag
    from meshgate.cli.fetch import fetch
    from meshgate.cli.output import err, fail
    from meshgate.cli.sources import DEFAULT_NAMESPACE

    ns = namespace_flag(namespace) or DEFAULT_NAMESPACE
    fetched = fetch(args, ns, selector)
    for line in fetched.missing:
        err(line)
    if fetched.missing:
        raise typer.Exit(1)
    for info, _ in fetched.found:
        if info.kind != "Deployment" and verb == "status":
            fail(f"no status viewer has been implemented for {info.kind}")
        if info.kind != "Deployment":
            fail(f"{info.plural} restarting is not supported: only Deployments roll out here")
    if not fetched.objects:
        fail(fetched.empty_message())
    return fetched.objects


def restart(
    args: Args,
    selector: Selector = None,
    namespace: Namespace = None,
    dry_run: DryRun = "none",
) -> None:
    """Restart a Deployment's pods (a rolling replacement, as kubectl's)."""
    from meshgate.cli.options import dry_run_mode, dry_run_suffix
    from meshgate.cli.output import fail, out
    from meshgate.cli.writes import display_name, for_write, write

    mode = dry_run_mode(dry_run)
    stamp = now_rfc3339()
    updated = []
    for dep in _deployments(args, namespace, selector, "restart"):
        if (dep.get("spec") or {}).get("paused"):
            fail(f"{display_name(dep)}: can't restart paused deployment (run rollout resume first)")
        new = for_write(dep)
        template = new.setdefault("spec", {}).setdefault("template", {})
        annotations = template.setdefault("metadata", {}).setdefault("annotations", {})
        if annotations.get(RESTARTED_AT) == stamp:
            fail(
                f"failed to create patch for {dep['metadata']['name']}: if restart has already "
                "been triggered within the past second, please wait before attempting to "
                "trigger another"
            )
        annotations[RESTARTED_AT] = stamp
        updated.append(new)
    write(updated, mode)
    for dep in updated:
        out(f"{display_name(dep)} restarted{dry_run_suffix(mode)}")


def status(
    args: Args,
    watch: Annotated[
        str,
        typer.Option(
            "--watch", metavar="true|false", help="Follow until the rollout ends (default true)."
        ),
    ] = "true",
    timeout: Annotated[
        str, typer.Option("--timeout", metavar="DURATION", help="Give up after (0: never).")
    ] = "0s",
    namespace: Namespace = None,
) -> None:
    """Show the status of a Deployment's rollout, following it until it completes."""
    from meshgate.cli.conditions import rollout_message
    from meshgate.cli.output import fail, out
    from meshgate.cli.wait import parse_timeout

    seconds = parse_timeout(timeout)
    if watch.lower() not in ("true", "false"):
        fail(f'invalid argument "{watch}" for "--watch" flag: use true or false')
    following = watch.lower() == "true"
    deps = _deployments(args, namespace, None, "status")
    if len(deps) != 1:
        fail("rollout status is only supported on individual resources and resource collections")
    dep = deps[0]
    deadline = time.monotonic() + seconds if seconds > 0 else None
    last = ""
    while True:
        message, done = rollout_message(dep)
        if message != last:
            out(message)
            last = message
        if done or not following:
            return
        if deadline is not None and time.monotonic() >= deadline:
            fail("timed out waiting for the condition")
        time.sleep(0.5)
        dep = _refetch(dep)


def _refetch(dep: Obj) -> Obj:
    from meshgate.api.registry import by_group_kind
    from meshgate.cli.output import fail
    from meshgate.cli.writes import get_one

    info = by_group_kind("apps", "Deployment")
    assert info is not None
    meta = dep["metadata"]
    found = get_one(info, meta.get("namespace", ""), meta["name"])
    if found is None:
        fail(f'deployments.apps "{meta["name"]}" not found')
    return found


def _register() -> None:
    from meshgate.cli.helpfmt import Command

    app.command("restart", cls=Command)(restart)
    app.command("status", cls=Command)(status)


_register()
