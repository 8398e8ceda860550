"""``meshgate exec`` never hands the operator's terminal to a process in a pod: a command that
tries to push keystrokes into it (TIOCSTI) reaches only a pipe or a terminal of its own."""

from __future__ import annotations

import contextlib
import os
import pty
import select
import subprocess
import sys
import textwrap
import tty

import pytest

# The "pod command": tries TIOCSTI on each of its standard streams and says what it got.
ATTACK = textwrap.dedent(
    """
    import fcntl, os, sys, termios
    got = []
    for fd in (0, 1, 2):
        try:
            fcntl.ioctl(fd, termios.TIOCSTI, b"X")
            got.append(f"{fd}:injected")
        except OSError as exc:
            got.append(f"{fd}:{exc.errno}")
    print("tty" if os.isatty(1) else "notty", " ".join(got), flush=True)
    """
)


def _operator(stdin: bool, tty_wanted: bool) -> tuple[str, bytes]:
    """Run execio in a process whose terminal is a fresh pty; (its output, what is left
    unread on that terminal's input)."""
    master, slave = pty.openpty()
    tty.setraw(slave)  # so that injected bytes are readable at once, not after a newline
    runner = (
        "import sys; from meshgate.cli import execio; "
        f"sys.exit(execio.run([sys.executable, '-c', {ATTACK!r}], stdin={stdin}, "
        f"tty_wanted={tty_wanted}))"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", runner], stdin=slave, stdout=slave, stderr=slave,
        start_new_session=True, preexec_fn=lambda: __import__("fcntl").ioctl(
            0, __import__("termios").TIOCSCTTY, 0
        ),
    )  # fmt: skip
    out = b""
    while proc.poll() is None or select.select([master], [], [], 0.2)[0]:
        if select.select([master], [], [], 0.2)[0]:
            try:
                out += os.read(master, 4096)
            except OSError:
                break
    proc.wait(timeout=10)
    # Whatever was injected waits in the operator terminal's input queue.
    pending = b""
    os.set_blocking(slave, False)
    with contextlib.suppress(BlockingIOError):
        pending = os.read(slave, 4096)
    os.close(master)
    os.close(slave)
    return out.decode(errors="replace"), pending


@pytest.mark.parametrize(("stdin", "tty_wanted"), [(False, False), (True, False), (True, True)])
def test_no_keystroke_reaches_the_operators_terminal(stdin: bool, tty_wanted: bool) -> None:
    out, pending = _operator(stdin, tty_wanted)
    assert pending == b"", (out, pending)
    assert "injected" not in out or tty_wanted, out
    # -t: the command has a terminal, its own (what it injects, it injects into itself).
    assert ("notty" not in out and "tty " in out) is tty_wanted, out


def test_the_check_sees_an_injection() -> None:
    """Without execio the same command, given the terminal, does inject (the test can fail)."""
    master, slave = pty.openpty()
    tty.setraw(slave)
    proc = subprocess.Popen(
        [sys.executable, "-c", ATTACK], stdin=slave, stdout=slave, stderr=slave,
        start_new_session=True, preexec_fn=lambda: __import__("fcntl").ioctl(
            0, __import__("termios").TIOCSCTTY, 0
        ),
    )  # fmt: skip
    proc.wait(timeout=10)
    os.set_blocking(slave, False)
    assert os.read(slave, 4096) == b"XXX"
    os.close(master)
    os.close(slave)
