"""How ``meshgate exec`` connects a command in a pod to the operator's terminal, safely.

Rules of this module:
- A process in a pod never gets a file descriptor of the operator's terminal. With one, any
  process of the same uid in the container could push keystrokes into the operator's shell
  (``TIOCSTI``, allowed on this kernel kind: ``dev.tty.legacy_tiocsti=1``) or change the
  terminal's settings.
- ``-t`` with a terminal on stdin: the command runs on a pseudo-terminal of its own (as
  kubectl and docker allocate one); the operator's terminal is put in raw mode and relayed,
  window size included, and restored on the way out.
- Otherwise, standard streams that are terminals are relayed through pipes, the command runs
  in a session of its own (no controlling terminal), and the signals a terminal sends
  (INT, QUIT, TERM, HUP) are passed on to it. Streams that are not terminals are handed over
  as they are: pipes and files cost nothing to pass and carry no such risk.
- stdin reaches the command only with ``-i`` (kubectl's rule); without it the command reads
  /dev/null.
- The exit status is the command's, or 128 + the signal that ended it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import select
import signal
import subprocess
import sys
import termios
import threading
import tty
from collections.abc import Iterator

FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGHUP)


def _status(code: int) -> int:
    return 128 - code if code < 0 else code


def run(argv: list[str], *, stdin: bool, tty_wanted: bool) -> int:
    """Run ``argv`` as ``meshgate exec`` does; returns its exit status."""
    if tty_wanted and os.isatty(0):
        return _run_pty(argv)
    if tty_wanted:
        sys.stderr.write("Unable to use a TTY - input is not a terminal\n")
    terminals = [fd for fd in (0, 1, 2) if os.isatty(fd) and (fd != 0 or stdin)]
    if not terminals:
        sys.stdout.flush()
        if not stdin:
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.close(null)
        os.execvp(argv[0], argv)
    return _run_relayed(argv, stdin=stdin)


def _pump(src: int, dst: int, close: bool = False) -> None:
    """Copy raw bytes from fd ``src`` to fd ``dst`` until end of file (unbuffered: a
    thread blocked here holds no lock the interpreter needs at exit)."""
    try:
        while chunk := os.read(src, 65536):
            view = memoryview(chunk)
            while view:
                view = view[os.write(dst, view) :]
    except OSError:
        pass
    finally:
        if close:
            with contextlib.suppress(OSError):
                os.close(dst)


def _run_relayed(argv: list[str], *, stdin: bool) -> int:
    """The command in its own session, terminal streams relayed through pipes."""
    pipe_in = stdin and os.isatty(0)
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE if pipe_in else (None if stdin else subprocess.DEVNULL),
        stdout=subprocess.PIPE if os.isatty(1) else None,
        stderr=subprocess.PIPE if os.isatty(2) else None,
        start_new_session=True,
    )
    threads = []
    sys.stdout.flush()
    sys.stderr.flush()
    if proc.stdout is not None:
        threads.append(threading.Thread(target=_pump, args=(proc.stdout.fileno(), 1)))
    if proc.stderr is not None:
        threads.append(threading.Thread(target=_pump, args=(proc.stderr.fileno(), 2)))
    if proc.stdin is not None:
        feeder = threading.Thread(target=_pump, args=(0, proc.stdin.fileno(), True), daemon=True)
        feeder.start()
    for t in threads:
        t.start()
    with _forwarding(proc.pid):
        code = proc.wait()
    for t in threads:
        t.join()
    return _status(code)


@contextlib.contextmanager
def _forwarding(pid: int) -> Iterator[None]:
    """Pass the terminal's signals on to the command's process group."""

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signum)

    previous = {s: signal.signal(s, forward) for s in FORWARDED_SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _copy_winsize(src: int, dst: int) -> None:
    with contextlib.suppress(OSError):
        size = fcntl.ioctl(src, termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(dst, termios.TIOCSWINSZ, size)


def _run_pty(argv: list[str]) -> int:
    """The command on a pseudo-terminal of its own, relayed to the operator's terminal."""
    sys.stdout.flush()
    pid, master = pty.fork()
    if pid == 0:  # the child: session leader with the pty as its controlling terminal
        try:
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)
    _copy_winsize(0, master)
    previous = signal.signal(signal.SIGWINCH, lambda *_: _copy_winsize(0, master))
    saved = termios.tcgetattr(0)
    try:
        tty.setraw(0)
        _relay_pty(master)
    finally:
        termios.tcsetattr(0, termios.TCSAFLUSH, saved)
        signal.signal(signal.SIGWINCH, previous)
        os.close(master)
    _, status = os.waitpid(pid, 0)
    return _status(os.waitstatus_to_exitcode(status))


def _relay_pty(master: int) -> None:
    stdin_open = True
    while True:
        fds = [master, 0] if stdin_open else [master]
        try:
            ready, _, _ = select.select(fds, [], [])
        except InterruptedError:
            continue
        if master in ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the command and everything on its terminal ended
                return
            if not data:
                return
            os.write(1, data)
        if 0 in ready:
            data = os.read(0, 65536)
            if data:
                os.write(master, data)
            else:
                stdin_open = False
