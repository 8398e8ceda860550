"""``meshgate validate -f``: offline checks of configuration files.

Rules: never needs a control plane or a store; prints every problem; a file without
errors prints ``"FILE" is valid`` (warnings allowed, as istioctl); exit 0 when no file
has an error, 1 otherwise.
"""

from __future__ import annotations

from meshgate.cli.options import Filenames

EXAMPLES = """Examples:

\b
  meshgate validate -f sleep.yaml
  meshgate validate -f walkthrough/
  cat se.yaml | meshgate validate -f -
"""


def command(filename: Filenames = None) -> None:
    """Validate resource files offline: structure, fields and values, with file:line."""
    import typer

    from meshgate.cli.options import split_files
    from meshgate.cli.output import err, fail, out
    from meshgate.cli.report import print_problems
    from meshgate.cli.sources import load, validate

    paths = split_files(filename)
    if not paths:
        fail("must specify -f FILENAME (a file, a directory, or - for stdin)")
    loaded = load(paths)
    problems = validate(loaded)
    print_problems(problems)
    bad = {p.file for p in problems if p.is_error}
    for name in loaded.files:
        if name not in bad:
            out(f'"{name}" is valid')
    if bad or any(p.is_error and not p.file for p in problems):
        err(f"error: {len(bad)} of {len(loaded.files)} file(s) invalid")
        raise typer.Exit(1)
