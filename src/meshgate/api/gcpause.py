"""Pausing Python's cyclic garbage collector around bulk work.

Rules of this module:
- Decoding or storing thousands of resources allocates millions of small, acyclic objects
  (dicts, lists, models). Each allocation burst triggers collections that walk every live
  object, so the collector's cost grows with what is already decoded; measured on 12,000
  resources it was a third to a half of the whole run. Reference counting still frees
  everything acyclic while the collector is paused; cycles wait until it resumes.
- ``paused_gc`` pauses only for work of at least ``threshold`` units, resumes on the way
  out (also on errors), and never resumes a collector that someone else had paused.
- On resuming it collects the two young generations at once: what a bulk call made is
  mostly long-lived (decoded resources, stored objects), and moving it to the old
  generation in one pass spares the automatic collections from walking it twice more
  (measured: GC time of a 12,000-resource apply 0.3 s -> 0.2 s).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

BULK = 1000


@contextmanager
def paused_gc(size: int, threshold: int = BULK) -> Iterator[None]:
    """Run the body with the cyclic collector paused when ``size >= threshold``."""
    if size < threshold or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.collect(1)  # see the module rules
