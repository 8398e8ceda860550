"""Shared shape of the accept/reject tables: one case per Istio rule example.

Each case is ``(note, expected, spec)``: ``expected`` is ``None`` when Istio accepts the
resource, else the meshgate code whose rule rejects it; ``note`` names the Istio check
the case mirrors (function in ``pkg/config/validation``).
"""

from __future__ import annotations

from typing import NamedTuple

import pytest
from tests.unit.validation.verdict import error_codes


class Case(NamedTuple):
    note: str
    expected: str | None
    spec: str


def params(cases: list[Case]) -> list[object]:
    return [pytest.param(c, id=c.note) for c in cases]


def check(kind: str, case: Case) -> None:
    codes = error_codes(kind, case.spec)
    if case.expected is None:
        assert not codes, f"{case.note}: Istio accepts this, got {codes}"
    else:
        assert case.expected in codes, f"{case.note}: expected {case.expected}, got {codes}"
