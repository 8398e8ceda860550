"""Problems (decoding, validation) as one line each, on stderr.

Rules: every problem is printed, errors and warnings alike, in the order found, as
``error: FILE:LINE RESOURCE FIELD: MESSAGE [CODE]`` (``Warning: ...`` for warnings), so
a user can jump to the line; what is unknown is left out rather than printed empty.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from meshgate.cli.output import err

if TYPE_CHECKING:
    from meshgate.api.problems import Problem


def problem_line(p: Problem) -> str:
    prefix = "error" if p.is_error else p.severity.value
    where = " ".join(part for part in (p.location, p.resource, p.field) if part)
    code = f" [{p.code}]" if p.code else ""
    head = f"{where}: " if where else ""
    return f"{prefix}: {head}{p.message}{code}"


def print_problems(problems: Iterable[Problem]) -> tuple[int, int]:
    """Print every problem to stderr; returns (errors, warnings)."""
    errors = warnings = 0
    for p in problems:
        err(problem_line(p))
        if p.is_error:
            errors += 1
        else:
            warnings += 1
    return errors, warnings
