"""Fixtures for end-to-end tests: root required; every mesh is torn down, even on failure."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.meshctl import Mesh

REQUIRED_TOOLS = ("ip", "iptables", "curl", "setpriv", "bwrap", "nsenter")


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "e2e tests need root: pods are Linux network namespaces"
    missing = [t for t in REQUIRED_TOOLS if shutil.which(t) is None]
    if missing:
        return f"e2e tests need {', '.join(missing)} (make test installs them as root)"
    return None


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[Mesh]:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    m = Mesh(tmp_path / "home")
    m.meshgate("up", "--world", "demo")
    try:
        yield m
    finally:
        m.meshgate("down", "--force", check=False)
        from meshgate.home import mesh_id

        mid = mesh_id(m.home)
        left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert f"mg-{mid}" not in left, f"namespaces left behind: {left}"
