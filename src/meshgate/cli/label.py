"""``meshgate label``: kubectl label's twin (update the labels on a resource).

Rules (kubectl's):
- ``label KIND NAME... KEY=VALUE... KEY-...`` (or ``KIND/NAME``): ``KEY=VALUE`` sets a
  label, ``KEY-`` removes one. Changing a label that already has another value needs
  ``--overwrite`` ("'KEY' already has a value (OLD), and --overwrite is false").
- Each changed object prints ``kind/name labeled`` (``not labeled`` when nothing changed);
  a missing object prints kubectl's NotFound line and exits 1, nothing changed.
- Keys and values follow Kubernetes label syntax; a bad one changes nothing.
- meshgate's namespaces exist without an object (whatever lives in them, and the
  well-known ``default``, ``istio-system`` and ``kube-system``), so labelling a Namespace
  that has no object yet creates one with those labels: ``kubectl label ns kube-system
  kube-system=true`` from Istio's recipes works as written.
- All objects change in one atomic apply.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from meshgate.cli.options import DryRun, Namespace

EXAMPLES = """Examples:

\b
  meshgate label namespace istio-system istio=system
  meshgate label ns kube-system kube-system=true
  meshgate label pod sleep-7f8b-x2v4q tier=front --overwrite
  meshgate label deploy/sleep tier-                # remove the label
"""

WELL_KNOWN_NAMESPACES = ("default", "istio-system", "kube-system")


def parse_changes(words: list[str]) -> tuple[list[str], dict[str, str | None]]:
    """Split arguments into resource words and label changes (None: remove)."""
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


def relabel(obj: dict[str, Any], changes: dict[str, str | None], overwrite: bool) -> bool:
    """Apply ``changes`` to ``obj``'s labels in place; whether anything changed.
    ValueError when a label would change value without ``overwrite``."""
    meta = obj.setdefault("metadata", {})
    labels = dict(meta.get("labels") or {})
    before = dict(labels)
    for key, value in changes.items():
        if value is None:
            labels.pop(key, None)
            continue
        if key in labels and labels[key] != value and not overwrite:
            raise ValueError(
                f"'{key}' already has a value ({labels[key]}), and --overwrite is false"
            )
        labels[key] = value
    if labels:
        meta["labels"] = labels
    else:
        meta.pop("labels", None)
    return labels != before


def command(
    args: Annotated[
        list[str],
        typer.Argument(metavar="KIND NAME... KEY=VALUE... KEY-...", help="what to label, and how"),
    ],
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Allow labels to change value.")
    ] = False,
    namespace: Namespace = None,
    dry_run: DryRun = "none",
) -> None:
    """Update the labels on a resource (KEY=VALUE sets, KEY- removes)."""
    from meshgate.cli.context import backend_errors, get_backend, namespace_flag
    from meshgate.cli.fetch import fetch
    from meshgate.cli.options import dry_run_mode, dry_run_suffix
    from meshgate.cli.output import err, fail, out
    from meshgate.cli.sources import DEFAULT_NAMESPACE
    from meshgate.validation.common import labels_problems

    ns = namespace_flag(namespace) or DEFAULT_NAMESPACE
    words, changes = parse_changes(args)
    if not changes:
        fail("at least one label update is required")
    problems = labels_problems({k: v or "" for k, v in changes.items()})
    if problems:
        fail("; ".join(problems))
    fetched = fetch(words, ns, None)
    objects = fetched.objects
    missing = []
    for line in fetched.missing:
        name = _implicit_namespace(line)
        if name is None:
            missing.append(line)
        else:
            objects.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    for line in missing:
        err(line)
    if missing:
        raise typer.Exit(1)
    changed = []
    for obj in objects:
        try:
            if relabel(obj, changes, overwrite):
                changed.append(obj)
        except ValueError as exc:
            fail(str(exc))
    for obj in changed:
        for key in ("resourceVersion", "generation", "managedFields"):
            obj["metadata"].pop(key, None)
    mode = dry_run_mode(dry_run)
    if changed:
        with backend_errors():
            get_backend().apply(changed, dry_run=mode != "none")
    suffix = dry_run_suffix(mode)
    for obj in objects:
        what = "labeled" if obj in changed else "not labeled"
        out(f"{obj['kind'].lower()}/{obj['metadata']['name']} {what}{suffix}")


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
