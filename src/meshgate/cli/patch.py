"""``meshgate patch``: kubectl patch's twin (change fields of a stored object in place).

Rules (kubectl's):
- ``patch KIND NAME -p PATCH`` (or ``KIND/NAME``; ``--patch-file FILE``): the patch is
  JSON or YAML. ``--type merge`` is a JSON merge patch (RFC 7386: objects merge, ``null``
  removes, lists are replaced); ``--type json`` a JSON patch (RFC 6902, the ``jsonpatch``
  library); ``--type strategic`` (the default) is a merge patch that merges the lists
  Kubernetes merges by key instead of replacing them (see ``MERGE_KEYS``), honouring a
  list item's ``$patch: delete`` and an object's ``$patch: replace``; other lists are
  replaced, as with ``merge``. Kubernetes' other directives (``$retainKeys``,
  ``$setElementOrder``, ``$deleteFromPrimitiveList``) are refused by name.
- A patch may not change the object's apiVersion, kind, name or namespace.
- The result is validated and written as ``apply`` writes (``meshgate.cli.writes``), so a
  patch making the object invalid changes nothing; ``kind.group/name patched`` is printed,
  or ``patched (no change)`` when the object came out the same (nothing written).
"""

from __future__ import annotations

import copy
from typing import Annotated, Any

import typer

from meshgate.cli.options import DryRun, Namespace

Obj = dict[str, Any]

EXAMPLES = """Examples:

\b
  meshgate patch deploy sleep -p '{"spec":{"replicas":2}}'
  meshgate patch deploy/sleep --type merge -p '{"metadata":{"labels":{"tier":"front"}}}'
  meshgate patch se/x --type json -p '[{"op":"replace","path":"/spec/hosts/0","value":"a.com"}]'
  meshgate patch deploy sleep -p \\
    '{"spec":{"template":{"spec":{"containers":[{"name":"sleep","image":"curl"}]}}}}'
"""

TYPES = ("json", "merge", "strategic")
# Kubernetes' patchMergeKey for the lists meshgate's kinds carry, by the list's field name
# (a Service's ports merge by port, a container's by containerPort).
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "ports": "containerPort",
    "ownerReferences": "uid",
}
_SERVICE_PORTS_KEY = "port"
_UNSUPPORTED = ("$retainKeys", "$setElementOrder", "$deleteFromPrimitiveList")


class PatchError(ValueError):
    """A patch that cannot be applied; the message is kubectl-like."""


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: ``patch`` applied to ``target`` (neither is modified)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_patch(target: Any, patch: Any, kind: str, field: str = "") -> Any:
    """A merge patch with Kubernetes' keyed list merging (see the module's rules)."""
    if isinstance(patch, dict):
        for directive in _UNSUPPORTED:
            if any(k.startswith(directive) for k in patch):
                raise PatchError(
                    f"the strategic merge patch directive {directive} is not supported"
                )
        if patch.get("$patch") == "replace":
            return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
        if patch.get("$patch") == "delete":
            return None
        result = copy.deepcopy(target) if isinstance(target, dict) else {}
        for key, value in patch.items():
            if key == "$patch":
                continue
            if value is None:
                result.pop(key, None)
            else:
                merged = strategic_patch(result.get(key), value, kind, key)
                if merged is None:
                    result.pop(key, None)
                else:
                    result[key] = merged
        return result
    if isinstance(patch, list):
        key = _SERVICE_PORTS_KEY if (kind == "Service" and field == "ports") else None
        key = key or MERGE_KEYS.get(field)
        if key and isinstance(target, list) and _keyed(target, key) and _keyed(patch, key):
            return _merge_list(target, patch, key, kind)
        return copy.deepcopy(patch)
    return copy.deepcopy(patch)


def _keyed(items: list[Any], key: str) -> bool:
    return all(isinstance(i, dict) and key in i for i in items)


def _merge_list(target: list[Obj], patch: list[Obj], key: str, kind: str) -> list[Obj]:
    result = [copy.deepcopy(i) for i in target]
    for item in patch:
        index = next((n for n, i in enumerate(result) if i[key] == item[key]), None)
        if item.get("$patch") == "delete":
            if index is not None:
                del result[index]
            continue
        if index is None:
            result.append(strategic_patch({}, item, kind))
        else:
            result[index] = strategic_patch(result[index], item, kind)
    return result


def apply_patch(obj: Obj, patch: Any, patch_type: str) -> Obj:
    """``obj`` with ``patch`` applied; PatchError if it cannot be."""
    if patch_type == "json":
        import jsonpatch

        if not isinstance(patch, list):
            raise PatchError("json patch must be a list of operations")
        try:
            result: Obj = jsonpatch.apply_patch(obj, patch)
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
            raise PatchError(str(exc)) from None
        return result
    if not isinstance(patch, dict):
        raise PatchError(f"a {patch_type} patch must be a JSON object")
    if patch_type == "merge":
        return merge_patch(obj, patch)  # type: ignore[no-any-return]
    return strategic_patch(obj, patch, str(obj.get("kind", "")))  # type: ignore[no-any-return]


def _identity(obj: Obj) -> tuple[Any, ...]:
    meta = obj.get("metadata") or {}
    return (obj.get("apiVersion"), obj.get("kind"), meta.get("name"), meta.get("namespace"))


def command(
    args: Annotated[list[str], typer.Argument(metavar="KIND NAME | KIND/NAME", help="what")],
    patch: Annotated[
        str | None, typer.Option("--patch", "-p", metavar="PATCH", help="The patch (JSON/YAML).")
    ] = None,
    patch_file: Annotated[
        str | None,
        typer.Option("--patch-file", metavar="PATH", help="A file holding the patch."),
    ] = None,
    patch_type: Annotated[
        str,
        typer.Option("--type", metavar="TYPE", help="json, merge or strategic (default)."),
    ] = "strategic",
    namespace: Namespace = None,
    dry_run: DryRun = "none",
) -> None:
    """Update fields of a resource with a strategic merge, JSON merge or JSON patch."""
    import yaml

    from meshgate.cli.context import namespace_flag
    from meshgate.cli.fetch import fetch
    from meshgate.cli.options import dry_run_mode, dry_run_suffix
    from meshgate.cli.output import err, fail, out
    from meshgate.cli.sources import DEFAULT_NAMESPACE
    from meshgate.cli.writes import display_name, for_write, write

    mode = dry_run_mode(dry_run)
    if patch_type not in TYPES:
        fail(f'--type must be one of [json merge strategic], not "{patch_type}"')
    if (patch is None) == (patch_file is None):
        fail("must specify one of -p or --patch-file")
    if patch_file is not None:
        try:
            with open(patch_file, encoding="utf-8") as fh:
                patch = fh.read()
        except OSError as exc:
            fail(f"unable to read patch file: {exc}")
    assert patch is not None
    try:
        parsed = yaml.safe_load(patch)
    except yaml.YAMLError as exc:
        fail(f'unable to parse "{patch}": {exc}')
    ns = namespace_flag(namespace) or DEFAULT_NAMESPACE
    fetched = fetch(args, ns, None)
    for line in fetched.missing:
        err(line)
    if fetched.missing:
        raise typer.Exit(1)
    changed: list[Obj] = []
    lines: list[str] = []
    for obj in fetched.objects:
        before = for_write(obj)
        before.pop("status", None)
        try:
            after = apply_patch(before, parsed, patch_type)
        except PatchError as exc:
            fail(str(exc))
        if _identity(after) != _identity(before):
            fail(f"{display_name(obj)}: a patch may not change apiVersion, kind, name or namespace")
        if after == before:
            lines.append(f"{display_name(obj)} patched (no change)")
        else:
            changed.append(after)
            lines.append(f"{display_name(obj)} patched{dry_run_suffix(mode)}")
    if changed:
        write(changed, mode)
    for line in lines:
        out(line)
