"""Schema analyzers: the structural problems found reading each resource.

Rules of this module (Istio's ``schema.ValidationAnalyzer.<Kind>``, same codes):
- Reading an input keeps its decoding and validation problems on the entry
  (``Entry.problems``); these analyzers report them, errors as IST0106
  SchemaValidationError and warnings as IST0133 SchemaWarning, on the problem's own line.
- One analyzer per Istio kind, named as Istio names it, so a caller can run or leave out
  the schema checks of one kind (Istio's own analyzer tests leave them out); every other
  kind is covered by ``schema.ValidationAnalyzer``.
"""

from __future__ import annotations

from collections.abc import Callable

from meshgate.analysis import messages as msg
from meshgate.analysis.context import AnalysisContext
from meshgate.analysis.inputs import problem_text

ISTIO_KINDS = (
    "AuthorizationPolicy",
    "DestinationRule",
    "Gateway",
    "ServiceEntry",
    "Sidecar",
    "VirtualService",
)


def report_problems(ctx: AnalysisContext, kinds: set[str] | None, skip: set[str]) -> None:
    """Report the problems of entries of ``kinds`` (all but ``skip`` when None)."""
    for entry in ctx.entries:
        kind = entry.resource.kind
        if (kinds is not None and kind not in kinds) or kind in skip:
            continue
        for p in entry.problems:
            mtype = msg.SCHEMA_VALIDATION_ERROR if p.is_error else msg.SCHEMA_WARNING
            ctx.report(entry, mtype, problem_text(p), line=p.line)


def for_kind(kind: str) -> Callable[[AnalysisContext], None]:
    def run(ctx: AnalysisContext) -> None:
        report_problems(ctx, {kind}, set())

    return run


def other_kinds(ctx: AnalysisContext) -> None:
    report_problems(ctx, None, set(ISTIO_KINDS))
