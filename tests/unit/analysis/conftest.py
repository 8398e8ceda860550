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
    """``run(yaml_text, fn...)``: what those analyzers report (every message without fns)."""

    def go(text: str, *fns: Callable[[AnalysisContext], None]) -> list[Message]:
        path = tmp_path / "input.yaml"
        path.write_text(text)
        inputs = read_files([str(path)])
        with_defaults(inputs)
        chosen = tuple(a for a in ANALYZERS if a.run in fns) if fns else ANALYZERS
        assert not fns or len(chosen) == len(fns), "unknown analyzer function"
        result = analyze(inputs, chosen)
        if not fns:
            return list(result.messages)
        return [m for m in result.messages if m not in inputs.notes]

    return go


def codes(messages: list[Message]) -> list[tuple[str, str]]:
    """(code, origin) pairs, sorted: what Istio's analyzer tests compare."""
    return sorted((m.type.code, m.origin) for m in messages)


__all__ = ["Analyzer", "Run", "codes"]
