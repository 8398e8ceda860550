"""Where the CLI finds its mesh, and which backend its verbs talk to.

Rules: the state directory is ``$MESHGATE_HOME`` or ``~/.meshgate`` (``meshgate.home``
owns that rule). ``get_backend()`` is the single seam that picks a backend: the control
plane's HTTP API when one answers, else the store in the state directory, opened
in-process; the verbs never know which one they talk to.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from meshgate.home import state_dir as _state_dir

if TYPE_CHECKING:
    from meshgate.cli.backend import Backend


_global_namespace: str | None = None


def set_global_namespace(namespace: str | None) -> None:
    """Remember ``meshgate -n NS VERB``: the namespace given before the verb."""
    global _global_namespace
    _global_namespace = namespace


def namespace_flag(local: str | None) -> str | None:
    """The verb's own ``-n`` if given, else the one given before the verb, else None."""
    return local or _global_namespace


def state_dir() -> Path:
    return _state_dir()


def get_backend() -> Backend:
    """The control plane's API when one answers for this state directory, else the store.

    Writing to the store directly while a control plane runs would bypass it (it hears
    only its own commits), so a live API always wins; without one, changes wait in the
    store for the next ``meshgate up``.
    """
    from meshgate.home import api_socket

    home = state_dir()
    if api_socket(home).exists():
        from meshgate.client import Client

        client = Client(home)
        if client.available():
            from meshgate.cli.api_backend import ApiBackend

            return ApiBackend(client)
    from meshgate.cli.backend import LocalBackend

    return LocalBackend(home)


@contextmanager
def backend_errors() -> Iterator[None]:
    """Report a failing backend call as ``error: ...`` (exit 1) instead of a traceback.

    Backends raise ValueError/KeyError for refused input and their own exceptions for an
    unreachable mesh; the message is what the user needs either way. Set
    ``MESHGATE_DEBUG=1`` to see the traceback.
    """
    import typer

    from meshgate.api.problems import InputError

    try:
        yield
    except (typer.Exit, typer.Abort, KeyboardInterrupt):
        raise
    except InputError as exc:
        from meshgate.cli.output import fail
        from meshgate.cli.report import print_problems

        errors, _ = print_problems(exc.problems)
        fail(f"{errors} error(s) found; nothing was applied")
    except Exception as exc:
        if os.environ.get("MESHGATE_DEBUG"):
            raise
        from meshgate.cli.output import fail

        text = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        fail(str(text))
