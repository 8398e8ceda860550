"""Hypothesis profiles for the whole suite.

Rules:
- ``ci`` is the default everywhere (CI, a fresh clone, a laptop): derandomized, so a test's
  examples follow from its source and one commit always gives one result. No example
  database is read or written, no test has a deadline and no health check times anything:
  only the code under test decides pass or fail.
- ``explore`` draws new examples on every run, many more of them (per test,
  ``MESHGATE_HYPOTHESIS_EXAMPLES``, 5000 unless set), and keeps the failing ones in
  ``.hypothesis/`` to replay them first next time. ``MESHGATE_HYPOTHESIS_PROFILE=explore``
  or ``pytest --hypothesis-profile=explore`` selects it; ``make test-explore`` runs it on
  every property test with a seed it prints.
- Example counts and deadlines are set here, never on a test: ``@settings(max_examples=...)``
  on a test would pin its count under every profile.
- Both print a failure's ``@reproduce_failure`` blob.
- Under ``explore`` a property test has no pytest timeout: the suite's 300 s stops hangs,
  and thousands of examples of one test are no hang.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import HealthCheck, is_hypothesis_test, settings


def _profile(name: str, **values: Any) -> None:
    # Timing decides nothing: a slow machine fails no test a fast one passes.
    settings.register_profile(
        name,
        settings.get_profile("default"),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
        print_blob=True,
        **values,
    )


_profile("ci", max_examples=300, derandomize=True, database=None)
_profile(
    "explore",
    max_examples=int(os.environ.get("MESHGATE_HYPOTHESIS_EXAMPLES", "5000")),
    derandomize=False,
)
# Loaded before any test module is imported: a test's settings take their values then.
# ``--hypothesis-profile`` is applied after this, so it wins.
settings.load_profile(os.environ.get("MESHGATE_HYPOTHESIS_PROFILE", "ci"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if settings.get_current_profile_name() != "explore":
        return
    for item in items:
        if is_hypothesis_test(getattr(item, "obj", None)):
            item.add_marker(pytest.mark.timeout(0))
