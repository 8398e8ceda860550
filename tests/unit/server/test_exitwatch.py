"""The control plane is woken the moment a watched container process exits."""

from __future__ import annotations

import asyncio
import subprocess

from meshgate.runtime import procs
from meshgate.server.exitwatch import ExitWatch


def test_exit_wakes_at_once_and_only_for_watched() -> None:
    async def scenario() -> list[str]:
        woken: list[str] = []
        event = asyncio.Event()

        def on_exit() -> None:
            woken.append("exit")
            event.set()

        watch = ExitWatch(asyncio.get_running_loop(), on_exit)
        child = subprocess.Popen(["sleep", "30"])
        other = subprocess.Popen(["sleep", "30"])
        try:
            me, them = procs.identify(child.pid), procs.identify(other.pid)
            assert me is not None and them is not None
            watch.sync([me, them])
            watch.sync([me])  # no longer listed: forgotten
            other.kill()
            await asyncio.sleep(0.2)
            assert woken == []
            child.kill()
            await asyncio.wait_for(event.wait(), timeout=5)
            # A process already gone when listed wakes the loop too.
            watch.sync([me])
        finally:
            for p in (child, other):
                p.kill()
                p.wait()
            watch.close()
        return woken

    assert asyncio.run(scenario()) == ["exit", "exit"]
