"""The console's listener address: loopback only; and the verb that hands out login links."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from meshgate.cli.main import app
from meshgate.console.server import parse_addr


@pytest.mark.parametrize(
    ("text", "want"),
    [("127.0.0.1:0", ("127.0.0.1", 0)), ("[::1]:15080", ("::1", 15080))],
)
def test_loopback_addresses_are_taken(text: str, want: tuple[str, int]) -> None:
    assert parse_addr(text) == want


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("0.0.0.0:15080", "loopback address only"),
        ("192.0.2.1:80", "loopback address only"),
        ("localhost:80", "loopback address only"),
        ("127.0.0.1", "want HOST:PORT"),
        ("127.0.0.1:99999", "want HOST:PORT"),
    ],
)
def test_other_addresses_are_refused(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_addr(text)


def test_console_verb_without_a_control_plane(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MESHGATE_HOME", str(tmp_path))
    result = CliRunner().invoke(app, ["console"])
    assert result.exit_code == 1
    assert "no control plane is running" in result.output
    helped = CliRunner().invoke(app, ["console", "--help"])
    assert "--open" in helped.output and "one-time link" in helped.output
