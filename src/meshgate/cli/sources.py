"""Reading ``-f`` arguments: files, directories and ``-`` (stdin), decoded and checked.

Rules of this module:
- ``meshgate.api.decode`` does the reading and decoding (directories non-recursively,
  ``-`` as stdin named ``<stdin>``); problems are collected, never raised, so a user sees
  them all at once. ``expand`` names the same files, for per-file verdicts.
- Namespaced documents without a namespace get ``-n``'s, else ``default`` (decode does
  that); a document naming another namespace than an explicit ``-n`` is an error, as in
  kubectl.
- Structural validation (``meshgate.validation``) runs on every decoded document, and on
  what could be read of a document the decoder refused (``validation.partial``); its
  problems carry file and line like decoding's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from meshgate.api.decode import Decoded, Refused
    from meshgate.api.problems import Problem

DEFAULT_NAMESPACE = "default"
STDIN = "<stdin>"
_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass
class Loaded:
    files: list[str]
    documents: list[Decoded]
    problems: list[Problem]
    # Documents the decoder refused: their rule problems are reported beside its own.
    refused: list[Refused] = field(default_factory=list)


def expand(paths: list[str]) -> list[str]:
    """The file names that ``-f`` arguments stand for, in order, as decode names them."""
    files: list[str] = []
    for raw in paths:
        path = Path(raw)
        if raw == "-":
            files.append(STDIN)
        elif path.is_dir():
            files.extend(
                str(p) for p in sorted(path.iterdir()) if p.is_file() and p.suffix in _SUFFIXES
            )
        else:
            files.append(str(path))
    return files


def load(paths: list[str], namespace: str | None = None) -> Loaded:
    from meshgate.api.decode import decode_paths

    result = decode_paths(paths, namespace)
    problems = result.problems + _namespace_conflicts(result.documents, namespace)
    return Loaded(expand(paths), result.documents, problems, result.refused)


def validate(loaded: Loaded) -> list[Problem]:
    """Decode problems followed by each document's structural problems (file:line known),
    those of documents the decoder refused included: every problem in one run."""
    from meshgate.validation import validate_all
    from meshgate.validation.partial import refused_problems

    return loaded.problems + refused_problems(loaded.refused) + validate_all(loaded.documents)


def _namespace_conflicts(documents: list[Decoded], namespace: str | None) -> list[Problem]:
    from meshgate.api.problems import Problem, Severity
    from meshgate.api.registry import kind_for

    if not namespace:
        return []
    problems: list[Problem] = []
    for doc in documents:
        res = doc.resource
        info = kind_for(res.api_version, res.kind)
        own = res.metadata.namespace
        # Decode gave `namespace` to documents without one, so any other value is the
        # document's own.
        if info is None or not info.namespaced or not own or own == namespace:
            continue
        message = (
            f'the namespace from the provided object "{own}" does not match the namespace '
            f"\"{namespace}\". You must pass '--namespace={own}' to perform this operation."
        )
        line = doc.line_of(("metadata", "namespace")) or doc.line
        problems.append(
            Problem(Severity.ERROR, message, "metadata.namespace", str(res.key), doc.file, line)
        )
    return problems
