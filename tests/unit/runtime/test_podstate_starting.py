"""Which containers the control plane looks at more often: started lately, probed, not
ready yet; and which processes it waits on."""

from __future__ import annotations

from typing import Any

from meshgate.runtime import podstate
from meshgate.runtime.podspec import ContainerSpec
from meshgate.runtime.procs import ProcId


def rec(**proxy: Any) -> dict[str, Any]:
    base = {"state": "running", "pid": 10, "start_time": 5, "started_at": 100.0}
    return {"containers": {"istio-proxy": {**base, **proxy}}}


PROBED = [ContainerSpec("istio-proxy", ["envoy"], readiness_port=15021)]
UNPROBED = [ContainerSpec("istio-proxy", ["envoy"])]


def test_starting_until_ready_or_the_window_is_over() -> None:
    assert podstate.starting(rec(), PROBED, now=101.0, window=10.0)
    assert not podstate.starting(rec(ready_seen=True), PROBED, now=101.0, window=10.0)
    assert not podstate.starting(rec(), PROBED, now=111.0, window=10.0)
    assert not podstate.starting(rec(), UNPROBED, now=101.0, window=10.0)
    assert not podstate.starting(rec(state="waiting"), PROBED, now=101.0, window=10.0)


def test_processes_are_the_running_containers() -> None:
    assert podstate.processes(rec()) == [ProcId(10, 5)]
    assert podstate.processes(rec(state="waiting", pid=None)) == []
