"""When a dead container starts again: the kubelet's crash back-off, as a pure decision.

Rules:
- A container that exits is restarted at once the first time, and backs off only while it
  keeps crashing, as the kubelet does (its back-off is checked against the time since the
  last start): the n-th restart in a row waits out the back-off window `Backoff.delay(n-1)`
  (10 s, 20 s, ... 5 min) counted from the run's start, so a run that lasted at least its
  window restarts at once and one that died sooner waits only the rest.
- A run that went fine starts a new sequence: one that became ready (its readiness probe
  passed; a proxy's readiness is its own, see `probes`) or that ran `reset_after` (10 min).
  So a proxy killed twice in a minute comes back at once both times, while a proxy (or app)
  that dies before it is ready backs off.
- A container whose command cannot be started (not found) backs off from the first retry:
  nothing will have changed a moment later.
- The message is the kubelet's: `back-off 20s restarting failed container=C pod=P_NS`.
- `after_exit`/`after_start_error` are pure; `record_exit`/`record_start_error` write
  their outcome into a pod's manifest record (see `podstate`), the clock's reading given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from meshgate.runtime.podspec import Backoff, _duration, exit_reason, restarts


@dataclass(frozen=True)
class Restart:
    """The decision after an exit: wait `delay` seconds (0: at once), `window` being the
    back-off shown to the user, with `crashes` the sequence's restarts so far."""

    delay: float
    window: float
    crashes: int

    @property
    def backing_off(self) -> bool:
        return self.delay > 0


def after_exit(crashes: int, ran: float, became_ready: bool, backoff: Backoff) -> Restart:
    """The restart after a run of `ran` seconds that followed `crashes` restarts in a row."""
    if became_ready or ran >= backoff.reset_after:
        crashes = 0  # the run went fine: this is a first crash again
    window = 0.0 if crashes == 0 else backoff.delay(crashes - 1)
    return Restart(delay=max(0.0, window - ran), window=window, crashes=crashes + 1)


def after_start_error(crashes: int, backoff: Backoff) -> Restart:
    """The retry of a container whose command could not be started."""
    window = backoff.delay(crashes)
    return Restart(delay=window, window=window, crashes=crashes + 1)


def duration(seconds: float) -> str:
    """Go's spelling of a back-off, as the kubelet's messages have it: 10s, 5m0s."""
    return _duration(seconds)


def message(window: float, container: str, pod: str, namespace: str, last: str) -> str:
    return (
        f"back-off {_duration(window)} restarting failed container={container} "
        f"pod={pod}_{namespace}; last exit: {last}"
    )


def record_exit(
    rec: dict[str, Any], cname: str, policy: str, code: int | None, now: float, backoff: Backoff
) -> None:
    """Record that container `cname` exited with `code` (None: unknown): terminated for good
    if `policy` says so, else waiting for its restart (due at once or after back-off)."""
    crec = rec["containers"][cname]
    reason = exit_reason(code)
    if not restarts(policy, code):
        crec.update(
            state="terminated", reason=reason, message="", exit_code=code, pid=None,
            next_start_at=None,
        )  # fmt: skip
        return
    ran = now - (crec["started_at"] or now)
    again = after_exit(crec["crashes"], ran, bool(crec.get("ready_seen")), backoff)
    last = f"{reason} ({code})"
    crec.update(
        state="waiting",
        # No back-off to wait out: the caller restarts it in the same pass.
        reason="CrashLoopBackOff" if again.backing_off else "",
        message=message(again.window, cname, rec["name"], rec["namespace"], last)
        if again.backing_off
        else "",
        exit_code=code,
        pid=None,
        crashes=again.crashes,
        restart_count=crec["restart_count"] + 1,
        next_start_at=now + again.delay,
    )


def record_start_error(
    rec: dict[str, Any], cname: str, error: str, now: float, backoff: Backoff
) -> None:
    """Record that container `cname` could not be started (`error`) and will be retried."""
    crec = rec["containers"][cname]
    again = after_start_error(crec["crashes"], backoff)
    crec.update(
        state="waiting",
        reason="CrashLoopBackOff",
        message=message(
            again.window, cname, rec["name"], rec["namespace"], f"StartError (127): {error}"
        ),
        exit_code=127,
        pid=None,
        start_time=None,
        crashes=again.crashes,
        next_start_at=now + again.delay,
    )


def record_pull_error(
    rec: dict[str, Any], cname: str, error: str, now: float, backoff: Backoff
) -> None:
    """Record that container `cname`'s image cannot be run here (the kubelet's ErrImagePull):
    waiting, the pull retried with back-off whatever the restart policy (as the kubelet)."""
    crec = rec["containers"][cname]
    again = after_start_error(crec["crashes"], backoff)
    crec.update(
        state="waiting",
        reason="ErrImagePull",
        message=error,
        pid=None,
        start_time=None,
        crashes=again.crashes,
        next_start_at=now + again.delay,
    )


def record_config_error(
    rec: dict[str, Any], cname: str, error: str, reason: str = "CreateContainerConfigError"
) -> None:
    """Record that container `cname` cannot be created from its spec: waiting with `reason`,
    not retried (a new spec is what changes that)."""
    rec["containers"][cname].update(
        state="waiting", reason=reason, message=error, pid=None, start_time=None,
        next_start_at=None,
    )  # fmt: skip
