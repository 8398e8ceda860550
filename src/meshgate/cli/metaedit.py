"""What ``label`` and ``annotate`` share: kubectl's way of editing a metadata map.

Rules (kubectl's):
- ``VERB KIND NAME... KEY=VALUE... KEY-...`` (or ``KIND/NAME``): ``KEY=VALUE`` sets,
  ``KEY-`` removes. Changing a key that already has another value needs ``--overwrite``;
  without it nothing changes and the error names the key and its value.
- ``--all`` (every object of the kind in the namespace) or ``-l SELECTOR`` instead of
  names; ``--all`` with names is an error, as in kubectl.
- A missing object prints kubectl's NotFound line and exits 1, nothing changed.
- meshgate's namespaces exist without an object (whatever lives in them, and the
  well-known ``default``, ``istio-system`` and ``kube-system``), so editing a Namespace
  that has no object yet creates one: ``kubectl label ns kube-system kube-system=true``
  from Istio's recipes works as written.
- Keys are Kubernetes qualified names (label values too: label syntax); a bad one
  changes nothing. Every changed object is written through ``meshgate.cli.writes`` in
  one atomic apply (validated as ``apply``'s), then each prints as
  ``kind.group/name VERBED`` (or ``not labeled`` when ``label`` changed nothing).
"""

from __future__ import annotations

from typing import Any

import typer

WELL_KNOWN_NAMESPACES = ("default", "istio-system", "kube-system")
Obj = dict[str, Any]


def parse_changes(words: list[str]) -> tuple[list[str], dict[str, str | None]]:
    """Split arguments into resource words and changes (None: remove)."""
    resources: list[str] = []
    changes: dict[str, str | None] = {}
    for word in words:
        if "=" in word:
            key, _, value = word.partition("=")
            changes[key] = value
        elif word.endswith("-") and len(word) > 1:  # no object name ends with "-"
            changes[word[:-1]] = None
        else:
            resources.append(word)
    return resources, changes


def edit(
    obj: Obj, field: str, changes: dict[str, str | None], overwrite: bool
) -> tuple[bool, list[tuple[str, str]]]:
    """Apply ``changes`` to ``obj.metadata[field]`` in place: (changed, refused), where
    ``refused`` lists (key, current value) that would change without ``overwrite``
    (then ``obj`` is left as it was)."""
    meta = obj.setdefault("metadata", {})
    current = dict(meta.get(field) or {})
    refused = [
        (k, current[k])
        for k, v in changes.items()
        if v is not None and k in current and current[k] != v and not overwrite
    ]
    if refused:
        return False, refused
    updated = dict(current)
    for key, value in changes.items():
        if value is None:
            updated.pop(key, None)
        else:
            updated[key] = value
    if updated:
        meta[field] = updated
    else:
        meta.pop(field, None)
    return updated != current, []


def run(
    verb: str,
    field: str,
    args: list[str],
    overwrite: bool,
    all_objects: bool,
    selector: str | None,
    namespace: str | None,
    dry_run: str,
) -> None:
    """The whole verb: fetch, edit, write, print (see the module's rules)."""
    from meshgate.cli.context import namespace_flag
    from meshgate.cli.fetch import fetch
    from meshgate.cli.options import dry_run_mode, dry_run_suffix
    from meshgate.cli.output import err, fail, out
    from meshgate.cli.sources import DEFAULT_NAMESPACE
    from meshgate.cli.writes import display_name, for_write, write

    mode = dry_run_mode(dry_run)
    ns = namespace_flag(namespace) or DEFAULT_NAMESPACE
    words, changes = parse_changes(args)
    if not changes:
        fail(f"at least one {field[:-1]} update is required")
    from meshgate.validation.common import labels_problems

    if field == "labels":
        problems = labels_problems({k: v or "" for k, v in changes.items()})
    else:  # annotation keys are qualified names, as label keys; any value goes
        problems = [
            p.replace("label key", "annotation key")
            for p in labels_problems(dict.fromkeys(changes, ""))
        ]
    if problems:
        fail("; ".join(problems))
    named = len(words) > 1 or (bool(words) and "/" in words[0])
    if all_objects and named:
        fail("--all cannot be combined with resource names")
    if (all_objects or selector) and not words:
        fail("you must specify the type of resource")
    if not named and not all_objects and not selector:
        fail("one or more resources must be specified as <resource> <name> or <resource>/<name>")
    fetched = fetch(words, ns, selector)
    objects = fetched.objects
    missing = []
    for line in fetched.missing:
        implicit = _implicit_namespace(line)
        if implicit is None:
            missing.append(line)
        else:
            objects.append(
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": implicit}}
            )
    for line in missing:
        err(line)
    if missing:
        raise typer.Exit(1)
    if not objects:
        err(fetched.empty_message())
        return
    changed: list[Obj] = []
    for obj in objects:
        done, refused = edit(obj, field, changes, overwrite)
        if refused:
            fail(_refusal(field, refused))
        if done:
            changed.append(obj)
    if changed:
        write([for_write(o) for o in changed], mode)
    suffix = dry_run_suffix(mode)
    for obj in objects:
        what = verb if obj in changed or field != "labels" else f"not {verb}"
        out(f"{display_name(obj)} {what}{suffix}")


def _refusal(field: str, refused: list[tuple[str, str]]) -> str:
    if field == "labels":
        key, value = refused[0]
        return f"'{key}' already has a value ({value}), and --overwrite is false"
    found = ", ".join(f"'{k}' already has a value ({v})" for k, v in refused)
    return f"--overwrite is false but found the following declared annotation(s): {found}"


def _implicit_namespace(not_found_line: str) -> str | None:
    """The namespace a NotFound line names, when it is one meshgate has without an object."""
    prefix = 'Error from server (NotFound): namespaces "'
    if not not_found_line.startswith(prefix):
        return None
    name = not_found_line[len(prefix) :].split('"', 1)[0]
    return name if name in WELL_KNOWN_NAMESPACES or _lives_in(name) else None


def _lives_in(namespace: str) -> bool:
    from meshgate.api.registry import all_kinds
    from meshgate.cli.context import get_backend

    backend = get_backend()
    return any(backend.get(info, namespace, None, None) for info in all_kinds() if info.namespaced)
