"""Where a mesh keeps its state, and the names derived from it.

Rules:
- The state directory is ``$MESHGATE_HOME`` or ``~/.meshgate``; it holds the store, logs,
  the API token (0600) and the runtime manifest. It is private to root (0700).
- What other users (Envoy runs as uid 1337) or sockets need lives in the per-mesh runtime
  directory ``/run/meshgate/<mesh id>/`` (0755), whose path stays short enough for a Unix
  socket (107 bytes).
- The mesh id is the first 6 hex digits of the sha256 of the state directory's real path,
  so two meshes on one host never share a name. This module is import-light: the CLI
  imports it on every invocation.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

RUN_ROOT = Path(os.environ.get("MESHGATE_RUN_ROOT", "/run/meshgate"))


def state_dir() -> Path:
    env = os.environ.get("MESHGATE_HOME")
    return Path(env).expanduser() if env else Path.home() / ".meshgate"


def mesh_id(home: Path) -> str:
    real = os.path.realpath(home)
    return hashlib.sha256(real.encode()).hexdigest()[:6]


def run_dir(home: Path) -> Path:
    return RUN_ROOT / mesh_id(home)


def api_socket(home: Path) -> Path:
    return run_dir(home) / "api.sock"


def token_file(home: Path) -> Path:
    return home / "api-token"


def server_log(home: Path) -> Path:
    return home / "control-plane.log"


def pid_file(home: Path) -> Path:
    return home / "control-plane.pid"
