"""Structural validation of single resources (issue 2 item 3).

Rules of this package:
- ``validate`` runs every rule of ``meshgate.validation.rules`` (the table of rules and
  their stable codes is that module's docstring) on one decoded resource and returns
  all problems at once, each with its field path, ``file:line`` and code.
- Types, enums, required fields and unknown fields are already enforced by decoding
  (codes MG0xxx); rules here cover what a type cannot say (MG1xxx).
- Pure: no I/O, no other resources (cross-resource checks are ``meshgate.analysis``).
"""

from __future__ import annotations

from meshgate.api.decode import Decoded, format_path
from meshgate.api.meta import Resource
from meshgate.api.problems import Problem
from meshgate.api.yamlsource import LineIndex
from meshgate.validation.rules import Finding, check_resource

__all__ = ["Finding", "check_resource", "validate", "validate_all", "validate_resource"]


def validate(decoded: Decoded) -> list[Problem]:
    """Every structural problem of one decoded resource."""
    return validate_resource(decoded.resource, decoded.file, decoded.lines)


def validate_resource(
    resource: Resource, file: str = "", lines: LineIndex | None = None
) -> list[Problem]:
    """Every structural problem of ``resource``; ``lines`` maps field paths to lines."""
    where = str(resource.key)
    return [
        Problem(
            f.severity,
            f.message,
            field=format_path(f.path),
            resource=where,
            file=file,
            line=lines.line_of(f.path) if lines is not None else None,
            code=f.code,
        )
        for f in check_resource(resource)
    ]


def validate_all(documents: list[Decoded]) -> list[Problem]:
    return [p for d in documents for p in validate(d)]
