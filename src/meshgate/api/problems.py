"""Problems found in user input: one shape for decoding, validation and analysis.

Rules: a problem names where it is (file:line when known, the resource, the field path
in dotted/indexed form such as ``spec.ports[0].number``) and why, and carries a stable
code. Problems are collected and reported together; nothing stops at the first.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Severity(StrEnum):
    ERROR = "Error"
    WARNING = "Warning"
    INFO = "Info"


@dataclass(frozen=True)
class Problem:
    severity: Severity
    message: str
    field: str = ""
    resource: str = ""  # e.g. "ServiceEntry default/external-svc-http"
    file: str = ""
    line: int | None = None
    code: str = ""  # e.g. "MG0001" for structural checks, "IST0101" for analyzers

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    @property
    def location(self) -> str:
        if not self.file:
            return ""
        return f"{self.file}:{self.line}" if self.line is not None else self.file

    def __str__(self) -> str:
        parts = [p for p in (self.location, self.resource) if p]
        where = ": ".join(parts)
        field = f" {self.field}:" if self.field else ""
        head = f"{where}:" if where else ""
        return f"{self.severity.value}: {head}{field} {self.message}".replace("  ", " ")


class InputError(Exception):
    """Raised when user input is rejected; carries every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))
