"""``meshgate install``: istioctl install's ``--set`` and ``-f IstioOperator`` on a mesh.

Rules:
- Every setting (``install_settings`` says where each path leads) is read and checked
  first: unknown and unsupported paths, a bad IstioOperator file, and the MeshConfig that
  would result, validated with ``apply``'s own rules, each problem naming its ``--set``
  or its file and field. One problem and nothing changes (exit 1).
- The change goes through the backend as ``apply`` sends it: the MeshConfig and the egress
  gateway's ``IstioGateway`` in one atomic apply; removing the gateway is one delete,
  tried as a dry run together with the apply before either is made.
- Before changing anything it lists each change (``PATH: OLD -> NEW``) and asks, as
  istioctl does, unless ``-y``; ``--dry-run`` lists and changes nothing. Settings that are
  already in force change nothing and say so.
- Mesh config is in force at once (the proxies get it pushed); interception settings
  (``values.global.proxy.*``) apply to pods started afterwards, as on Istio, where they are
  injected into the pod.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from meshgate.cli.options import DryRun

OperatorFiles = Annotated[
    list[str] | None,
    typer.Option(
        "--filename",
        "-f",
        metavar="PATH",
        help="An IstioOperator file (install.istio.io/v1alpha1), or - for stdin; repeatable.",
    ),
]

EXAMPLES = """Examples:

\b
  meshgate install --set meshConfig.outboundTrafficPolicy.mode=REGISTRY_ONLY -y
  meshgate install --set meshConfig.accessLogFile=/dev/stdout \\
      --set meshConfig.accessLogEncoding=JSON
  meshgate install --set components.egressGateways[0].name=istio-egressgateway \\
      --set components.egressGateways[0].enabled=true -y
  meshgate install --set values.global.proxy.excludeIPRanges=198.51.100.10/32 -y
  meshgate install -f my-operator.yaml --dry-run
  meshgate install --set profile=demo -y      # egress gateway, access log to stdout
"""

MESH_API = "meshgate.io/v1alpha1"
GATEWAY_API = "istio.alibabacloud.com/v1beta1"
INTERCEPTION = (
    "includeIPRanges",
    "excludeIPRanges",
    "includeOutboundPorts",
    "excludeOutboundPorts",
)


def egress_gateway() -> dict[str, Any]:
    """Istio's default egress gateway, as an IstioGateway (what the seed applies for one):
    Istio's Service ports, http2 80 and https 443, served at 8080 and 8443."""
    from meshgate.cli.install_settings import EGRESS_NAME, EGRESS_NAMESPACE

    return {
        "apiVersion": GATEWAY_API,
        "kind": "IstioGateway",
        "metadata": {"name": EGRESS_NAME, "namespace": EGRESS_NAMESPACE},
        "spec": {
            "gatewayType": "egress",
            "replicaCount": 1,
            "ports": [
                {"name": "http2", "port": 80, "protocol": "TCP", "targetPort": 8080},
                {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 8443},
            ],
        },
    }


def _read_files(paths: list[str]) -> tuple[list[Any], list[str]]:
    """Each IstioOperator file's settings, and the problems of reading them."""
    import sys

    import yaml

    from meshgate.cli.install_settings import operator_settings

    settings: list[Any] = []
    problems: list[str] = []
    for path in paths:
        try:
            if path == "-":
                text = sys.stdin.read()
            else:
                with open(path, encoding="utf-8") as f:
                    text = f.read()
            docs = [d for d in yaml.safe_load_all(text) if d is not None]
        except OSError as exc:
            problems.append(f"{path}: cannot read: {exc.strerror or exc}")
            continue
        except yaml.YAMLError as exc:
            problems.append(f"{path}: not YAML: {str(exc).splitlines()[0]}")
            continue
        if not docs:
            problems.append(f"{path}: no IstioOperator in the file")
        for doc in docs:
            found, errors = operator_settings(doc, path)
            settings += found
            problems += errors
    return settings, problems


def _mesh_fields() -> frozenset[str]:
    from meshgate.api.kinds.meshgate_kinds import MeshConfigSpec

    return frozenset(f.alias or name for name, f in MeshConfigSpec.model_fields.items())


def _validate_mesh(spec: dict[str, Any], changes: list[Any]) -> tuple[list[str], list[str]]:
    """Problems (errors, warnings) of the MeshConfig ``spec``, each told by the setting
    that wrote its field."""
    from meshgate.api.decode import Decoded, decode_object
    from meshgate.validation import validate

    obj = {"apiVersion": MESH_API, "kind": "MeshConfig", "metadata": {"name": "default"}}
    resource, problems = decode_object({**obj, "spec": spec})
    if resource is not None:
        problems += validate(Decoded(resource))
    errors: list[str] = []
    warnings: list[str] = []
    for p in problems:
        field = p.field.removeprefix("spec.")
        by = None
        for path, _, setting in changes:
            written = ".".join(str(s) for s in path)
            if field == written or field.startswith(written + ".") or written.startswith(field):
                by = setting
        if by is None:
            where = f"MeshConfig spec.{field}"
        else:
            where = f"--set {by.path}" if by.source == "--set" else by.source
        code = f" [{p.code}]" if p.code else ""
        line = f"{where}: {p.message}{code}"
        if p.code == "MG0005" and by is not None:  # a field the MeshConfig does not have
            line = f"{by.source}: unknown path: meshConfig.{field}"
        (errors if p.is_error else warnings).append(line)
    return errors, warnings


def _at(spec: Any, path: tuple[str | int, ...]) -> Any:
    node = spec
    for step in path:
        if isinstance(step, int):
            if not isinstance(node, list) or step >= len(node):
                return None
        elif not isinstance(node, dict):
            return None
        node = node[step] if isinstance(step, int) else node.get(step)
    return node


def command(
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            "-s",
            metavar="PATH=VALUE",
            help="An IstioOperator setting, as istioctl's (meshConfig.*, "
            "values.global.proxy.includeIPRanges/excludeIPRanges/includeOutboundPorts/"
            "excludeOutboundPorts, components.egressGateways[N].enabled|name, profile); "
            "repeatable. Wins over -f.",
        ),
    ] = None,
    filename: OperatorFiles = None,
    skip_confirmation: Annotated[
        bool,
        typer.Option("--skip-confirmation", "-y", help="Change the mesh without asking first."),
    ] = False,
    dry_run: DryRun = "none",
) -> None:
    """Change the running mesh's install-time settings, as `istioctl install` does.

    Mesh config (meshConfig.*) is in force at once; interception settings
    (values.global.proxy.*) apply to pods started afterwards. A path Istio knows that
    means nothing here is refused as "not supported", an unknown one as "unknown path";
    nothing changes unless every setting is good. See docs/cli.md.
    """
    from meshgate.cli.install_settings import parse_set
    from meshgate.cli.options import dry_run_mode, split_files
    from meshgate.cli.output import fail

    mode = dry_run_mode(dry_run)
    settings, problems = _read_files(split_files(filename))
    for arg in set_ or []:
        try:
            settings.append(parse_set(arg))
        except ValueError as exc:
            problems.append(str(exc))
    if not settings and not problems:
        fail("nothing to install: give --set PATH=VALUE or -f FILE")
    run(settings, problems, mode, ask=not skip_confirmation)


def run(
    settings: list[Any], problems: list[str], mode: str, ask: bool, epilogue: bool = True
) -> None:
    """Check ``settings`` and make the change (see the module's rules); ``problems``
    found while reading them are reported with the rest."""
    from meshgate.api.registry import by_group_kind
    from meshgate.cli.context import backend_errors, get_backend, state_dir
    from meshgate.cli.install_settings import (
        EGRESS_NAME,
        EGRESS_NAMESPACE,
        apply_mesh,
        describe,
        plan,
    )
    from meshgate.cli.options import dry_run_suffix
    from meshgate.cli.output import err, fail, out, warn
    from meshgate.cli.render import qualified_kind

    wanted = plan(settings, _mesh_fields())
    problems += wanted.errors

    backend = get_backend()
    mesh_info = by_group_kind("meshgate.io", "MeshConfig")
    gw_info = by_group_kind("istio.alibabacloud.com", "IstioGateway")
    assert mesh_info is not None and gw_info is not None
    with backend_errors():
        stored = backend.get(mesh_info, None, "default", None)
        gateways = backend.get(gw_info, EGRESS_NAMESPACE, EGRESS_NAME, None)
    current = (stored[0].get("spec") or {}) if stored else {}
    new_spec = current
    for change in wanted.mesh:
        try:
            new_spec = apply_mesh(new_spec, [change])
        except (TypeError, IndexError):
            problems.append(f"{change[2].source}: {change[2].path}: does not fit the MeshConfig")
    # Validated even when other settings failed: every problem is reported at once.
    errors, warnings = _validate_mesh(new_spec, wanted.mesh)
    problems += errors
    for w in warnings:
        warn(w)
    for p in problems:
        err(f"error: {p}")
    if problems:
        fail(f"{len(problems)} error(s) found; nothing was changed")
    for note in wanted.notes:
        out(note)

    lines: list[str] = []
    for path, _, _setting in wanted.mesh:
        shown = "meshConfig." + ".".join(str(s) for s in path)
        before, after = _at(current, path), _at(new_spec, path)
        if before != after and all(shown not in line for line in lines):
            lines.append(f"  {shown}: {describe(before)} -> {describe(after)}")
    has_gateway = bool(gateways)
    if wanted.egress is not None and wanted.egress != has_gateway:
        lines.append(
            f"  components.egressGateways[name:{EGRESS_NAME}].enabled: "
            f"{describe(has_gateway)} -> {describe(wanted.egress)}"
        )
    if not lines:
        out("nothing to change: the mesh already has these settings")
        return
    out(f"This will change the mesh in {state_dir()}:")
    for line in lines:
        out(line)
    if mode == "none" and ask and not _confirm():
        fail("cancelled; nothing was changed")

    objects = []
    if new_spec != current:
        meta = dict(stored[0].get("metadata") or {}) if stored else {"name": "default"}
        for key in ("resourceVersion", "generation", "managedFields"):
            meta.pop(key, None)
        objects.append(
            {"apiVersion": MESH_API, "kind": "MeshConfig", "metadata": meta, "spec": new_spec}
        )
    if wanted.egress and not has_gateway:
        objects.append(egress_gateway())
    removals = []
    if wanted.egress is False and has_gateway:
        from meshgate.api.meta import ResourceKey

        removals.append(ResourceKey(gw_info.group, "IstioGateway", EGRESS_NAMESPACE, EGRESS_NAME))
    dry = mode != "none"
    with backend_errors():
        if objects and removals and not dry:
            backend.apply(objects, dry_run=True)  # all-or-nothing: refused before any change
            backend.delete(removals, dry_run=True)
        changes = backend.apply(objects, dry_run=dry) if objects else []
        changes += backend.delete(removals, dry_run=dry) if removals else []
    suffix = dry_run_suffix(mode)
    for result in changes:
        done = result.key
        out(f"{qualified_kind(done.group, done.kind)}/{done.name} {result.action}{suffix}")
    if dry or not epilogue:
        return
    out("Installation complete: mesh config is in force now.")
    if any(path[0] in INTERCEPTION for path, _, _ in wanted.mesh):
        out(
            "Interception settings apply to pods started from now on: restart the pods "
            "(delete them, or re-apply their Deployment with a changed template) to use them."
        )


def _confirm() -> bool:
    import sys

    sys.stdout.write("Proceed? (y/N) ")
    sys.stdout.flush()
    answer = sys.stdin.readline().strip().lower()
    return answer in ("y", "yes")


def set_capture_ranges(include: str | None, exclude: str | None) -> None:
    """``up --include-ip-ranges/--exclude-ip-ranges``: the same change as ``install --set
    values.global.proxy.includeIPRanges=...``, made without asking."""
    from meshgate.cli.install_settings import Setting

    settings = []
    if include is not None:
        settings.append(
            Setting("values.global.proxy.includeIPRanges", include, "--include-ip-ranges")
        )
    if exclude is not None:
        settings.append(
            Setting("values.global.proxy.excludeIPRanges", exclude, "--exclude-ip-ranges")
        )
    run(settings, [], "none", ask=False, epilogue=False)
