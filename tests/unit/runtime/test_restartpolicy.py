"""The restart decision: at once the first time, back-off only while a container keeps
crashing, as the kubelet (its window counted from the run's start)."""

from __future__ import annotations

from meshgate.runtime.podspec import Backoff
from meshgate.runtime.restartpolicy import after_exit, after_start_error, record_exit

B = Backoff()


def test_first_crash_restarts_at_once() -> None:
    r = after_exit(crashes=0, ran=0.2, became_ready=False, backoff=B)
    assert (r.delay, r.crashes, r.backing_off) == (0.0, 1, False)


def test_a_container_that_keeps_crashing_backs_off_doubling() -> None:
    crashes, waits = 0, []
    for _ in range(8):
        r = after_exit(crashes, ran=0.0, became_ready=False, backoff=B)
        crashes = r.crashes
        waits.append(r.delay)
    assert waits == [0, 10, 20, 40, 80, 160, 300, 300]


def test_the_window_counts_from_the_runs_start() -> None:
    # The kubelet compares the time since the last start with the back-off.
    assert after_exit(1, ran=4.0, became_ready=False, backoff=B).delay == 6.0
    assert after_exit(1, ran=12.0, became_ready=False, backoff=B).delay == 0.0
    assert after_exit(2, ran=12.0, became_ready=False, backoff=B).delay == 8.0


def test_a_run_that_became_ready_went_fine() -> None:
    # A proxy killed again soon after it was serving comes back at once, every time.
    r = after_exit(crashes=5, ran=2.0, became_ready=True, backoff=B)
    assert (r.delay, r.crashes) == (0.0, 1)
    # ... and one that dies again before it is ready backs off.
    assert after_exit(r.crashes, ran=0.5, became_ready=False, backoff=B).delay == 9.5


def test_a_long_run_resets_the_sequence() -> None:
    assert after_exit(6, ran=B.reset_after, became_ready=False, backoff=B).delay == 0.0


def test_start_errors_back_off_from_the_first_retry() -> None:
    assert [after_start_error(n, B).delay for n in range(3)] == [10, 20, 40]


def test_record_exit_says_why_it_waits() -> None:
    rec = {
        "name": "p",
        "namespace": "ns",
        "containers": {
            "c": {"crashes": 1, "restart_count": 1, "started_at": 100.0, "state": "running"}
        },
    }
    record_exit(rec, "c", "Always", 1, now=101.0, backoff=B)
    c = rec["containers"]["c"]
    assert c["state"] == "waiting" and c["reason"] == "CrashLoopBackOff"
    assert c["next_start_at"] == 110.0 and c["restart_count"] == 2
    assert c["message"].startswith("back-off 10s restarting failed container=c pod=p_ns")
    rec["containers"]["c"].update(state="running", started_at=200.0, ready_seen=True)
    record_exit(rec, "c", "Always", 137, now=201.0, backoff=B)
    assert c["next_start_at"] == 201.0 and c["reason"] == "" and c["crashes"] == 1
    record_exit(rec, "c", "Never", 0, now=300.0, backoff=B)
    assert c["state"] == "terminated" and c["reason"] == "Completed"
