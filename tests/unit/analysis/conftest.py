"""Run analyzers over YAML text, as ``meshgate analyze --offline`` reads files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from tests.unit.cli.conftest import mg, walkthrough  # noqa: F401  (CLI fixtures, reused)

from meshgate.analysis.context import AnalysisContext
from meshgate.analysis.inputs import read_files, with_defaults
from meshgate.analysis.messages import Message
from meshgate.analysis.runner import ANALYZERS, Analyzer, analyze

Run = Callable[..., list[Message]]


@pytest.fixture
def run(tmp_path: Path) -> Run:
    """``run(yaml_text, fn_or_name...)``: what those analyzers report (all without any).

    An analyzer is given as its function or as its name in ``ANALYZERS``."""

    def go(text: str, *fns: Callable[[AnalysisContext], None] | str) -> list[Message]:
        path = tmp_path / "input.yaml"
        path.write_text(text)
        inputs = read_files([str(path)])
        with_defaults(inputs)
        by_name = {a.name: a for a in ANALYZERS}
        chosen = tuple(
            by_name[f] if isinstance(f, str) else Analyzer(f.__name__, "", f) for f in fns
        )
        result = analyze(inputs, chosen or ANALYZERS)
        if not fns:
            return list(result.messages)
        return [m for m in result.messages if m not in inputs.notes]

    return go


def codes(messages: list[Message]) -> list[tuple[str, str]]:
    """(code, origin) pairs, sorted: what Istio's analyzer tests compare."""
    return sorted((m.type.code, m.origin) for m in messages)


__all__ = ["Analyzer", "Run", "codes"]
