"""paused_gc: pauses only bulk work, always resumes, never resumes someone else's pause."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from meshgate.api.gcpause import paused_gc


@pytest.fixture(autouse=True)
def collector_on() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


def test_small_work_runs_with_the_collector() -> None:
    with paused_gc(10, threshold=1000):
        assert gc.isenabled()


def test_bulk_work_pauses_and_resumes_even_on_error() -> None:
    with paused_gc(1000, threshold=1000):
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), paused_gc(5000):
        assert not gc.isenabled()
        raise RuntimeError("boom")
    assert gc.isenabled()


def test_young_objects_move_to_the_old_generation_on_resume() -> None:
    with paused_gc(5000):
        kept = [[i] for i in range(5000)]
    assert gc.get_count()[0] < 1000  # the bulk was collected once, not left young
    assert len(kept) == 5000


def test_an_outer_pause_is_left_alone() -> None:
    gc.disable()
    with paused_gc(5000):
        assert not gc.isenabled()
    assert not gc.isenabled()
    gc.enable()
