"""The mesh CA's directory, shared by the control-plane replicas through etcd.

Every replica signs workload certificates with the mesh's root, from its own copy of the
CA directory (``security/ca``: roots, keys, rotation state; ``replicas.join`` copies
etcd's into a replica's state directory when it starts). A root rotation changes that
directory, so it has to reach every replica: otherwise one replica would sign with a root
the proxies of the others do not trust yet.

Rules of this module:
- etcd holds the CA directory's files under ``<prefix>/control/mesh-security/ca/``, and a
  marker key, ``<prefix>/control/ca-revision``, written with every publication: its
  ``mod_revision`` names the copy.
- Publishing (``publish``) replaces etcd's copy with this replica's files, and bumps the
  marker, in ONE transaction: a replica never reads half a rotation. The replica where
  ``meshgate ca rotate`` ran publishes at once, before it answers.
- Every replica polls the marker (one read per ``poll``, with the registration loop).
  When it moved, the replica writes etcd's files into its own CA directory (removing
  those etcd no longer has) and calls ``on_change`` (the control plane reloads its CA and
  pushes the new trust bundle and certificates to its proxies).
- A rotation then moves on by time (security/ca.py: the new root signs at its activation
  time, the old one is dropped after the overlap) in every replica alike. The leader also
  publishes its directory whenever it differs from the copy last published or taken, so
  that a replica started later copies where the rotation stands, not its beginning. A
  rotation whose publication failed (etcd away) is published by its replica at the next
  poll that reaches etcd.
- Only ``security/ca`` is shared this way; nothing else of a replica's ``security/`` is
  touched after it joined.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

from meshgate.server.leader import Etcd
from meshgate.server.replicas import SECURITY_PREFIX, ReplicaError, write_security

log = logging.getLogger("meshgate.casync")

CA_DIR = "ca"
MARKER_KEY = "ca-revision"


def ca_files(home: Path) -> dict[str, bytes]:
    """The CA directory's files (name -> content), temporary files left out."""
    root = home / "security" / CA_DIR
    if not root.is_dir():
        return {}
    return {
        p.name: p.read_bytes()
        for p in sorted(root.iterdir())
        if p.is_file() and not p.name.endswith(".tmp")
    }


def digest(files: dict[str, bytes]) -> str:
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return h.hexdigest()


def write_ca_files(home: Path, files: dict[str, bytes]) -> None:
    """Make the CA directory hold exactly ``files`` (each replaced atomically, as
    ``replicas.join`` writes etcd's copy)."""
    for name in files:
        if "/" in name or name in ("", ".", ".."):
            raise ReplicaError(f"etcd {SECURITY_PREFIX}{CA_DIR}/{name}: not a file name")
    write_security(home, {f"{CA_DIR}/{name}": content for name, content in files.items()})
    root = home / "security" / CA_DIR
    for path in root.iterdir():
        if path.is_file() and path.name not in files and not path.name.endswith(".tmp"):
            path.unlink()
    os.chmod(root, 0o700)


class CaSync:
    """Keeps this replica's CA directory and etcd's copy the same (module rules)."""

    def __init__(self, etcd: Etcd, home: Path, on_change: Callable[[], None]) -> None:
        self.etcd = etcd
        self.home = home
        self.on_change = on_change
        self._files_prefix = etcd.key(f"{SECURITY_PREFIX}{CA_DIR}/")
        self._marker = etcd.key(MARKER_KEY)
        self._seen_marker: int | None = None  # the marker's mod_revision last taken
        self._seen_digest = digest(ca_files(home))  # of the copy last published or taken
        self.published = 0
        self.taken = 0
        # A rotation started here whose publication failed: published at the next poll.
        self.pending = False

    async def publish(self) -> None:
        """Replace etcd's copy with this replica's CA directory (one transaction)."""
        files = ca_files(self.home)
        prefix = self._files_prefix
        held = await self.etcd.call(lambda c: c.get_prefix(prefix), timeout=5.0)
        # etcd refuses a key twice in one transaction: delete only what is not put again.
        stale = [kv.key for kv in held if kv.key[len(prefix) :].decode() not in files]
        ok, _ = await self.etcd.call(
            lambda c: c.transaction(
                compare=[],
                success=[
                    *(c.transactions.delete(key) for key in stale),
                    *(c.transactions.put(prefix + n.encode(), v) for n, v in files.items()),
                    c.transactions.put(self._marker, digest(files).encode()),
                ],
                failure=[],
            ),
            timeout=5.0,
        )
        if not ok:  # an empty compare always succeeds: etcd said otherwise
            raise ReplicaError("etcd refused the CA directory's publication")
        marker = await self.etcd.call(lambda c: c.get(self._marker))
        mine = digest(files)
        # Another replica's publication right after ours: not seen yet, taken next poll.
        ours = marker is not None and marker.value == mine.encode()
        self._seen_marker = int(marker.mod_revision) if ours else -1
        self._seen_digest = mine
        self.pending = False
        self.published += 1
        log.info("CA directory published to etcd (%d files)", len(files))

    async def poll(self, leading: bool) -> None:
        """Take etcd's copy if another replica published one; the leader publishes its
        own if its CA moved on (a rotation step came)."""
        marker = await self.etcd.call(lambda c: c.get(self._marker))
        revision = None if marker is None else int(marker.mod_revision)
        if revision != self._seen_marker and revision is not None:
            self._seen_marker = revision
            got = await self.etcd.call(lambda c: c.get_prefix(self._files_prefix), timeout=5.0)
            files = {kv.key[len(self._files_prefix) :].decode(): kv.value for kv in got}
            if files and digest(files) != digest(ca_files(self.home)):
                write_ca_files(self.home, files)
                self._seen_digest = digest(files)
                self.taken += 1
                log.info("CA directory taken from etcd: %s", ", ".join(sorted(files)))
                self.on_change()
                return
            self._seen_digest = digest(files) if files else self._seen_digest
        if (leading or self.pending) and digest(ca_files(self.home)) != self._seen_digest:
            await self.publish()
