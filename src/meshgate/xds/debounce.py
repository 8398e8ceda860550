"""Coalesce bursts of push requests into one push.

Rules: a push runs once no request arrived for `quiet` seconds, or `max_delay` seconds
after the first pending request, whichever comes first, so a steady stream of changes
cannot starve the proxies. `trigger` is safe from any thread; the action runs on the
event loop the debouncer was started on, never twice at once, and an exception in it is
logged and does not stop later pushes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

Action = Callable[[list[str]], Awaitable[None]]


class Debouncer:
    """Runs `action(reasons)` after a quiet period; see the module rules."""

    def __init__(self, action: Action, *, quiet: float = 0.1, max_delay: float = 1.0) -> None:
        if quiet < 0 or max_delay < quiet:
            raise ValueError("need 0 <= quiet <= max_delay")
        self._action = action
        self._quiet = quiet
        self._max_delay = max_delay
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._reasons: list[str] = []
        self._first: float | None = None
        self._last = 0.0
        self._lock = threading.Lock()
        self._pending_before_start = False

    def start(self) -> None:
        """Start on the running event loop."""
        if self._task is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._task = self._loop.create_task(self._run(), name="xds-debounce")
        if self._pending_before_start:
            self._pending_before_start = False
            self._note("", self._loop.time())
            self._wake.set()

    async def stop(self) -> None:
        task, self._task = self._task, None
        self._loop = None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def trigger(self, reason: str = "") -> None:
        """Ask for a push; returns at once."""
        loop = self._loop
        if loop is None or self._task is None:
            with self._lock:
                self._pending_before_start = True
                if reason:
                    self._reasons.append(reason)
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._note(reason, loop.time())
            self._wake.set()
        else:
            loop.call_soon_threadsafe(self._trigger_in_loop, reason)

    def _trigger_in_loop(self, reason: str) -> None:
        assert self._loop is not None
        self._note(reason, self._loop.time())
        self._wake.set()

    def _note(self, reason: str, now: float) -> None:
        with self._lock:
            if self._first is None:
                self._first = now
            self._last = now
            if reason:
                self._reasons.append(reason)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            while True:
                with self._lock:
                    first = loop.time() if self._first is None else self._first
                    due = min(self._last + self._quiet, first + self._max_delay)
                delay = due - loop.time()
                if delay <= 0:
                    break
                await asyncio.sleep(delay)
            self._wake.clear()
            with self._lock:
                reasons, self._reasons = self._reasons, []
                self._first = None
            try:
                await self._action(reasons)
            except Exception:
                log.exception("xDS push failed")
