"""A meshgate CLI bound to a private state directory per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from meshgate.cli.main import app

ROOT = Path(__file__).resolve().parents[3]
WALKTHROUGH = ROOT / "examples" / "walkthrough"

Run = Callable[..., Result]


@pytest.fixture
def mg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Run]:
    """``mg("get", "se")`` runs the CLI in-process against ``tmp_path/home``."""
    monkeypatch.setenv("MESHGATE_HOME", str(tmp_path / "home"))
    runner = CliRunner()

    def run(*args: str, input: str | None = None) -> Result:
        return runner.invoke(app, list(args), input=input, catch_exceptions=False)

    yield run


@pytest.fixture
def walkthrough(mg: Run) -> Run:
    """A state directory holding every resource of the seed's walkthrough."""
    for name in sorted(p.name for p in WALKTHROUGH.glob("*.yaml")):
        result = mg("apply", "-f", str(WALKTHROUGH / name))
        assert result.exit_code == 0, result.stderr
    return mg
