"""Waking the control plane the moment a container's process exits.

Rules:
- The periodic pass (1 s) would notice a dead proxy anyway; waiting on each running
  container's process (a pidfd, readable once the process has exited, whether or not it is
  our child) lets the next pass restart it and take its pod out of the endpoints at once.
- A pidfd is opened only for a process whose start time still matches the record, so a
  reused PID never stands for a container; a process seen exiting is forgotten, and so is
  one no longer listed.
- Runs on the event loop's thread (readers are asyncio's); it only calls `on_exit`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Iterable

from meshgate.runtime import procs

log = logging.getLogger("meshgate.exitwatch")


class ExitWatch:
    def __init__(self, loop: asyncio.AbstractEventLoop, on_exit: Callable[[], None]) -> None:
        self._loop = loop
        self._on_exit = on_exit
        self._fds: dict[procs.ProcId, int] = {}

    def sync(self, running: Iterable[procs.ProcId]) -> None:
        """Watch exactly the processes in `running`."""
        wanted = set(running)
        for proc in set(self._fds) - wanted:
            self._forget(proc)
        for proc in wanted - set(self._fds):
            try:
                fd = os.pidfd_open(proc.pid)
            except OSError:  # already gone: the pass that follows sees it
                self._on_exit()
                continue
            if not procs.is_alive(proc):  # the PID now names another process
                os.close(fd)
                self._on_exit()
                continue
            self._fds[proc] = fd
            self._loop.add_reader(fd, self._exited, proc)

    def _exited(self, proc: procs.ProcId) -> None:
        self._forget(proc)
        self._on_exit()

    def _forget(self, proc: procs.ProcId) -> None:
        fd = self._fds.pop(proc, None)
        if fd is not None:
            self._loop.remove_reader(fd)
            with contextlib.suppress(OSError):
                os.close(fd)

    def close(self) -> None:
        for proc in list(self._fds):
            self._forget(proc)
