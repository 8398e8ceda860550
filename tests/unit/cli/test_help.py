"""Every verb's ``--help``: every option described, kubectl-like metavars, no framework tags."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
import typer
from typer.core import TyperArgument, TyperGroup, TyperOption
from typer.testing import CliRunner, Result

from meshgate.cli.main import app

Run = Callable[..., Result]
LEAKS = ("<", ">", "{", "}", "list[")


def _commands() -> dict[str, Any]:
    group = typer.main.get_command(app)
    assert isinstance(group, TyperGroup)
    return dict(group.commands)


COMMANDS = _commands()


def test_every_verb_is_walked() -> None:
    # A verb added later is covered by the tests below without being named here.
    assert {"apply", "get", "exec", "logs", "proxy-config", "pc", "status", "proxy-status"} <= set(
        COMMANDS
    )


def _section(text: str, title: str) -> list[str]:
    """The first column (names and metavars) of a help section's entries."""
    lines = text.split(f"\n{title}:\n", 1)
    if len(lines) == 1:
        return []
    names = []
    for line in lines[1].splitlines():
        if not line.strip():
            break
        if line.startswith("  ") and not line.startswith("   "):
            names.append(re.split(r"\s{2,}", line.strip())[0])
    return names


@pytest.mark.parametrize("verb", sorted(COMMANDS))
def test_help_names_no_types_and_describes_every_parameter(verb: str) -> None:
    result = CliRunner().invoke(app, [verb, "--help"])
    assert result.exit_code == 0, result.output
    text = result.stdout
    usage = text.splitlines()[0]
    assert usage.startswith(f"Usage: meshgate {verb} [OPTIONS]")
    shown = [usage, *_section(text, "Arguments"), *_section(text, "Options")]
    for name in shown:
        assert not any(leak in name for leak in LEAKS), f"{verb}: {name!r}"
    command = COMMANDS[verb]
    for param in command.params:
        assert param.help, f"{verb}: {param.name} has no help text"
        if isinstance(param, TyperOption) and not param.is_flag:
            # Spelled by us (NS, FORMAT, N, [=none|client|server]), not derived from a type.
            assert param.metavar, (verb, param.name)
        if isinstance(param, TyperArgument):
            assert param.metavar, (verb, param.name)
    # Every option's text shows up (a flag with no help would print a bare name).
    for param in command.params:
        if isinstance(param, TyperOption):
            assert param.opts[-1] in text


def test_exec_usage_shows_the_command_after_double_dash() -> None:
    usage = CliRunner().invoke(app, ["exec", "--help"]).stdout.splitlines()[0]
    assert usage == "Usage: meshgate exec [OPTIONS] POD -- COMMAND [ARGS...]"


@pytest.mark.parametrize(
    ("verb", "usage"),
    [
        ("get", "Usage: meshgate get [OPTIONS] KIND [NAME]..."),
        ("history", "Usage: meshgate history [OPTIONS] KIND NAME"),
        ("proxy-config", "Usage: meshgate proxy-config [OPTIONS] TYPE POD"),
        ("proxy-status", "Usage: meshgate proxy-status [OPTIONS] [POD]"),
        ("logs", "Usage: meshgate logs [OPTIONS] [POD]"),
    ],
)
def test_usage_lines(verb: str, usage: str) -> None:
    assert CliRunner().invoke(app, [verb, "--help"]).stdout.splitlines()[0] == usage


def test_top_level_help_names_the_pc_alias() -> None:
    text = CliRunner().invoke(app, ["--help"]).stdout
    [line] = [x for x in text.splitlines() if x.strip().startswith("proxy-config")]
    assert "(alias: pc)" in line
    assert not any(x.strip().startswith("pc ") for x in text.splitlines())


def test_status_output_is_described_and_checked(mg: Run) -> None:
    text = mg("status", "--help").stdout
    assert "-o, --output FORMAT" in text and "json" in text and "default" in text
    bad = mg("status", "-o", "yaml")
    assert bad.exit_code == 1
    assert "allowed formats are: json" in bad.stderr
