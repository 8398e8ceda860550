"""Translated resources serialise to the same bytes in every process.

The xDS version is a hash of those bytes, so a control plane that restarts must produce the
same bytes for the same config, or every proxy gets a needless push. Map fields inside packed
``Any`` values (the access log's JSON ``Struct``) are where this breaks: protobuf orders them
by a per-process hash seed unless packed deterministically.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

SCRIPT = """
import hashlib
from meshgate.translate import translate
from tests.golden.seedworld import gateway_proxy, step_snapshot
snap = step_snapshot(4)
config = translate(snap, gateway_proxy(snap))
digest = hashlib.sha256()
for message in config.listeners + config.routes + config.clusters + config.endpoints:
    digest.update(message.SerializeToString(deterministic=True))
print(digest.hexdigest())
"""


def test_gateway_config_bytes_are_the_same_in_every_process() -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT)]))
    digests = set()
    for _ in range(3):
        proc = subprocess.run(
            [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stderr
        digests.add(proc.stdout.strip())
    assert len(digests) == 1, digests
