"""``meshgate analyze``: cross-resource checks, as ``istioctl analyze`` makes them.

Rules of this module:
- Without ``--offline`` the mesh's configuration comes through the same Backend seam as
  every verb (the control plane's API, else the store); ``-f`` files are laid over it.
  ``--offline -f PATH...`` analyzes the files plus what a fresh mesh holds (``istio-system``,
  the default MeshConfig).
- What controllers would create is implied, so a Gateway is judged against the workload a
  real mesh runs: an IstioGateway's Deployment, Service and ServiceAccount, and a pod for
  every Deployment that has none yet (``meshgate.server.workloads`` derives them).
- Messages print one a line on stdout in istioctl's format (``-o json|yaml`` for lists);
  the verdict goes to stderr: ``✔ No validation issues found when analyzing ...``, or
  istioctl's "Analyzers found issues" with exit code 79 when a shown message reaches
  ``--failure-threshold`` (default Error). ``--output-threshold`` (default Info) hides
  lower levels.
- Namespaces: ``-A`` shows every namespace; ``-n NS`` one; without either, ``default`` for a
  live mesh and every namespace for ``--offline`` files.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from meshgate.cli.options import AllNamespaces, Filenames, Namespace

if TYPE_CHECKING:
    from meshgate.analysis.inputs import Inputs

ISSUES_EXIT_CODE = 79  # istioctl's exit code when analyzers find issues
OUTPUT_FORMATS = ("log", "json", "yaml")

EXAMPLES = """Examples:

\b
  meshgate analyze
  meshgate analyze -A
  meshgate analyze --offline -f examples/walkthrough/
  meshgate analyze --offline -f vs.yaml -o json --failure-threshold Warning
"""

Offline = Annotated[
    bool,
    typer.Option("--offline", help="Analyze only the -f files (plus a fresh mesh's defaults)."),
]
FailureThreshold = Annotated[
    str,
    typer.Option(
        "--failure-threshold",
        metavar="LEVEL",
        help="Lowest level (Error, Warning, Info) that makes the exit code non-zero.",
    ),
]
OutputThreshold = Annotated[
    str,
    typer.Option(
        "--output-threshold", metavar="LEVEL", help="Lowest level (Error, Warning, Info) shown."
    ),
]
Output = Annotated[
    str, typer.Option("--output", "-o", metavar="FORMAT", help="log (default), json or yaml.")
]


def command(
    filename: Filenames = None,
    offline: Offline = False,
    all_namespaces: AllNamespaces = False,
    namespace: Namespace = None,
    failure_threshold: FailureThreshold = "Error",
    output_threshold: OutputThreshold = "Info",
    output: Output = "log",
) -> None:
    """Analyze the mesh's configuration (or files) for cross-resource mistakes."""
    from meshgate.analysis.messages import parse_level
    from meshgate.analysis.runner import Result, analyze
    from meshgate.cli.context import namespace_flag
    from meshgate.cli.options import split_files
    from meshgate.cli.output import err, fail

    try:
        fail_level = parse_level(failure_threshold)
        show_level = parse_level(output_threshold)
    except ValueError as exc:
        fail(str(exc))
    if output not in OUTPUT_FORMATS:
        fail(f"invalid output format {output!r}: use log, json or yaml")
    paths = split_files(filename)
    if offline and not paths:
        fail("--offline needs files: -f PATH")
    ns = namespace_flag(namespace)
    inputs = gather_inputs(paths, ns, offline)
    result = analyze(inputs)
    if all_namespaces or (offline and not ns):
        wanted, target = None, "all namespaces"
    else:
        chosen = ns or "default"
        wanted, target = {chosen}, f"namespace: {chosen}"
    shown = result.shown(wanted, show_level)
    _print(shown, output)
    if Result.failed(shown, fail_level):
        err(
            f"Error: Analyzers found issues when analyzing {target}.\n"
            "See https://istio.io/latest/docs/reference/config/analysis for more information "
            "about causes and resolutions."
        )
        raise typer.Exit(ISSUES_EXIT_CODE)
    if not shown:
        err(f"\u2714 No validation issues found when analyzing {target}.")


def gather_inputs(paths: list[str], namespace: str | None, offline: bool) -> Inputs:
    """The inputs ``analyze`` runs on (also used by benchmarks/analyzer_parity.py)."""
    from meshgate.analysis.inputs import Inputs, decode_objects, read_files, with_defaults

    inputs = Inputs()
    if not offline:
        decode_objects(_store_objects(), inputs, implied=False)
    if paths:
        files = read_files(paths, namespace)
        for entry in files.resources:
            inputs.add(entry)
        inputs.nodes.update(files.nodes)
        inputs.notes.extend(files.notes)
        inputs.files.extend(files.files)
    with_defaults(inputs)
    _add_implied(inputs)
    return inputs


def _store_objects() -> list[dict[str, Any]]:
    from meshgate.api.registry import all_kinds
    from meshgate.cli.context import backend_errors, get_backend

    objects: list[dict[str, Any]] = []
    with backend_errors():
        backend = get_backend()
        for kind in all_kinds():
            objects.extend(backend.get(kind, None, None, None))
    return objects


def _add_implied(inputs: Inputs) -> None:
    """What the workload controllers would create and the input does not hold yet."""
    from meshgate.analysis.inputs import decode_objects
    from meshgate.api.kinds.alibabacloud import IstioGateway
    from meshgate.api.kinds.kubernetes import Deployment, Pod
    from meshgate.server.workloads import gateway_objects, plan_pods

    gateway_parts = [
        obj
        for e in inputs.resources
        if isinstance(e.resource, IstioGateway)
        for obj in gateway_objects(e.resource.to_wire())
    ]
    decode_objects(gateway_parts, inputs, implied=True)
    pods = [e.resource for e in inputs.resources if isinstance(e.resource, Pod)]
    counter = iter(range(1_000_000))
    implied: list[dict[str, Any]] = []
    for entry in inputs.resources:
        deployment = entry.resource
        if not isinstance(deployment, Deployment):
            continue
        selector = deployment.spec.selector
        if any(p.namespace == deployment.namespace and selector.matches(p.labels) for p in pods):
            continue
        plan = plan_pods(deployment.to_wire(), [], suffix=lambda: f"{next(counter):05d}")
        implied.extend(plan.create)
    decode_objects(implied, inputs, implied=True)


def _print(shown: list[Any], output: str) -> None:
    import json

    from meshgate.cli.output import out

    if output == "log":
        for m in shown:
            out(str(m))
        return
    items = [m.to_dict() for m in shown]
    if output == "json":
        out(json.dumps(items, indent=2, ensure_ascii=False))
        return
    import yaml

    out(yaml.safe_dump(items, sort_keys=False, allow_unicode=True))
