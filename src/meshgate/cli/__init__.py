"""The ``meshgate`` command line: kubectl's verbs and habits over a ``Backend``.

Rules of this package: one module per verb, each thin (parse flags, call the backend,
print); shared helpers live in their own small modules. Start-up time counts, because
every command is a new process: verb modules import only typer and the standard library
at import time, and load pydantic models, YAML and the store inside the verb function.
Results go to stdout, errors to stderr as ``error: ...``; exit codes follow kubectl
(0 ok, 1 error).
"""
