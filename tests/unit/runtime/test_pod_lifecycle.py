"""Restart policy, crash back-off, pod phase and the STATUS kubectl derives from them."""

from __future__ import annotations

import pytest

from meshgate.cli.columns import columns_for
from meshgate.runtime.pods import (
    Backoff,
    ContainerState,
    PodState,
    exit_reason,
    pod_phase,
    restarts,
)


def test_backoff_is_the_kubelets() -> None:
    b = Backoff()
    assert [b.delay(n) for n in range(7)] == [10, 20, 40, 80, 160, 300, 300]
    assert b.reset_after == 600
    assert b.delay(10_000) == 300  # no overflow however long the loop
    fast = Backoff(start=0.5, cap=2.0)
    assert [fast.delay(n) for n in range(4)] == [0.5, 1.0, 2.0, 2.0]


@pytest.mark.parametrize(
    ("policy", "code", "again"),
    [
        ("Always", 0, True),
        ("Always", 1, True),
        ("OnFailure", 0, False),
        ("OnFailure", 2, True),
        ("OnFailure", None, True),
        ("Never", 0, False),
        ("Never", 1, False),
    ],
)
def test_restart_policy(policy: str, code: int | None, again: bool) -> None:
    assert restarts(policy, code) is again


def _c(name: str, state: str, code: int | None = None) -> ContainerState:
    reason = exit_reason(code) if state == "terminated" else ""
    return ContainerState(name, state, reason=reason, exit_code=code)  # type: ignore[arg-type]


PROXY_UP = _c("istio-proxy", "running")


def test_phase_follows_the_app_containers_not_the_sidecar() -> None:
    proxy_down = _c("istio-proxy", "terminated", 0)
    assert pod_phase("Never", [PROXY_UP, _c("app", "running")]) == "Running"
    # Ended apps: Running until the sidecar (stopped after them) has gone too, as the
    # kubelet's phase waits for every container; then the apps' exit codes decide.
    assert pod_phase("Never", [PROXY_UP, _c("app", "terminated", 0)]) == "Running"
    assert pod_phase("Never", [proxy_down, _c("app", "terminated", 0)]) == "Succeeded"
    assert pod_phase("Never", [proxy_down, _c("app", "terminated", 1)]) == "Failed"
    assert pod_phase("OnFailure", [proxy_down, _c("app", "terminated", 0)]) == "Succeeded"
    assert pod_phase("OnFailure", [PROXY_UP, _c("app", "terminated", 1)]) == "Running"
    assert pod_phase("Always", [PROXY_UP, _c("app", "terminated", 0)]) == "Running"
    two = [_c("a", "terminated", 0), _c("b", "running")]
    assert pod_phase("Never", two) == "Running"
    # A gateway pod is its proxy alone.
    assert pod_phase("Always", [PROXY_UP]) == "Running"


def _status_column(containers: list[ContainerState], phase: str) -> str:
    pod = PodState(
        name="p",
        namespace="default",
        uid="u",
        ip="10.34.0.20",
        netns="mg-x-p",
        phase=phase,  # type: ignore[arg-type]
        reason="",
        message="",
        containers=containers,
        labels={},
    )
    obj = {"kind": "Pod", "metadata": {"name": "p"}, "status": pod.to_status()}
    (status,) = [c for c in columns_for("", "Pod") if c.header == "STATUS"]
    return status.value(obj)


def test_status_column_reads_as_kubectls() -> None:
    app_done = _c("main", "terminated", 0)
    # The app completed, its sidecar still runs: kubectl says NotReady, not Completed.
    assert _status_column([PROXY_UP, app_done], "Running") == "NotReady"
    ended = _c("istio-proxy", "terminated", 0)
    assert _status_column([ended, app_done], "Succeeded") == "Completed"
    assert _status_column([ended, _c("main", "terminated", 3)], "Failed") == "Error"
    assert _status_column([PROXY_UP, _c("main", "running")], "Running") == "Running"
    waiting = ContainerState("main", "waiting", reason="CrashLoopBackOff", exit_code=1)
    assert _status_column([PROXY_UP, waiting], "Running") == "CrashLoopBackOff"
    # A pod without a sidecar whose only container completed.
    assert _status_column([app_done], "Succeeded") == "Completed"
