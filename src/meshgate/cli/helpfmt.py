"""How every verb's ``--help`` names its arguments: kubectl's way, not the framework's.

Rules of this module:
- Only typer and the standard library (imported on every run).
- An argument is shown by its metavar (``POD``, ``KIND NAME``), or its name in capitals;
  never with a type tag (``<str>``, ``<list[str]>``) nor in braces (``{pod}``). In the usage
  line an optional argument is bracketed and a repeatable one without its own metavar
  gets ``...``. Options keep the framework's rendering: each declares its metavar.
- ``usage_suffix`` adds what the verb reads after its arguments (``exec``'s
  ``-- COMMAND [ARGS...]``), which the framework cannot know.
"""

from __future__ import annotations

from typing import Any

from typer.core import TyperArgument, TyperCommand


def argument_name(param: Any) -> str:
    """How help shows an argument: its metavar, else its name in capitals."""
    return str(param.metavar) if param.metavar else str(param.name).upper()


def _usage_piece(param: Any) -> str:
    text = argument_name(param)
    if not param.metavar and param.nargs != 1:
        text += "..."
    return text if param.required else f"[{text}]"


class Command(TyperCommand):
    """A verb whose help has kubectl-like argument names (see the module's rules)."""

    usage_suffix = ""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if isinstance(param, TyperArgument):
                pieces.append(_usage_piece(param))
        if self.usage_suffix:
            pieces.append(self.usage_suffix)
        return pieces

    def format_options(self, ctx: Any, formatter: Any) -> None:
        arguments: list[tuple[str, str]] = []
        options: list[tuple[str, str]] = []
        for param in self.get_params(ctx):
            if isinstance(param, TyperArgument):
                if not param.hidden:
                    arguments.append((argument_name(param), param.help or ""))
                continue
            record = param.get_help_record(ctx)
            if record is not None:
                options.append(record)
        if arguments:
            with formatter.section("Arguments"):
                formatter.write_dl(arguments)
        if options:
            with formatter.section("Options"):
                formatter.write_dl(options)


class ExecCommand(Command):
    """``exec``: the command to run follows ``--``."""

    usage_suffix = "-- COMMAND [ARGS...]"
