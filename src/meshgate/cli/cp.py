"""``meshgate cp``: files between this machine and a container, as ``kubectl cp`` copies them.

Rules: one side is local, the other ``[NAMESPACE/]POD:PATH``; the pod side runs ``tar`` in
the container's sandbox through the same exec the ``exec`` verb uses (so a copy lands where
the app sees it, as its user, and nowhere else), and the local side is Python's tarfile.
As kubectl: copying a directory copies it whole; a destination that is an existing directory
receives the source under its own name; leading ``/`` is stripped from member names, and a
member that would land outside the destination is refused.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import tarfile
from pathlib import Path, PurePosixPath

import typer

from meshgate.cli.context import namespace_flag
from meshgate.cli.options import Container, Namespace

_POD = re.compile(r"([a-z0-9][-a-z0-9.]*/)?[a-z0-9][-a-z0-9.]*")

CP_EXAMPLES = """Examples:

\b
  meshgate cp ca.pem sleep-5d8f7c9b6-abcde:/tmp/ca.pem
  meshgate cp istio-system/istio-egressgateway-5d8f-abcde:/etc/hosts ./hosts -c istio-proxy
  meshgate cp ./certs sleep-5d8f7c9b6-abcde:/tmp/certs
"""


def _split(spec: str, namespace: str) -> tuple[str, str, str] | None:
    """(namespace, pod, path) for ``[NS/]POD:PATH``; None for a local path."""
    head, sep, path = spec.partition(":")
    if not sep or os.path.exists(spec) or not _POD.fullmatch(head):
        return None
    ns, _, pod = head.rpartition("/")
    return (ns or namespace, pod, path or ".")


def _exec_argv(ns: str, pod: str, container: str | None, command: list[str]) -> list[str]:
    from meshgate.cli.pod_cmds import call_api

    body = {"namespace": ns, "name": pod, "command": command, "container": container}
    data = call_api("POST", "/v1/exec", body, client_checks=True)
    return [str(a) for a in data["argv"]]  # type: ignore[attr-defined]


def _fail(msg: str) -> typer.Exit:
    typer.echo(f"error: {msg}", err=True)
    return typer.Exit(1)


def to_pod(local: Path, ns: str, pod: str, path: str, container: str | None) -> None:
    if not local.exists():
        raise _fail(f"{local} doesn't exist in local filesystem")
    dest = PurePosixPath(path)
    # Into an existing directory: under the source's own name; else as the path given.
    script = (
        'if [ -d "$1" ]; then cd "$1" && exec tar xmf - --transform "s|^src|$2|"; '
        'else mkdir -p "$(dirname "$1")" && cd "$(dirname "$1")" && '
        'exec tar xmf - --transform "s|^src|$(basename "$1")|"; fi'
    )
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(str(local), arcname="src")
    argv = _exec_argv(ns, pod, container, ["sh", "-c", script, "cp", str(dest), local.name])
    proc = subprocess.run(argv, input=buf.getvalue(), capture_output=True, check=False)
    if proc.returncode != 0:
        raise _fail(proc.stderr.decode(errors="replace").strip() or f"tar exited {proc.returncode}")


def from_pod(ns: str, pod: str, path: str, local: Path, container: str | None) -> None:
    src = PurePosixPath(path)
    argv = _exec_argv(
        ns, pod, container, ["tar", "cf", "-", "-C", str(src.parent), "--", src.name or "."]
    )
    proc = subprocess.run(argv, capture_output=True, check=False)
    if proc.returncode != 0:
        raise _fail(proc.stderr.decode(errors="replace").strip() or f"tar exited {proc.returncode}")
    target = local / src.name if local.is_dir() else local
    with tarfile.open(fileobj=io.BytesIO(proc.stdout), mode="r") as tar:
        for member in tar.getmembers():
            rel = PurePosixPath(member.name.lstrip("/"))
            parts = rel.parts[1:]  # the source's own name becomes the target's
            if ".." in parts or member.issym() or member.islnk() or member.isdev():
                continue  # never outside the destination, never a link or a device
            out = target.joinpath(*parts)
            if member.isdir():
                out.mkdir(parents=True, exist_ok=True)
            elif member.isfile():
                out.parent.mkdir(parents=True, exist_ok=True)
                data = tar.extractfile(member)
                out.write_bytes(data.read() if data else b"")
                out.chmod(member.mode & 0o777)


def register(app: typer.Typer) -> None:
    from meshgate.cli.helpfmt import Command

    @app.command(cls=Command, rich_help_panel="Pods", epilog=CP_EXAMPLES)
    def cp(
        src: str = typer.Argument(..., metavar="SRC", help="A local path or [NS/]POD:PATH."),
        dest: str = typer.Argument(..., metavar="DEST", help="A local path or [NS/]POD:PATH."),
        namespace: Namespace = None,
        container: Container = None,
    ) -> None:
        """Copy files and directories to and from a container (the pod needs `tar`)."""
        ns = namespace_flag(namespace) or "default"
        a, b = _split(src, ns), _split(dest, ns)
        if (a is None) == (b is None):
            raise _fail("one of SRC and DEST must be a local path and the other POD:PATH")
        if b is not None:
            to_pod(Path(src), *b, container)
        elif a is not None:
            from_pod(*a, Path(dest), container)
